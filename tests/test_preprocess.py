import numpy as np
import pytest

from xray_spark.preprocess import area_weights, log_scale, preprocess, stored_shape

FULL = 2.0**20 - 1


def test_output_shape_range_and_dtype_for_non_square_detector():
    raw = np.random.default_rng(0).poisson(50, size=(1043, 981)).astype(np.uint32)
    image, mask = preprocess(raw, None, 256, full_scale_counts=FULL, letterbox=False)
    assert image.shape == mask.shape == (256, 256)
    assert image.dtype == np.float32 and 0.0 <= image.min() and image.max() <= 1.0
    assert not mask.any()
    boxed, boxed_mask = preprocess(raw, None, 256, full_scale_counts=FULL, letterbox=True)
    assert boxed.shape == (256, 256) and boxed_mask[:, :7].all() and boxed_mask[:, -8:].all()
    assert not boxed_mask[:, 7:-8].any() and (boxed[boxed_mask] == 0).all()


@pytest.mark.parametrize("shape", [(195, 487), (619, 487), (1679, 1475)])
def test_letterbox_keeps_a_ring_round_on_non_square_frames(shape):
    rows, cols = np.indices(shape)
    centre = (shape[0] * 0.45, shape[1] * 0.55)
    radius = 0.3 * min(shape)
    ring = np.abs(np.hypot(rows - centre[0], cols - centre[1]) - radius) < 2.5
    image, mask = preprocess(np.where(ring, 5000, 1), None, 128, full_scale_counts=FULL, letterbox=True)
    hit_rows, hit_cols = np.nonzero(image > 0.3)
    height, width = np.ptp(hit_rows) + 1, np.ptp(hit_cols) + 1
    assert abs(height - width) <= 2, (height, width)                    # a circle, not an ellipse
    assert mask.sum() == 128 * 128 - np.prod(stored_shape(shape, 128, letterbox=True))
    stretched, _ = preprocess(np.where(ring, 5000, 1), None, 128, full_scale_counts=FULL, letterbox=False)
    r, c = np.nonzero(stretched > 0.3)
    assert abs((np.ptp(r) + 1) - (np.ptp(c) + 1)) > 4                  # the distortion letterboxing removes


def test_log_scale_is_absolute_so_weak_and_strong_differ():
    weak, _ = preprocess(np.full((64, 64), 10.0), None, 32, full_scale_counts=FULL)
    strong, _ = preprocess(np.full((64, 64), 10000.0), None, 32, full_scale_counts=FULL)
    np.testing.assert_allclose(weak, np.log1p(10) / np.log1p(FULL), rtol=1e-5)
    assert strong.mean() > 3 * weak.mean()


def test_gaps_do_not_darken_neighbours_and_are_masked():
    raw = np.full((128, 128), 1000.0)
    gap = np.zeros_like(raw, dtype=bool)
    gap[:, 60:68] = True               # an 8-pixel module gap
    raw[gap] = 0
    image, mask = preprocess(raw, gap, 64, full_scale_counts=FULL)
    expected = np.log1p(1000) / np.log1p(FULL)
    assert mask[:, 31].all() and mask[:, 32].all() and not mask[:, 28].any() and not mask[:, 36].any()
    np.testing.assert_allclose(image[~mask], expected, rtol=1e-4)
    assert (image[mask] == 0).all()


def test_bad_values_are_masked_not_propagated():
    raw = np.full((32, 32), 100.0)
    raw[3, 3], raw[10, 10], raw[20, 20] = np.nan, -5, np.inf
    image, mask = preprocess(raw, None, 32, full_scale_counts=FULL)
    assert mask[3, 3] and mask[10, 10] and mask[20, 20] and mask.sum() == 3
    assert np.isfinite(image).all()


@pytest.mark.parametrize("raw, mask, size, message", [
    (np.zeros(10), None, 8, "must be 2-D"),
    (np.zeros((10, 10)), np.zeros((5, 5), bool), 8, "mask shape"),
    (np.zeros((10, 10)), None, 1, "size must be"),
])
def test_bad_arguments(raw, mask, size, message):
    with pytest.raises(ValueError, match=message):
        preprocess(raw, mask, size, full_scale_counts=FULL)


def test_integer_binning_is_the_block_mean_of_the_log_scaled_counts():
    raw = np.random.default_rng(1).poisson(40, size=(64, 96)).astype(np.uint16)
    image, mask = preprocess(raw, None, 16, full_scale_counts=FULL, letterbox=False)
    scaled = np.log1p(raw.astype(np.float64)) / np.log1p(FULL)
    block = scaled.reshape(16, 4, 16, 6).mean(axis=(1, 3))
    np.testing.assert_allclose(image, block, rtol=1e-5)
    assert not mask.any()


@pytest.mark.parametrize("n_in, n_out", [(1043, 256), (981, 256), (256, 256), (100, 256), (4, 3)])
def test_area_weights_average_and_conserve_every_input_pixel(n_in, n_out):
    weights = area_weights(n_in, n_out).toarray()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)            # each output is a mean
    np.testing.assert_allclose(weights.sum(axis=0), n_out / n_in, atol=1e-5)   # each input counted once in all
    assert (weights >= 0).all()


def test_a_half_bad_output_pixel_follows_the_mask_threshold():
    raw = np.full((8, 8), 100.0)
    bad = np.zeros((8, 8), bool)
    bad[:4, :2] = True                                  # half of the top-left 4x4 output pixel
    _, strict = preprocess(raw, bad, 2, full_scale_counts=FULL, mask_threshold=0.4)
    _, lenient = preprocess(raw, bad, 2, full_scale_counts=FULL, mask_threshold=0.6)
    assert strict[0, 0] and not lenient[0, 0] and strict.sum() == 1


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int32, np.int64])
def test_integer_counts_are_scaled_as_the_float_formula_scales_them(dtype):
    # integer counts go through a lookup table; it must agree with log1p(counts) / log1p(full)
    info = np.iinfo(dtype)
    counts = np.array([0, 1, 2, 20, 255, info.max, max(info.min, -2)], dtype=dtype)
    expected = np.clip(np.log1p(np.maximum(counts.astype(np.float64), 0)) / np.log1p(FULL), 0, 1)
    np.testing.assert_allclose(log_scale(counts, FULL), expected, rtol=1e-6, atol=1e-7)
    assert log_scale(counts, FULL).dtype == np.float32


def test_integer_counts_above_a_fractional_full_scale_are_clipped_to_one():
    counts = np.array([0, 99, 100, 101, 10**6], dtype=np.int32)
    np.testing.assert_allclose(log_scale(counts, 100.5), [0, np.log1p(99) / np.log1p(100.5),
                                                          np.log1p(100) / np.log1p(100.5), 1, 1], rtol=1e-6)
