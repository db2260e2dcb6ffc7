"""The one image transform used by generation, ingest, training and inference, so that a score
means the same thing whichever path an image took.

raw detector counts + bad-pixel mask  ->  (size x size float32 in [0, 1], size x size bool mask)

1. Bad pixels (the mask, NaN, infinite or negative counts) carry no signal.
2. Log scale against a fixed full scale, ``log1p(counts) / log1p(full_scale_counts)``: fixed, not
   per image, so weak and strong scattering stay distinguishable (they are tags).
3. Resize by area-weighted averaging of the valid pixels only (normalised convolution:
   ``bin(image * valid) / bin(valid)``), so module gaps and beamstops do not darken their
   neighbours. Each stored pixel is the mean of the detector area it covers, as detector binning
   does; it is bad when less than ``1 - mask_threshold`` of that area was valid. Bad stored pixels
   are 0.
4. The stored image is a square of ``size``. With ``letterbox`` (``preprocess.letterbox``) the frame keeps its
   aspect ratio: its long side spans the square, its short side ``frame_shape``'s share of it,
   centred, and the margins are bad pixels; a ring stays a circle on a Pilatus 300K (619 x 487) or
   a Pilatus 100K (195 x 487) frame. Without it (the default) the frame is stretched to the square
   (a ring on a non-square frame becomes an ellipse). Measured on the real-frame development set,
   letterboxing did not help (docs/cnn.md), so it is an option, not the default.

The binning is written here rather than taken from scikit-image's ``resize``: as two sparse
matrix products it costs a Pilatus 1M frame about 6 ms instead of ``resize``'s 30 ms of Gaussian
anti-aliasing at full resolution, which was 70% of reading an archive (``python -m bench
ingest``), and the area of each stored pixel is exact, which is what the mask rule is about.
Steps 1-3 run strip by strip of rows (``bin_valid``): a 4 MB frame and its half-dozen
frame-sized temporaries made each core wait on memory, so two processes on two cores got 1.4-1.6x
the frames of one; strips of 32k pixels stay in the core's cache (int32 Pilatus 1M frame: 9 ms
instead of 17 ms in a fresh process, and closer to 2x on two cores).
"""
from __future__ import annotations

import functools

import numpy as np
import scipy.sparse


