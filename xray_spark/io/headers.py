"""Geometry from the headers of the formats fabio reads, in the images table's vocabulary.

Every parser takes the header dict fabio returns (or the header text) and gives the keys it can
fill of ``detector``, ``distance_m``, ``wavelength_m``, ``pixel1_m`` (slow axis, rows),
``pixel2_m`` (fast axis, columns), ``beam_center_row_px`` and ``beam_center_col_px``, in metres
and in pixels of fabio's array; keys the header does not carry are left out (so the sidecar or the
configured default fills them, ``io.geometry``). fabio reads these headers but gives them no
common meaning, so the conventions are written here, one function per header family:

- Pilatus mini-CBF text (CBF, Pilatus TIFF ImageDescription): ``Beam_xy (x, y)`` = (col, row).
- ESRF EDF (``Center_1/2``, ``PSize_1/2``, ``SampleDistance``, ``WaveLength``) and the KappaCCD keys
  fabio's KCD and EDF readers give (``pixel X-size (um)``).
- MarCCD binary frame header (um, 1/1000 pixel, nm, fm).
- mar345 (``PIXEL_LENGTH/HEIGHT`` um, ``DISTANCE`` mm, ``CENTER_X/Y`` = (col, row)).
- Bruker SFRM/SMART (``DISTANC`` cm, ``WAVELEN`` A (first value), ``CENTER x y`` = (col, row)).
- ADSC/SMV and d*TREK (``PIXEL_SIZE`` mm, ``DISTANCE`` mm, ``BEAM_CENTER_X/Y`` mm with the
  ADSC/dxtbx convention X = slow axis (row), Y = fast axis (col)).
- Oxford Diffraction (``Real pixel size x (mm)``, ``Distance in mm``, ``Wavelength alpha``).
- Rigaku R-AXIS (``pixelsize_x/y`` mm, ``distance`` mm, ``wavelength`` A, ``beampixels_x/y``).
"""
from __future__ import annotations

import re

import numpy as np

PILATUS_KEYS = re.compile(r"^#?\s*(Detector|Pixel_size|Detector_distance|Wavelength|Beam_xy)[:\s]\s*(.*)$",
                          re.MULTILINE)
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
UNITS = {"m": 1.0, "mm": 1e-3, "um": 1e-6, "cm": 1e-2, "a": 1e-10, "nm": 1e-9}


def _numbers(text) -> list[float]:
    return [float(x) for x in NUMBER.findall(str(text))]


def _number(header: dict, key: str, scale: float = 1.0, index: int = 0) -> float | None:
    """The ``index``-th number of ``header[key]`` times ``scale``; None when absent or not finite."""
    try:
        value = _numbers(header[key])[index] * scale
    except (KeyError, IndexError, TypeError):
        return None
    return value if np.isfinite(value) else None


def _clean(out: dict) -> dict:
    """Drop absent values and lengths that are 0 or negative (the writers' "not set")."""
    lengths = ("distance_m", "wavelength_m", "pixel1_m", "pixel2_m")
    return {k: v for k, v in out.items() if v is not None and v != "" and not (k in lengths and v <= 0)}


def pilatus_header(text: str) -> dict:
    """Geometry of a Pilatus/Eiger mini-CBF header (``# Beam_xy (x, y) pixels`` etc.).

    Written here line by line: fabio's ``PilatusHeader`` raises IndexError on the headers some lab
    instruments write (a key with no value), and one bad line must not lose the others.
    """
    out: dict = {}
    for key, value in PILATUS_KEYS.findall(text or ""):
        numbers = _numbers(value)
        unit = (value.split()[-1].lower() if value.split() else "m")
        if key == "Detector":
            out["detector"] = re.split(r"S/N|,", value)[0].strip().strip(":").strip()
        elif key == "Pixel_size" and len(numbers) >= 2:
            out["pixel2_m"], out["pixel1_m"] = numbers[0] * UNITS.get(unit, 1.0), numbers[1] * UNITS.get(unit, 1.0)
        elif key == "Detector_distance" and numbers:
            out["distance_m"] = numbers[0] * UNITS.get(unit, 1.0)
        elif key == "Wavelength" and numbers:
            out["wavelength_m"] = numbers[0] * 1e-10
        elif key == "Beam_xy" and len(numbers) >= 2:
            out["beam_center_col_px"], out["beam_center_row_px"] = numbers[0], numbers[1]
    return _clean(out)


def edf_header(header: dict) -> dict:
    """Geometry of an ESRF SAXS-convention EDF header (metres; ``Center_1`` along the columns)."""
    keys = {"beam_center_col_px": "Center_1", "beam_center_row_px": "Center_2", "pixel2_m": "PSize_1",
            "pixel1_m": "PSize_2", "distance_m": "SampleDistance", "wavelength_m": "WaveLength"}
    out = {name: _number(header, key) for name, key in keys.items()}
    out.update({k: v for k, v in kcd_header(header).items() if out.get(k) is None})
    if header.get("Detector") or header.get("DetectorInfo"):
        out["detector"] = str(header.get("Detector") or header.get("DetectorInfo")).strip()
    return _clean(out)


