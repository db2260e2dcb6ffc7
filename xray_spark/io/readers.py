"""Detector file readers: one interface over the formats beamlines write.

``open_detector_file(path, hdf5_datasets)`` yields a :class:`DetectorFile`: the number of frames,
``frame(i)`` as a 2-D array, the geometry the file's own header states (pyFAI vocabulary, metres,
beam centre in pixels (row, column) of the raw frame) and the file's pixel mask when it has one
(NeXus ``pixel_mask``; True = bad pixel).

- TIFF (multi-page = one frame per page) through tifffile; a Pilatus TIFF's ImageDescription
  carries the same mini-CBF header as its CBF, read by fabio's ``PilatusHeader``.
- EDF (multi-frame too), CBF and MarCCD through fabio, with their header conventions: ESRF SAXS
  EDF keys (``Center_1/2``, ``PSize_1/2``, ``SampleDistance``, ``WaveLength``), the Pilatus
  mini-CBF header (``Beam_xy``, ``Pixel_size``, ``Detector_distance``, ``Wavelength``), the MarCCD
  binary header (``beam_x``, ``xtal_to_detector``, ...).
- HDF5/NeXus through h5py with hdf5plugin's filters (Eiger master files link their
  ``data_NNNNNN`` datasets in separate files, compressed with bitshuffle/LZ4); every 3-D dataset
  gives one frame per slice; NeXus detector fields with their ``units`` attribute.

The format is decided by the file's first bytes and must agree with its extension: a ``.cbf``
that holds a TIFF is refused rather than guessed. Failures raise :class:`UnreadableFile` with a
short reason code (the quarantine table's ``reason``) and a message naming the file and field.
"""
from __future__ import annotations

import contextlib
import fnmatch
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

