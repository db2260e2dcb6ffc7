"""Write frames in the formats beamlines write, with their real header conventions.

Used to build demo archives and test fixtures from generated images: EDF with ESRF SAXS keys
(fabio), Pilatus mini-CBF (fabio), TIFF with a Pilatus ImageDescription (tifffile), and Eiger
NeXus master + data files with bitshuffle/LZ4 (h5py + hdf5plugin). ``geometry`` is an
``xray_spark.geometry.Geometry`` or a mapping with the images table's names (metres; beam centre in
pixels, row and column).
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np


def _columns(geometry):
    """The table's geometry names of a ``Geometry`` (a mapping passes as it is; None stays None)."""
    return geometry.columns() if hasattr(geometry, "columns") else geometry


def pilatus_text(geometry, detector: str | None = None) -> str:
    """A mini-CBF header (the lines fabio's PilatusHeader and XDS read)."""
    geometry = _columns(geometry)
    return ((f"# Detector: {detector}, S/N 10-0000\n" if detector else "")
            + f"# Pixel_size {geometry['pixel2_m']:.6g} m x {geometry['pixel1_m']:.6g} m\n"
            f"# Wavelength {geometry['wavelength_m'] * 1e10:.5f} A\n"
            f"# Detector_distance {geometry['distance_m']:.5f} m\n"
            f"# Beam_xy ({geometry['beam_center_col_px']:.2f}, {geometry['beam_center_row_px']:.2f}) pixels\n")


def write_cbf(path: str, frame: np.ndarray, geometry=None, detector: str | None = None) -> None:
    from fabio.cbfimage import CbfImage

    image = CbfImage(data=np.asarray(frame, dtype=np.int32))
    if geometry:
        image.header = {"_array_data.header_convention": "PILATUS_1.2",
                        "_array_data.header_contents": pilatus_text(geometry, detector)}
    image.write(path)


def write_edf(path: str, frames: Sequence[np.ndarray], geometry=None) -> None:
    """One or more frames in one EDF file, geometry in ESRF SAXS keys."""
    from fabio.edfimage import EdfImage

    header = {}
    geometry = _columns(geometry)
    if geometry:
        header = {"Center_1": geometry["beam_center_col_px"], "Center_2": geometry["beam_center_row_px"],
                  "PSize_1": geometry["pixel2_m"], "PSize_2": geometry["pixel1_m"],
                  "SampleDistance": geometry["distance_m"], "WaveLength": geometry["wavelength_m"]}
    image = EdfImage(data=np.asarray(frames[0], dtype=np.float32), header=dict(header))
    for frame in frames[1:]:
        image.append_frame(data=np.asarray(frame, dtype=np.float32), header=dict(header))
    image.write(path)


def write_tiff(path: str, frames: Sequence[np.ndarray], geometry=None) -> None:
    """One page per frame; geometry as a Pilatus ImageDescription."""
    import tifffile

    description = pilatus_text(geometry) if geometry else None
    with tifffile.TiffWriter(path) as tif:
        for frame in frames:
            tif.write(np.asarray(frame, dtype=np.uint32), photometric="minisblack", description=description,
                      metadata=None)


def write_eiger(master: str, frames: np.ndarray, geometry=None, frames_per_file: int = 2,
                pixel_mask: np.ndarray | None = None, detector: str | None = None) -> list[str]:
    """An Eiger master file linking data files of ``frames_per_file`` frames each (bitshuffle/LZ4).

    Returns the paths written, master first. ``pixel_mask``: True/non-zero = bad pixel;
    ``detector``: the NeXus description, e.g. 'Dectris EIGER2 Si 4M' (pyFAI then checks the shape).
    """
    import h5py
    import hdf5plugin

    stem = master[: -len("_master.h5")]
    frames = np.asarray(frames, dtype=np.uint32)
    written = [master]
    with h5py.File(master, "w") as h5:
        for k, start in enumerate(range(0, len(frames), frames_per_file), start=1):
            data_path = f"{stem}_data_{k:06d}.h5"
            with h5py.File(data_path, "w") as data:
                data.create_dataset("entry/data/data", data=frames[start:start + frames_per_file],
                                    chunks=(1, *frames.shape[1:]), **hdf5plugin.Bitshuffle(cname="lz4"))
            h5[f"entry/data/data_{k:06d}"] = h5py.ExternalLink(os.path.basename(data_path), "/entry/data/data")
            written.append(data_path)
        det = h5.require_group("entry/instrument/detector")
        if detector:
            det["description"] = detector.encode()
        geometry = _columns(geometry)
        if geometry:
            for name, key, units in (("x_pixel_size", "pixel2_m", "m"), ("y_pixel_size", "pixel1_m", "m"),
                                     ("beam_center_x", "beam_center_col_px", "pixel"),
                                     ("beam_center_y", "beam_center_row_px", "pixel"),
                                     ("detector_distance", "distance_m", "m")):
                det[name] = geometry[key]
                det[name].attrs["units"] = units
            h5["entry/instrument/beam/incident_wavelength"] = geometry["wavelength_m"] * 1e10
            h5["entry/instrument/beam/incident_wavelength"].attrs["units"] = "angstrom"
        if pixel_mask is not None:
            det["detectorSpecific/pixel_mask"] = np.asarray(pixel_mask).astype(np.uint32)
    return written
