"""Masks of an archive frame and the detector they come from.

Masks have one polarity everywhere: True (stored as 1) = bad pixel. A frame's mask is the union of
the detector's module-gap mask (pyFAI's detector definition, when the detector is named and its
shape matches), the file's NeXus ``pixel_mask`` (non-zero = bad) and the run's user mask file
(named by the sidecar's ``mask``; non-zero = bad).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=32)
def pyfai_detector(name: str):
    """pyFAI's detector for a header or configured name ('PILATUS 1M', 'Eiger2_4M'), or None."""
    from pyFAI.detectors import detector_factory

    words = [w for w in name.replace("-", " ").split() if w.lower() not in ("dectris", "si", "cdte")]
    for candidate in (name, "".join(words), "_".join(words)):
        try:
            return detector_factory(candidate)
        except (RuntimeError, KeyError, ValueError):
            continue
    return None


def expected_shapes(detector) -> list[tuple[int, int]]:
    """Frame shapes a detector writes: full size and 2x2..4x4 binned."""
    rows, cols = detector.shape
    return [(rows // k, cols // k) for k in (1, 2, 3, 4)]


def gap_mask(detector, shape: tuple[int, int]) -> np.ndarray | None:
    """The detector's module-gap mask (True = bad) for a full-size frame, else None."""
    if detector is None or tuple(detector.shape) != tuple(shape) or detector.mask is None:
        return None
    return np.asarray(detector.mask) != 0


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
