"""Masks of an archive frame and the detector they come from.

Masks have one polarity everywhere: True (stored as 1) = bad pixel. A frame's mask is the union of
the detector's module-gap mask (pyFAI's detector definition, when the detector is named and its
shape matches), the file's NeXus ``pixel_mask`` (non-zero = bad) and the run's user mask file
(named by the sidecar's ``mask``; non-zero = bad).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from xray_spark.geometry import pyfai_detector

BINNINGS = (1, 2, 3, 4)


def expected_shapes(detector) -> list[tuple[int, int]]:
    """Frame shapes a detector writes: full size and 2x2..4x4 binned."""
    rows, cols = detector.shape
    return [(rows // k, cols // k) for k in BINNINGS]


@lru_cache(maxsize=1)
def _modular_shapes() -> dict:
    """{(rows, cols): [pyFAI detector classes]} of pyFAI's registry (``ALL_DETECTORS``), from the
    classes' ``MAX_SHAPE`` (no detector is built), for the modular detectors (``MODULE_GAP`` set)."""
    from pyFAI.detectors import ALL_DETECTORS

    shapes: dict = {}
    for cls in set(ALL_DETECTORS.values()):
        shape, gap = getattr(cls, "MAX_SHAPE", None), getattr(cls, "MODULE_GAP", None)
        if shape and gap:
            for k in BINNINGS:
                shapes.setdefault((shape[0] // k, shape[1] // k), []).append(cls)
    return shapes


@lru_cache(maxsize=64)
def detector_of_shape(shape: tuple[int, int]):
    """pyFAI's modular detector that writes frames of ``shape`` (full or binned), or None.

    Several classes with one shape (Pilatus 1M and Pilatus CdTe 1M) share their module layout:
    any of them gives the same gaps; classes with different layouts for one shape give None.
    """
    classes = _modular_shapes().get(tuple(shape), [])
    layouts = {(tuple(c.MAX_SHAPE), tuple(c.MODULE_SIZE or ()), tuple(c.MODULE_GAP)) for c in classes}
    if len(layouts) != 1:
        return None
    return min(classes, key=lambda c: c.__name__)()


def identify(name: str | None, shape: tuple[int, int]) -> tuple[object | None, list[str]]:
    """(pyFAI detector whose gap mask fits frames of ``shape``, flags) from the header/sidecar name,
    else from the shape alone (pyFAI's registry). A named detector that does not write ``shape``
    (an Eiger2 16M frame is 4362x4148, pyFAI's Eiger 16M 4371x4150) gives None and a flag: the
    frame is ingested without a gap mask. A family name alone ('Lambda') takes the detector of that
    family with the frame's shape. A square power-of-two frame (512x512, 1024x1024) names no detector
    by its shape: CCDs, binned and generic arrays have those shapes, and a wrong guess masks good
    pixels as gaps."""
    rows, cols = shape
    by_shape = None if rows == cols and rows & (rows - 1) == 0 else detector_of_shape(tuple(shape))
    if name:
        detector = pyfai_detector(name)
        if detector is not None and tuple(shape) in expected_shapes(detector):
            return detector, []
        family = name.split()[0].lower()
        if detector is None and by_shape is not None and by_shape.name.lower().startswith(family):
            return by_shape, [f"detector {name!r} read as pyFAI's {by_shape.name}, the {family} of its shape"]
        return None, [f"detector {name!r}: " + ("unknown to pyFAI" if detector is None else
                      f"pyFAI's {detector.name} is {detector.shape[0]}x{detector.shape[1]}, not "
                      f"{rows}x{cols} or binned") + "; no gap mask"]
    flags = [f"detector identified by its shape {rows}x{cols}: {by_shape.name}"] if by_shape else []
    return by_shape, flags


def gap_mask(detector, shape: tuple[int, int]) -> np.ndarray | None:
    """The detector's module-gap mask (True = bad) for a full-size or k x k binned frame, else None.

    A binned pixel is bad when any of the k x k pixels it sums is."""
    if detector is None or detector.mask is None:
        return None
    full = np.asarray(detector.mask) != 0
    for k in BINNINGS:
        if (full.shape[0] // k, full.shape[1] // k) == tuple(shape):
            if k == 1:
                return full
            rows, cols = shape
            return full[: rows * k, : cols * k].reshape(rows, k, cols, k).any(axis=(1, 3))
    return None


@lru_cache(maxsize=8)
def read_mask_file(path: str) -> np.ndarray:
    """A user mask file (EDF, TIFF, CBF or .npy; non-zero = bad pixel) as a bool array."""
    if path.endswith(".npy"):
        data = np.load(path, allow_pickle=False)
    else:
        import fabio

        data = fabio.open(path).data
    return np.asarray(data) != 0


def combine_masks(shape: tuple[int, int], *masks: np.ndarray | None) -> np.ndarray:
    """Union of the given masks (None = no mask), all of ``shape``; True = bad."""
    out = np.zeros(shape, dtype=bool)
    for mask in masks:
        if mask is not None:
            if mask.shape != tuple(shape):
                raise ValueError(f"mask shape {mask.shape} differs from frame shape {tuple(shape)}")
            out |= mask
    return out