def kcd_header(header: dict) -> dict:
    """Nonius KappaCCD pixel size (``pixel X-size (um)``), as fabio's KCD reader (and EDFs made from it) give."""
    return _clean({"pixel2_m": _number(header, "pixel X-size (um)", 1e-6),
                   "pixel1_m": _number(header, "pixel Y-size (um)", 1e-6)})


def marccd_header(header: dict) -> dict:
    """Geometry of a MarCCD header (integers: um, 1/1000 pixel, nm, fm); 0 means not set."""
    keys = {"distance_m": ("xtal_to_detector", 1e-6), "beam_center_col_px": ("beam_x", 1e-3),
            "beam_center_row_px": ("beam_y", 1e-3), "pixel2_m": ("pixelsize_x", 1e-9),
            "pixel1_m": ("pixelsize_y", 1e-9), "wavelength_m": ("source_wavelength", 1e-15)}
    out = {name: _number(header, key, scale) for name, (key, scale) in keys.items()}
    return {k: v for k, v in out.items() if v}


def mar345_header(header: dict) -> dict:
    return _clean({"pixel2_m": _number(header, "PIXEL_LENGTH", 1e-6), "pixel1_m": _number(header, "PIXEL_HEIGHT", 1e-6),
                   "distance_m": _number(header, "DISTANCE", 1e-3), "wavelength_m": _number(header, "WAVELENGTH", 1e-10),
                   "beam_center_col_px": _number(header, "CENTER_X"), "beam_center_row_px": _number(header, "CENTER_Y")})


def bruker_header(header: dict) -> dict:
    return _clean({"distance_m": _number(header, "DISTANC", 1e-2), "wavelength_m": _number(header, "WAVELEN", 1e-10),
                   "beam_center_col_px": _number(header, "CENTER", 1.0, 0),
                   "beam_center_row_px": _number(header, "CENTER", 1.0, 1)})


def adsc_header(header: dict) -> dict:
    pixel_mm = _number(header, "PIXEL_SIZE")
    out = {"distance_m": _number(header, "DISTANCE", 1e-3), "wavelength_m": _number(header, "WAVELENGTH", 1e-10)}
    if pixel_mm:
        out["pixel1_m"] = out["pixel2_m"] = pixel_mm * 1e-3
        x, y = _number(header, "BEAM_CENTER_X"), _number(header, "BEAM_CENTER_Y")
        # Mosflm's frame: X along the slow axis; mm, except the TIMEPIX_SU camera's pixels (dxtbx
        # FormatSMVTimePix_SU: "the beam centre is in pixels")
        per_px = 1.0 if str(header.get("BEAMLINE", "")).strip().upper() == "TIMEPIX_SU" else pixel_mm
        if x is not None and y is not None:
            out["beam_center_row_px"], out["beam_center_col_px"] = x / per_px, y / per_px
    if header.get("DETECTOR_TYPE") or header.get("DETECTOR_NAMES"):
        out["detector"] = str(header.get("DETECTOR_TYPE") or header.get("DETECTOR_NAMES")).strip()
    return _clean(out)


def oxd_header(header: dict) -> dict:
    return _clean({"pixel2_m": _number(header, "Real pixel size x (mm)", 1e-3),
                   "pixel1_m": _number(header, "Real pixel size y (mm)", 1e-3),
                   "distance_m": _number(header, "Distance in mm", 1e-3)})


def raxis_header(header: dict) -> dict:
    return _clean({"pixel2_m": _number(header, "pixelsize_x", 1e-3), "pixel1_m": _number(header, "pixelsize_y", 1e-3),
                   "distance_m": _number(header, "distance", 1e-3), "wavelength_m": _number(header, "wavelength", 1e-10),
                   "beam_center_col_px": _number(header, "beampixels_x"),
                   "beam_center_row_px": _number(header, "beampixels_y")})


def cbf_header(header: dict) -> dict:
    return pilatus_header(str(header.get("_array_data.header_contents", "")))


def tiff_description(description: str) -> dict:
    """A TIFF's ImageDescription: the Pilatus header when it holds one (beamline and lab Pilatus TIFFs)."""
    if "Pixel_size" in description or "Beam_xy" in description or "Detector_distance" in description:
        return pilatus_header(description)
    return {}


# fabio class name -> header parser (classes not listed carry no geometry fabio reads)
BY_CLASS = {"CbfImage": cbf_header, "EdfImage": edf_header, "KcdImage": kcd_header, "Mar345Image": mar345_header,
            "BrukerImage": bruker_header, "Bruker100Image": bruker_header, "DtrekImage": adsc_header,
            "OxdImage": oxd_header, "RaxisImage": raxis_header, "PilatusImage": cbf_header}


def geometry_of(class_name: str, header: dict) -> dict:
    """The geometry the header of a file fabio read as ``class_name`` states ({} when none)."""
    parser = BY_CLASS.get(class_name)
    if parser is None:
        return {}
    try:
        return parser(header)
    except Exception:  # a damaged header loses its geometry (sidecar/defaults fill it), not the frame
        return {}
