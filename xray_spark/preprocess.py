"""The one image transform used by generation, ingest, training and inference, so that a score
means the same thing whichever path an image took.

raw detector counts + bad-pixel mask  ->  (size x size float32 in [0, 1], size x size bool mask)

1. Bad pixels (the mask, NaN, infinite or negative counts) carry no signal.
2. Log scale against a fixed full scale, ``log1p(counts) / log1p(full_scale_counts)``: fixed, not
   per image, so weak and strong scattering stay distinguishable (they are tags).
3. Resize to a square of ``size`` by area-weighted averaging of the valid pixels only
   (normalised convolution: ``resize(image * valid) / resize(valid)``), so module gaps and
   beamstops do not darken their neighbours. A stored pixel is bad when less than
   ``1 - mask_threshold`` of its area was valid; bad stored pixels are 0.
"""
from __future__ import annotations

import numpy as np
from skimage.transform import resize


def bad_pixels(raw: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Bad pixels of a raw frame: the given mask (True = bad) or non-finite or negative counts."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(raw) | (raw < 0)
    return bad if mask is None else bad | mask.astype(bool)


def log_scale(raw: np.ndarray, full_scale_counts: float) -> np.ndarray:
    """``log1p(counts) / log1p(full_scale)``, clipped to [0, 1]; bad values become 0."""
    counts = np.nan_to_num(raw.astype(np.float64, copy=False), nan=0.0, posinf=full_scale_counts, neginf=0.0)
    return np.clip(np.log1p(np.maximum(counts, 0.0)) / np.log1p(full_scale_counts), 0.0, 1.0)


def preprocess(raw: np.ndarray, mask: np.ndarray | None, size: int, *, full_scale_counts: float,
               mask_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Log-scaled, masked, resized image and its mask, both (size, size).

    Parameters
    ----------
    raw : (H, W) array of detector counts, any numeric dtype.
    mask : (H, W) bool array, True = bad pixel (gap, beamstop, dead/hot), or None.
    size : side of the output square, pixels.
    full_scale_counts : counts mapped to 1.0 (e.g. the detector's saturation level).
    mask_threshold : fraction of bad area above which an output pixel is bad.
    """
    raw = np.asarray(raw)
    if raw.ndim != 2 or min(raw.shape) < 2:
        raise ValueError(f"image must be 2-D and at least 2x2 pixels, got shape {raw.shape}")
    if mask is not None and mask.shape != raw.shape:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {raw.shape}")
    if size < 2:
        raise ValueError(f"size must be >= 2, got {size}")
    bad = bad_pixels(raw, mask)
    valid = (~bad).astype(np.float64)
    scaled = log_scale(raw, full_scale_counts) * valid
    if raw.shape == (size, size):
        image, coverage = scaled, valid
    else:
        anti_alias = raw.shape[0] > size or raw.shape[1] > size
        image = resize(scaled, (size, size), order=1, anti_aliasing=anti_alias, preserve_range=True)
        coverage = resize(valid, (size, size), order=1, anti_aliasing=anti_alias, preserve_range=True)
    out_bad = coverage < (1.0 - mask_threshold)
    with np.errstate(invalid="ignore", divide="ignore"):
        image = np.where(out_bad, 0.0, image / np.maximum(coverage, 1e-12))
    return np.clip(image, 0.0, 1.0).astype(np.float32), out_bad
