"""Counting statistics and detector response: Poisson noise, CCD read noise, saturation, blooming.

A rendered pixel stands for ``k`` raw pixels and stores their mean, so its noise is that of
``Poisson(k lambda) / k``. numpy's ``Generator.poisson`` costs 3-8 ms for a 256 x 256 frame,
more than our whole per-image budget; ``poisson`` below draws the same law by inverse
transform from a table of Poisson quantiles (built once per process, ~0.1 s), ~0.5 ms per
frame: the table row is chosen by ``sqrt(lambda)`` (equal steps in units of the noise), with
stochastic rounding between rows so the mean stays unbiased; above ``NORMAL_ABOVE`` expected
counts the normal approximation ``lambda + sqrt(lambda) z`` is used (skewness < 0.15), z read
from a table of normal quantiles with the same uniform (tails cut at 3.5 sigma).
The tests compare means and variances with numpy's exact sampler.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import gammaln

NORMAL_ABOVE = 50.0      # expected counts above which the normal approximation is used
ROWS_PER_UNIT = 64       # table rows per unit of sqrt(lambda)
QUANTILES = 4096         # table columns (uniform levels)


@lru_cache(maxsize=1)
def _quantile_table() -> np.ndarray:
    """(rows, QUANTILES) int16 Poisson quantiles at lambda = (row / ROWS_PER_UNIT)^2."""
    rows = int(np.ceil(np.sqrt(NORMAL_ABOVE) * ROWS_PER_UNIT)) + 2
    lam = (np.arange(rows) / ROWS_PER_UNIT) ** 2
    n = np.arange(int(NORMAL_ABOVE + 12 * np.sqrt(NORMAL_ABOVE) + 20))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pmf = -lam[:, None] + n[None, :] * np.log(lam[:, None]) - gammaln(n + 1)[None, :]
    log_pmf[0] = np.where(n == 0, 0.0, -np.inf)
    cdf = np.cumsum(np.exp(log_pmf), axis=1)
    u = (np.arange(QUANTILES) + 0.5) / QUANTILES
    table = np.stack([np.searchsorted(row, u) for row in cdf]).astype(np.int16)
    table.setflags(write=False)
    return table


@lru_cache(maxsize=1)
def _normal_quantiles() -> np.ndarray:
    """(QUANTILES,) float32 standard normal quantiles at the table's uniform levels."""
    from scipy.special import ndtri

    return ndtri((np.arange(QUANTILES) + 0.5) / QUANTILES).astype(np.float32)


def poisson(lam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson draws with means ``lam`` (any shape, float32 result), as described above."""
    lam = np.asarray(lam, np.float32)
    table = _quantile_table()
    u = rng.random(lam.shape, dtype=np.float32) * np.float32(QUANTILES)
    column = u.astype(np.int32)
    root = np.sqrt(lam)
    high = lam >= NORMAL_ABOVE
    normal = None
    if high.any():
        normal = np.maximum(np.rint(lam + root * np.take(_normal_quantiles(), column)), 0.0)
        if high.all():
            return normal.astype(np.float32)
    dither = u - column                                   # the uniform's remaining bits
    row = np.minimum(root * np.float32(ROWS_PER_UNIT) + dither, np.float32(table.shape[0] - 1)).astype(np.int32)
    low = np.take(table.ravel(), row * np.int32(QUANTILES) + column).astype(np.float32)
    return low if normal is None else np.where(high, normal, low).astype(np.float32)


def detect(expected: np.ndarray, det, k: float, rng: np.random.Generator) -> np.ndarray:
    """Noisy mean counts per raw pixel of rendered pixels that stand for ``k`` raw pixels each.

    Photon counting: ``Poisson(k lambda) / k``. CCDs add their dark offset and read noise (rms
    per raw pixel, averaged over k). Clipped to [0, counter limit]. (rows, cols) float32.
    """
    counts = poisson(expected * np.float32(k), rng) / np.float32(k)
    if not det.photon_counting:
        levels = (rng.random(expected.shape, dtype=np.float32) * np.float32(QUANTILES)).astype(np.int32)
        counts += np.float32(det.dark_offset) + np.float32(det.read_noise / np.sqrt(k)) * \
            np.take(_normal_quantiles(), levels)
    return np.clip(counts, 0.0, np.float32(det.counter_limit))


def bloom(counts: np.ndarray, expected: np.ndarray, limit: float, raw_rows_per_pixel: float,
          max_fraction: float = 0.25) -> np.ndarray:
    """CCD blooming: charge above a saturated pixel's full well runs up and down its column.

    A pixel expecting ``e > limit`` fills ``(e - limit) / limit`` more raw pixels of its column,
    half each way, at most ``max_fraction`` of the frame height. Returns a new frame.
    """
    excess = np.maximum(expected - np.float32(limit), 0.0)
    reach = np.minimum(np.ceil(excess / limit / raw_rows_per_pixel / 2),
                       max_fraction * counts.shape[0]).astype(np.int32)
    if not reach.any():
        return counts
    counts = counts.copy()
    for col in np.flatnonzero(reach.any(axis=0)):
        for row in np.flatnonzero(reach[:, col]):
            lo, hi = max(row - reach[row, col], 0), min(row + reach[row, col] + 1, counts.shape[0])
            counts[lo:hi, col] = limit
    return counts
