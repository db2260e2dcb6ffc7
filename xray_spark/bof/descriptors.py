"""Dense random multi-scale patch descriptors of one image (pure NumPy, no state, no I/O).

The bag-of-features baseline of Wang et al. samples patches at random positions and several
scales of every image, and describes each by its appearance. Here a patch of side ``s`` is
area-averaged down to ``size x size`` pixels; its descriptor is the contrast-normalised pattern
(mean removed, unit L2 norm) followed by the patch's mean and standard deviation. The stored
images are on a fixed absolute log scale, so mean and contrast carry physics (weak or strong
scattering, background) that the normalised pattern alone would throw away.

Patches never cover a bad pixel (module gap, beamstop, dead pixel): positions are drawn only
among the windows whose masked-pixel count, read from a summed-area table, is zero. All patches
of one scale are cut with one fancy-indexing gather: no Python loop over patches.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np


def descriptor_length(size: int) -> int:
    """Length of one descriptor: ``size**2`` pattern values, the mean and the standard deviation."""
    return size * size + 2


def image_seed(seed: int, image_id: str, stream: int = 0) -> np.random.SeedSequence:
    """Random stream ``stream`` of one image: (global seed, stable hash of its id, stream number),
    the same whatever the partitioning (stream 0: patch positions; 1: dictionary sampling)."""
    digest = int.from_bytes(hashlib.sha256(image_id.encode("utf-8")).digest()[:8], "little")
    return np.random.SeedSequence([seed, digest, stream])


def check_scales(scales: Sequence[int], size: int) -> None:
    """Fail early when a patch scale cannot be area-averaged to ``size`` pixels."""
    bad = [s for s in scales if s < size or s % size]
    if not scales or bad:
        raise ValueError(f"patch scales {list(scales)}: each must be a multiple of the descriptor size "
                         f"{size} (offending: {bad or 'none given'})")


def free_windows(mask: np.ndarray, scale: int) -> np.ndarray:
    """Top-left corners of every ``scale x scale`` window without a bad pixel.

    Returns an (n, 2) int array of (row, column); n may be 0.
    """
    height, width = mask.shape
    if height < scale or width < scale:
        return np.empty((0, 2), dtype=np.int64)
    table = np.zeros((height + 1, width + 1), dtype=np.int64)
    table[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0, dtype=np.int64), axis=1)
    bad = (table[scale:, scale:] - table[:-scale, scale:] - table[scale:, :-scale] + table[:-scale, :-scale])
    return np.argwhere(bad == 0)


def skip_reason(image: np.ndarray, mask: np.ndarray, scales: Sequence[int]) -> str | None:
    """Why a decoded image yields no patch (empty, too small, masked), or None when it is usable."""
    if image.size == 0:
        return "empty: the image has no pixels"
    if min(image.shape) < max(scales):
        return (f"too small: {image.shape[0]}x{image.shape[1]} pixels, the largest patch scale is "
                f"{max(scales)}")
    if mask.all():
        return "all masked: every pixel is bad"
    if not any(len(free_windows(mask, s)) for s in scales):
        return f"no patch fits: no {min(scales)}x{min(scales)} window is free of bad pixels"
    return None


def patch_descriptors(image: np.ndarray, mask: np.ndarray, *, n_patches: int, scales: Sequence[int],
                      size: int, seed: np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray]:
    """Random multi-scale patch descriptors of one image and the patch centres.

    Parameters
    ----------
    image : (H, W) float array, the stored (log-scaled) image.
    mask : (H, W) bool array, True = bad pixel; no patch covers one.
    n_patches : patches per image, shared evenly between the scales that fit somewhere.
    scales : patch sides in pixels, multiples of ``size``.
    size : side of the area-averaged patch.
    seed : the image's ``SeedSequence`` (see ``image_seed``).

    Returns
    -------
    descriptors : (n_patches, size**2 + 2) float32.
    centres : (n_patches, 2) float32, patch centres as (row, column) fractions of H and W in [0, 1).
    """
    check_scales(scales, size)
    rng = np.random.default_rng(seed)
    windows = [free_windows(mask, s) for s in scales]
    usable = [(s, w) for s, w in zip(scales, windows) if len(w)]
    if not usable:
        raise ValueError("no patch fits in the unmasked area of this image; call skip_reason first")
    counts = np.full(len(usable), n_patches // len(usable))
    counts[: n_patches % len(usable)] += 1
    image = np.asarray(image, dtype=np.float32)
    descriptors, centres = [], []
    for (scale, corners), count in zip(usable, counts):
        top_left = corners[rng.integers(0, len(corners), size=count)]
        offsets = np.arange(scale)
        rows = top_left[:, 0, None, None] + offsets[None, :, None]
        cols = top_left[:, 1, None, None] + offsets[None, None, :]
        patches = image[rows, cols]                                   # (count, scale, scale)
        factor = scale // size
        small = patches.reshape(count, size, factor, size, factor).mean(axis=(2, 4)).reshape(count, -1)
        mean = small.mean(axis=1, keepdims=True)
        pattern = small - mean
        norm = np.linalg.norm(pattern, axis=1, keepdims=True)
        pattern /= np.maximum(norm, 1e-6)
        std = patches.reshape(count, -1).std(axis=1, keepdims=True)
        descriptors.append(np.hstack([pattern, mean, std]))
        centres.append((top_left + scale / 2.0) / np.array(image.shape, dtype=np.float64))
    return (np.vstack(descriptors).astype(np.float32), np.vstack(centres).astype(np.float32))