EXTENSIONS = {".tif": "tiff", ".tiff": "tiff", ".mccd": "marccd", ".edf": "edf", ".cbf": "cbf",
              ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5", ".nxs": "hdf5"}
# MarCCD files are TIFF containers with a binary header inside.
CONTAINER = {"marccd": "tiff"}
MAGIC = [(b"II*\x00", "tiff"), (b"MM\x00*", "tiff"), (b"II+\x00", "tiff"), (b"MM\x00+", "tiff"),
         (b"\x89HDF\r\n\x1a\n", "hdf5"), (b"###CBF", "cbf"), (b"###_CBF", "cbf")]
# NeXus NXdetector / NXbeam fields and the image column they fill.
NEXUS_FIELDS = {
    "pixel2_m": ["/entry/instrument/detector/x_pixel_size"],
    "pixel1_m": ["/entry/instrument/detector/y_pixel_size"],
    "beam_center_col_px": ["/entry/instrument/detector/beam_center_x"],
    "beam_center_row_px": ["/entry/instrument/detector/beam_center_y"],
    "distance_m": ["/entry/instrument/detector/detector_distance", "/entry/instrument/detector/distance"],
    "wavelength_m": ["/entry/instrument/beam/incident_wavelength", "/entry/instrument/monochromator/wavelength"],
}
NEXUS_DETECTOR = ["/entry/instrument/detector/description", "/entry/instrument/detector/local_name"]
NEXUS_MASK = ["/entry/instrument/detector/pixel_mask", "/entry/instrument/detector/detectorSpecific/pixel_mask"]
# NeXus writers spell units many ways (a Lambda detector writes "micrometer").
LENGTH_UNITS = {"m": 1.0, "meter": 1.0, "metre": 1.0, "mm": 1e-3, "millimeter": 1e-3, "millimetre": 1e-3,
                "um": 1e-6, "µm": 1e-6, "micron": 1e-6, "microns": 1e-6, "micrometer": 1e-6, "micrometre": 1e-6,
                "nm": 1e-9, "nanometer": 1e-9, "nanometre": 1e-9, "a": 1e-10, "angstrom": 1e-10,
                "angstroms": 1e-10, "å": 1e-10}
DEFAULT_UNITS = {"beam_center_col_px": "pixel", "beam_center_row_px": "pixel", "wavelength_m": "angstrom"}


class UnreadableFile(Exception):
    """A file (or one frame of it) that cannot become an image; ``reason`` is a short code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class DetectorFile:
    """An open detector file: ``frame(i)`` for i in range(n_frames), header geometry, pixel mask."""

    format: str
    n_frames: int
    frame: Callable[[int], np.ndarray]
    header: dict = field(default_factory=dict)
    pixel_mask: np.ndarray | None = None


def detect_format(path: str) -> str:
    """The format of ``path`` from its extension, checked against its first bytes."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in EXTENSIONS:
        raise UnreadableFile("unsupported_format", f"{path}: extension {ext or '(none)'!r} is not a detector "
                             f"format this reads ({', '.join(sorted(EXTENSIONS))})")
    expected = EXTENSIONS[ext]
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        raise UnreadableFile("empty_file", f"{path}: the file is empty (0 bytes)")
    found = next((fmt for magic, fmt in MAGIC if head.startswith(magic)), None)
    if found is None and head.lstrip().startswith(b"{"):
        found = "edf"
    if found is None:
        raise UnreadableFile("unsupported_format", f"{path}: content starts with {head[:8]!r}, which is "
                             f"no TIFF, EDF, CBF or HDF5 signature")
    if found != CONTAINER.get(expected, expected):
        raise UnreadableFile("wrong_extension", f"{path}: extension {ext!r} says {expected} but the content "
                             f"is {found}; rename the file to its format's extension")
    return expected


@contextlib.contextmanager
def open_detector_file(path: str, hdf5_datasets: Sequence[str]) -> Iterator[DetectorFile]:
    """Open ``path`` with the reader of its format; frames are read lazily, one at a time."""
    fmt = detect_format(path)
    try:
        if fmt == "hdf5":
            with _open_hdf5(path, hdf5_datasets) as detector_file:
                yield detector_file
        elif fmt == "tiff":
            with _open_tiff(path) as detector_file:
                yield detector_file
        else:
            yield _open_fabio(path, fmt)
    except UnreadableFile:
        raise
    except Exception as e:  # any library error on a damaged file is this file's reason
        raise UnreadableFile("unreadable", f"{path}: {fmt} reader failed: {type(e).__name__}: {e}") from e


# ---------------------------------------------------------------- headers

def pilatus_header(text: str) -> dict:
    """Geometry of a Pilatus/Eiger mini-CBF header (``# Beam_xy (x, y) pixels`` etc.), via fabio."""
    from fabio.cbfimage import PilatusHeader

    parsed = PilatusHeader(text)
    out = {}
    if "Detector" in parsed:
        out["detector"] = re.split(r"S/N|,", str(parsed["Detector"]))[0].strip()
    if "Pixel_size" in parsed:
        out["pixel2_m"], out["pixel1_m"] = map(float, parsed["Pixel_size"])
    if "Detector_distance" in parsed:
        out["distance_m"] = float(parsed["Detector_distance"])
    if "Wavelength" in parsed:
        out["wavelength_m"] = float(parsed["Wavelength"]) * 1e-10
    if "Beam_xy" in parsed:
        out["beam_center_col_px"], out["beam_center_row_px"] = map(float, parsed["Beam_xy"])
    return out


def _number(header: dict, key: str, scale: float = 1.0) -> float | None:
    try:
        value = float(str(header[key]).split()[0]) * scale
    except (KeyError, ValueError, IndexError):
        return None
    return value if np.isfinite(value) else None


def edf_header(header: dict) -> dict:
    """Geometry of an ESRF SAXS-convention EDF header (metres; ``Center_1`` along the columns)."""
    keys = {"beam_center_col_px": "Center_1", "beam_center_row_px": "Center_2", "pixel2_m": "PSize_1",
            "pixel1_m": "PSize_2", "distance_m": "SampleDistance", "wavelength_m": "WaveLength"}
    out = {name: _number(header, key) for name, key in keys.items()}
    if header.get("Detector") or header.get("DetectorInfo"):
        out["detector"] = str(header.get("Detector") or header.get("DetectorInfo")).strip()
    return {k: v for k, v in out.items() if v is not None}


def marccd_header(header: dict) -> dict:
    """Geometry of a MarCCD header (integers: um, 1/1000 pixel, nm, fm); 0 means not set."""
    keys = {"distance_m": ("xtal_to_detector", 1e-6), "beam_center_col_px": ("beam_x", 1e-3),
            "beam_center_row_px": ("beam_y", 1e-3), "pixel2_m": ("pixelsize_x", 1e-9),
            "pixel1_m": ("pixelsize_y", 1e-9), "wavelength_m": ("source_wavelength", 1e-15)}
    out = {name: _number(header, key, scale) for name, (key, scale) in keys.items()}
    return {k: v for k, v in out.items() if v}


def marccd_frame_header(path: str) -> dict:
    """The 3072-byte MarCCD frame header at byte 1024, parsed by fabio's ``marccdimage`` struct.

    Read here because ``fabio.open`` replaces it with the TIFF tags when it reads the pixels
    (fabio issue #203); its ``header_byte_order`` field (1234 little, 4321 big) sets the byte order.
    """
    from fabio.marccdimage import HEADER_FORMAT, HEADER_NAMES, interpret_header

    with open(path, "rb") as f:
        f.seek(1024)
        raw = f.read(3072)
    if len(raw) < 3072:
        raise UnreadableFile("truncated", f"{path}: {1024 + len(raw)} bytes, shorter than the MarCCD "
                             "headers (4096 bytes): the file is truncated")
    order = ">" if int.from_bytes(raw[28:32], "little") == 4321 else "<"
    return interpret_header(raw, order + HEADER_FORMAT, HEADER_NAMES)


# ---------------------------------------------------------------- formats

def _checked(data: np.ndarray, path: str, index: int) -> np.ndarray:
    if data.ndim != 2:
        raise UnreadableFile("bad_shape", f"{path} frame {index}: shape {data.shape} is not a 2-D image")
    return data


def _open_fabio(path: str, fmt: str) -> DetectorFile:
    import fabio

    image = fabio.open(path)
    if fmt == "cbf":
        header = pilatus_header(image.header.get("_array_data.header_contents", ""))
    elif fmt == "marccd":
        header = marccd_header(marccd_frame_header(path))
    else:
        header = edf_header(image.header)
    if image.data is None:
        raise UnreadableFile("unreadable", f"{path}: fabio found no image data")
    if fmt == "edf":
        _check_edf_size(path, image)

    def frame(i: int) -> np.ndarray:
        return _checked(np.asarray(image.data if i == 0 else image.getframe(i).data), path, i)

    return DetectorFile(fmt, int(image.nframes), frame, header)


def _check_edf_size(path: str, image) -> None:
    """fabio pads a truncated EDF with zeros (and only logs it): refuse it instead.

    Each frame is a header of at least 512 bytes plus ``Size`` bytes of data.
    """
    headers = [image.header] + [image.getframe(i).header for i in range(1, image.nframes)]
    declared = sum(512 + int(h.get("Size", 0)) for h in headers)
    actual = os.path.getsize(path)
    if actual < declared:
        raise UnreadableFile("truncated", f"{path}: {actual} bytes, but its {len(headers)} EDF frame "
                             f"header(s) declare at least {declared}: the file is truncated")


@contextlib.contextmanager
def _open_tiff(path: str) -> Iterator[DetectorFile]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        description = tif.pages[0].description or ""
        header = pilatus_header(description) if "Pixel_size" in description or "Beam_xy" in description else {}

        def frame(i: int) -> np.ndarray:
            return _checked(tif.pages[i].asarray(), path, i)

        yield DetectorFile("tiff", len(tif.pages), frame, header)


def _length(dataset, name: str) -> float:
    """A NeXus scalar in metres (or pixels), honouring its ``units`` attribute."""
    value = float(np.asarray(dataset[()]).reshape(-1)[0])
    units = dataset.attrs.get("units", DEFAULT_UNITS.get(name, "m"))
    units = (units.decode() if isinstance(units, bytes) else str(units)).strip().lower()
    if units in ("pixel", "pixels", "px"):
        return value
    if units not in LENGTH_UNITS:
        raise UnreadableFile("bad_header", f"field {dataset.name}: unit {units!r} is not a length "
                             f"({', '.join(LENGTH_UNITS)}) or pixel")
    return value * LENGTH_UNITS[units]


def nexus_header(h5) -> dict:
    """Geometry from the NeXus NXdetector / NXbeam fields present in an open h5py file."""
    out = {}
    for name, paths in NEXUS_FIELDS.items():
        dataset = next((h5[p] for p in paths if p in h5), None)
        if dataset is not None:
            out[name] = _length(dataset, name)
    text = next((h5[p][()] for p in NEXUS_DETECTOR if p in h5), None)
    if text is not None:
        text = np.asarray(text, dtype=object).reshape(-1)[0]      # a scalar, or a (1,) array (Lambda)
        out["detector"] = (text.decode() if isinstance(text, bytes) else str(text)).strip()
    return out


def _frame_datasets(h5, path: str, patterns: Sequence[str]) -> list:
    """Datasets of the first pattern that matches (``*`` matches names within one group)."""
    for pattern in patterns:
        group_path, name = pattern.rsplit("/", 1)
        group = h5.get(group_path or "/")
        if group is None or not hasattr(group, "keys"):
            continue
        names = sorted(n for n in group.keys() if fnmatch.fnmatchcase(n, name))
        if not names:
            continue
        datasets = []
        for n in names:
            try:
                datasets.append(group[n])
            except KeyError as e:  # an Eiger master whose external data file is missing
                link = group.get(n, getlink=True)
                target = getattr(link, "filename", "?")
                raise UnreadableFile("missing_dataset", f"{path}: {group_path}/{n} links to {target}, "
                                     f"which cannot be opened ({e})") from e
        return datasets
    present = []
    h5.visititems(lambda n, obj: present.append("/" + n) if hasattr(obj, "shape") else None)
    raise UnreadableFile("missing_dataset", f"{path}: none of the frame datasets {list(patterns)} exists "
                         f"(datasets present: {', '.join(present[:10]) or 'none'}); "
                         "set ingest.hdf5_datasets to where this file keeps its frames")


@contextlib.contextmanager
def _open_hdf5(path: str, patterns: Sequence[str]) -> Iterator[DetectorFile]:
    import h5py
    import hdf5plugin  # noqa: F401  registers bitshuffle/LZ4 and the other HDF5 filters

    with h5py.File(path, "r") as h5:
        datasets = _frame_datasets(h5, path, patterns)
        index = []  # (dataset, slice or None) per frame
        for ds in datasets:
            if ds.ndim == 2:
                index.append((ds, None))
            elif ds.ndim == 3:
                index.extend((ds, i) for i in range(ds.shape[0]))
            else:
                raise UnreadableFile("bad_shape", f"{path}: dataset {ds.name} has shape {ds.shape}; "
                                     "frames must be 2-D, or 3-D stacks of frames")
        mask_ds = next((h5[p] for p in NEXUS_MASK if p in h5), None)
        pixel_mask = None
        if mask_ds is not None:        # some writers (Lambda) store it as a (1, rows, cols) stack
            pixel_mask = np.asarray(mask_ds[()]) != 0
            pixel_mask = pixel_mask[0] if pixel_mask.ndim == 3 and pixel_mask.shape[0] == 1 else pixel_mask

        def frame(i: int) -> np.ndarray:
            ds, k = index[i]
            return _checked(np.asarray(ds[()] if k is None else ds[k]), path, i)

        yield DetectorFile("hdf5", len(index), frame, nexus_header(h5), pixel_mask)
