"""Visual words of patches and the spatial-pyramid histogram of an image (pure NumPy).

Word assignment is a nearest-centre search written as one matrix product per chunk of patches:
``argmin_k ||x - c_k||^2 = argmin_k (||c_k||^2 - 2 x . c_k)``, so the heavy part is a float32
GEMM (BLAS-3) over the patches of many images at once; ``||x||^2`` does not change the argmin.

The pyramid follows Lazebnik, Schmid and Ponce (CVPR 2006): at level ``l`` the image is cut into
``2^l x 2^l`` cells and each cell gets a histogram of the words of the patches centred in it
(sum pooling); level 0 is weighted ``1 / 2^L`` and level ``l >= 1`` ``1 / 2^(L - l + 1)``, with
``L = levels - 1``; the concatenation is L1-normalised.
"""
from __future__ import annotations

import numpy as np


def assign_words(descriptors: np.ndarray, centres: np.ndarray, chunk_rows: int = 2048
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre of every descriptor.

    The score ``||c||^2 - 2 x . c`` comes out of a single GEMM per chunk by appending a 1 to
    every descriptor and ``||c||^2`` to every (scaled) centre, so no pass over the (chunk, k)
    score matrix is spent on anything but the argmin.

    Parameters
    ----------
    descriptors : (n, d) float32.
    centres : (k, d) float32.
    chunk_rows : descriptors per GEMM; (chunk_rows, k) scores should stay in the CPU cache.

    Returns
    -------
    words : (n,) int32 index of the nearest centre.
    sq_distances : (n,) float32 squared distance to it (clipped at 0).
    """
    descriptors = np.asarray(descriptors, dtype=np.float32)
    centres = np.asarray(centres, dtype=np.float32)
    if descriptors.ndim != 2 or centres.ndim != 2 or descriptors.shape[1] != centres.shape[1]:
        raise ValueError(f"descriptors {descriptors.shape} and centres {centres.shape} must be (n, d) and (k, d)")
    (n, d), k = descriptors.shape, len(centres)
    augmented = np.empty((d + 1, k), dtype=np.float32)
    augmented[:d] = -2.0 * centres.T
    augmented[d] = np.einsum("kd,kd->k", centres, centres)
    rows = np.ones((min(chunk_rows, n), d + 1), dtype=np.float32)
    scores = np.empty((min(chunk_rows, n), k), dtype=np.float32)
    words = np.empty(n, dtype=np.int32)
    sq = np.empty(n, dtype=np.float32)
    for start in range(0, n, chunk_rows):
        block = descriptors[start:start + chunk_rows]
        m = len(block)
        rows[:m, :d] = block
        np.matmul(rows[:m], augmented, out=scores[:m])
        best = scores[:m].argmin(axis=1)
        words[start:start + m] = best
        sq[start:start + m] = scores[np.arange(m), best] + np.einsum("nd,nd->n", block, block)
    return words, np.maximum(sq, 0.0)


def level_weights(levels: int) -> np.ndarray:
    """Lazebnik et al.'s weight of each pyramid level, shape (levels,)."""
    top = levels - 1
    return np.array([1.0 / 2 ** top if l == 0 else 1.0 / 2 ** (top - l + 1) for l in range(levels)])


def pyramid_length(n_words: int, levels: int) -> int:
    """Length of a pyramid histogram: ``n_words * sum_l 4^l``."""
    return n_words * sum(4 ** l for l in range(levels))


def spatial_pyramid(words: np.ndarray, centres: np.ndarray, n_words: int, levels: int) -> np.ndarray:
    """Weighted, L1-normalised spatial-pyramid histogram of one image.

    Parameters
    ----------
    words : (n,) int word of every patch.
    centres : (n, 2) patch centres as (row, column) fractions in [0, 1).
    n_words : dictionary size k.
    levels : pyramid levels (3 = 1x1, 2x2, 4x4 cells).

    Returns
    -------
    (k * sum_l 4^l,) float32, level by level, cell by cell (row-major), word by word; sums to 1
    (all zeros for an image without patches).
    """
    words = np.asarray(words, dtype=np.int64)
    centres = np.clip(np.asarray(centres, dtype=np.float64), 0.0, np.nextafter(1.0, 0.0))
    parts = []
    for level, weight in enumerate(level_weights(levels)):
        cells = 2 ** level
        cell = (centres[:, 0] * cells).astype(np.int64) * cells + (centres[:, 1] * cells).astype(np.int64)
        parts.append(weight * np.bincount(cell * n_words + words, minlength=cells * cells * n_words))
    histogram = np.concatenate(parts)
    total = histogram.sum()
    return (histogram / total if total > 0 else histogram).astype(np.float32)
