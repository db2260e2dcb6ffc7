"""Detector models: real frame shapes, pixel sizes, module gaps and counter limits.

The area detectors of the paper's beamlines and of today's archives, taken from pyFAI's definitions
where pyFAI has them (``pyFAI.detector_factory``: Pilatus and Eiger frames with their real module
gaps from ``calc_mask()``, the Perkin flat panel, the mar345 image plate's round field; the MarCCD
165 as pyFAI's ``MAR165``, a circular active area inside a square frame). The Photonic Science
CCD of the paper's WAXS station has no pyFAI definition; it is a gapless square frame defined
here from its size (``PHOTONICS_CCD``).

Images are rendered on a coarser square grid than the detector (``render_size``): each rendered
pixel stands for a rectangle of raw pixels, and its bad-pixel mask is the area fraction of gap
or inactive pixels in that rectangle, thresholded like ``preprocess`` thresholds stored pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Photonic Science X-ray CCD (paper's "Photonics CCD"): square, gapless, 16-bit ADC.
PHOTONICS_CCD = {"shape": (1042, 1042), "pixel_m": 101.7e-6}


@dataclass(frozen=True)
class DetectorModel:
    """One area detector: name (pyFAI's where it exists), tag, raw frame and counting limits.

    ``counter_limit`` is the largest count a raw pixel can hold (20-bit counters on Pilatus and
    Eiger, 16-bit ADCs on CCDs); ``photon_counting`` is False for integrating CCDs, which add
    read-out noise and a dark offset and bloom along columns when saturated.
    """
    name: str
    tag: str | None           # vocabulary tag of the detector type, None when the paper had none
    shape: tuple[int, int]    # raw frame (rows, columns)
    pixel1_m: float           # raw pixel size, slow (vertical) axis
    pixel2_m: float           # raw pixel size, fast (horizontal) axis
    counter_limit: float
    photon_counting: bool
    read_noise: float         # counts rms per raw pixel (CCDs)
    dark_offset: float        # counts per raw pixel (CCDs)


# Pilatus and Eiger: photon counting on 20-bit counters, no read noise or dark offset
PIXEL_ARRAY = dict(tag=None, counter_limit=2**20 - 1, photon_counting=True, read_noise=0.0, dark_offset=0.0)

DETECTORS = {
    "Pilatus1M": PIXEL_ARRAY,
    "Pilatus300k": PIXEL_ARRAY,
    "Pilatus2M": PIXEL_ARRAY,
    "Eiger1M": PIXEL_ARRAY,
    "Photonics CCD": dict(tag="Photonics CCD", counter_limit=2**16 - 1, photon_counting=False,
                          read_noise=6.0, dark_offset=10.0),
    "MarCCD": dict(tag="MarCCD", counter_limit=2**16 - 1, photon_counting=False,
                   read_noise=4.0, dark_offset=10.0),
    # what real archives hold beyond the paper's detectors: strips and wide modules (stretched to
    # the stored square, their rings are ellipses), large pixel arrays, an a-Si flat panel on its
    # dark offset of about a thousand counts, an image plate with a round field that is no MarCCD
    "Pilatus100k": PIXEL_ARRAY,
    "Pilatus300kw": PIXEL_ARRAY,
    "Pilatus6M": PIXEL_ARRAY,
    "Eiger4M": PIXEL_ARRAY,
    "Eiger2_1M-W": PIXEL_ARRAY,
    "Perkin": dict(tag=None, counter_limit=2**16 - 1, photon_counting=False, read_noise=10.0, dark_offset=1000.0),
    "Mar345": dict(tag=None, counter_limit=2**16 - 1, photon_counting=False, read_noise=2.0, dark_offset=0.0),
}


@lru_cache(maxsize=None)
def _pyfai(name: str):
    import pyFAI

    if name == "MarCCD":
        det = pyFAI.detector_factory("MAR165")
        det.binning = (2, 2)             # 2048 x 2048 of 79 um, the usual read-out
        return det
    if name == "Photonics CCD":
        from pyFAI.detectors import Detector

        return Detector(PHOTONICS_CCD["pixel_m"], PHOTONICS_CCD["pixel_m"], max_shape=PHOTONICS_CCD["shape"])
    return pyFAI.detector_factory(name)


@lru_cache(maxsize=None)
def detector(name: str) -> DetectorModel:
    """The model of detector ``name`` (one of ``DETECTORS``)."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}")
    det = _pyfai(name)
    return DetectorModel(name=name, shape=tuple(int(s) for s in det.shape), pixel1_m=float(det.pixel1),
                         pixel2_m=float(det.pixel2), **DETECTORS[name])


@lru_cache(maxsize=None)
def inactive_fraction(name: str, grid: tuple[int, int]) -> np.ndarray:
    """Fraction of each rendered pixel's area that is module gap or outside the active area.

    Returns
    -------
    (rows, cols) = ``grid`` float32 array in [0, 1]: 0 = fully sensitive, 1 = all gap.
    """
    det = _pyfai(name)
    mask = det.calc_mask()
    rows, cols = det.shape
    if mask is None:
        return np.zeros(grid, np.float32)
    mask = np.asarray(mask, dtype=np.float64)
    # area-weighted average of the raw mask over each rendered pixel's rectangle of raw pixels
    row_w = _overlap(np.linspace(0, rows, grid[0] + 1), rows)      # (grid rows, raw rows)
    col_w = _overlap(np.linspace(0, cols, grid[1] + 1), cols)      # (grid cols, raw cols)
    frac = row_w @ mask @ col_w.T
    frac = (frac / np.outer(row_w.sum(1), col_w.sum(1))).astype(np.float32)
    frac.setflags(write=False)
    return frac


def _overlap(edges: np.ndarray, n: int) -> np.ndarray:
    """Overlap length of each [edges[k], edges[k+1]) with each unit raw pixel [i, i+1); (len-1, n)."""
    lo, hi = edges[:-1, None], edges[1:, None]
    i = np.arange(n)[None, :]
    return np.clip(np.minimum(hi, i + 1) - np.maximum(lo, i), 0.0, None)