def bad_pixels(raw: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Bad pixels of a raw frame: the given mask (True = bad) or non-finite or negative counts."""
    if np.issubdtype(raw.dtype, np.unsignedinteger):
        bad = np.zeros(raw.shape, bool)
    elif np.issubdtype(raw.dtype, np.integer):
        bad = raw < 0
    else:
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(raw) | (raw < 0)
    return bad if mask is None else bad | mask.astype(bool)


def log_scale(raw: np.ndarray, full_scale_counts: float) -> np.ndarray:
    """``log1p(counts) / log1p(full_scale)`` as float32, clipped to [0, 1]; bad values become 0.

    Written for speed, as it touches every detector pixel: numpy's float32 ``log1p`` is a scalar
    loop on CPUs without AVX-512 (20 ms for a Pilatus 1M frame on an AMD EPYC). Integer counts
    (what photon-counting detectors write) are looked up in a table of the scale (``count_scale``,
    3-4 ms, exact to float32 rounding); other counts are capped to [0, full scale] (NaN to 0) and
    go through the vectorised ``log`` of ``1 + counts`` in place on one float32 copy (7 ms), whose
    error, under 2e-7 of the log, is far below what a stored pixel resolves."""
    raw = np.asarray(raw)
    if np.issubdtype(raw.dtype, np.integer) and full_scale_counts < LOOKUP_LIMIT:
        table = count_scale(float(full_scale_counts))
        fits = np.issubdtype(raw.dtype, np.unsignedinteger) and np.iinfo(raw.dtype).max < len(table)
        return table.take(raw if fits else np.clip(raw, 0, len(table) - 1))
    counts = np.array(raw, dtype=np.float32)
    np.fmax(counts, 0.0, out=counts)                       # fmax: NaN and -inf become 0
    np.fmin(counts, np.float32(full_scale_counts), out=counts)
    counts += np.float32(1.0)
    np.log(counts, out=counts)
    counts *= np.float32(1.0 / np.log1p(full_scale_counts))
    return np.minimum(counts, 1.0, out=counts)


LOOKUP_LIMIT = 2**24        # integer counts up to this full scale use a table (64 MB at most)


@functools.lru_cache(maxsize=4)
def count_scale(full_scale_counts: float) -> np.ndarray:
    """The log scale of every integer count 0 .. floor(full_scale) + 1 (the last entry is 1.0, for
    all counts above the full scale), float32, computed in float64."""
    counts = np.arange(int(full_scale_counts) + 2, dtype=np.float64)
    return np.minimum(np.log1p(counts) / np.log1p(full_scale_counts), 1.0).astype(np.float32)


@functools.lru_cache(maxsize=64)
def area_weights(n_in: int, n_out: int) -> scipy.sparse.csr_matrix:
    """(n_out, n_in) matrix whose row j averages the input pixels under output pixel j, each
    weighted by the fraction of the output pixel it covers (rows sum to 1)."""
    scale = n_in / n_out
    start = np.arange(n_out)[:, None] * scale                      # output pixel j covers [start, start + scale)
    first = np.floor(start).astype(int)
    inputs = first + np.arange(int(np.ceil(scale)) + 1)[None, :]   # every input pixel that may overlap
    overlap = np.minimum(start + scale, inputs + 1) - np.maximum(start, inputs)
    keep = (overlap > 0) & (inputs < n_in)
    rows = np.broadcast_to(np.arange(n_out)[:, None], inputs.shape)[keep]
    return scipy.sparse.csr_matrix(((overlap[keep] / scale).astype(np.float32), (rows, inputs[keep])),
                                   shape=(n_out, n_in))


STRIP_PIXELS = 1 << 15     # pixels of a strip of rows worked on at a time (its arrays stay in cache)


def strip_rows(width: int) -> int:
    """Rows of a strip of about ``STRIP_PIXELS`` pixels of a frame ``width`` pixels wide."""
    return max(1, STRIP_PIXELS // width)


@functools.lru_cache(maxsize=16)
def strip_weights(n_in: int, n_out: int, rows: int) -> tuple:
    """``area_weights(n_in, n_out)`` cut into strips of ``rows`` input pixels: for each strip
    (first, last + 1) input pixel, the (first, last + 1) output pixels it touches and the weights
    between the two, as a CSR block."""
    weights = area_weights(n_in, n_out).tocsc()
    blocks = []
    for r0 in range(0, n_in, rows):
        r1 = min(n_in, r0 + rows)
        block = weights[:, r0:r1].tocsr()
        touched = np.flatnonzero(np.diff(block.indptr))
        j0, j1 = int(touched[0]), int(touched[-1]) + 1
        blocks.append((r0, r1, j0, j1, block[j0:j1]))
    return tuple(blocks)


def bin_valid(raw: np.ndarray, mask: np.ndarray | None, shape: tuple[int, int],
              full_scale_counts: float) -> tuple[np.ndarray, np.ndarray]:
    """(binned log-scaled valid counts, binned valid area), both of ``shape``, of a raw frame.

    Strip by strip of rows: each strip's bad pixels, log scale and row binning are done while its
    arrays are in the core's cache, so the frame crosses the memory bus once (see module docstring).
    """
    height, width = raw.shape
    image = np.zeros((shape[0], width), np.float32)
    coverage = np.zeros((shape[0], width), np.float32)
    for r0, r1, j0, j1, weights in strip_weights(height, shape[0], strip_rows(width)):
        valid = np.logical_not(bad_pixels(raw[r0:r1], None if mask is None else mask[r0:r1])).astype(np.float32)
        scaled = log_scale(raw[r0:r1], full_scale_counts)
        scaled *= valid
        image[j0:j1] += weights @ scaled
        coverage[j0:j1] += weights @ valid
    columns = area_weights(width, shape[1])
    return (columns @ image.T).T, (columns @ coverage.T).T


def stored_shape(frame_shape: tuple[int, int], size: int, letterbox: bool = False) -> tuple[int, int]:
    """The part of the stored ``size`` square a frame of ``frame_shape`` covers (rows, columns)."""
    if not letterbox:
        return size, size
    rows, cols = frame_shape
    long = max(rows, cols)
    return max(1, round(size * rows / long)), max(1, round(size * cols / long))


def bad_pixel_count(raw: np.ndarray, mask: np.ndarray | None = None) -> int:
    """Number of bad pixels of a raw frame (``bad_pixels``), counted strip by strip (no frame-sized
    temporaries)."""
    rows = strip_rows(raw.shape[1])
    return sum(int(np.count_nonzero(bad_pixels(raw[r:r + rows], None if mask is None else mask[r:r + rows])))
               for r in range(0, raw.shape[0], rows))


def preprocess(raw: np.ndarray, mask: np.ndarray | None, size: int, *, full_scale_counts: float,
               mask_threshold: float = 0.5, letterbox: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Log-scaled, masked, resized image and its mask, both (size, size).

    Parameters
    ----------
    raw : (H, W) array of detector counts, any numeric dtype.
    mask : (H, W) bool array, True = bad pixel (gap, beamstop, dead/hot), or None.
    size : side of the output square, pixels.
    full_scale_counts : counts mapped to 1.0 (e.g. the detector's saturation level).
    mask_threshold : fraction of bad area above which an output pixel is bad.
    letterbox : keep the frame's aspect ratio (margins are bad pixels), else stretch to the square.
    """
    raw = np.asarray(raw)
    if raw.ndim != 2 or min(raw.shape) < 2:
        raise ValueError(f"image must be 2-D and at least 2x2 pixels, got shape {raw.shape}")
    if mask is not None and mask.shape != raw.shape:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {raw.shape}")
    if size < 2:
        raise ValueError(f"size must be >= 2, got {size}")
    shape = stored_shape(raw.shape, size, letterbox)
    if raw.shape == shape:
        coverage = np.logical_not(bad_pixels(raw, mask)).astype(np.float32)
        image = log_scale(raw, full_scale_counts) * coverage
    else:
        image, coverage = bin_valid(raw, mask, shape, full_scale_counts)
    out_bad = coverage < (1.0 - mask_threshold)
    with np.errstate(invalid="ignore", divide="ignore"):
        image = np.clip(np.where(out_bad, 0.0, image / np.maximum(coverage, 1e-12)), 0.0, 1.0).astype(np.float32)
    if shape == (size, size):
        return image, out_bad
    top, left = (size - shape[0]) // 2, (size - shape[1]) // 2
    stored, stored_bad = np.zeros((size, size), np.float32), np.ones((size, size), bool)
    stored[top:top + shape[0], left:left + shape[1]] = image
    stored_bad[top:top + shape[0], left:left + shape[1]] = out_bad
    return stored, stored_bad
