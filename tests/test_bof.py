"""The bag-of-features numerical core (no Spark): descriptors, words, pyramid, k-means step, SVMs,
evaluation and the 20 high-level attributes."""
import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.metrics import average_precision_score
from sklearn.svm import SVC

from xray_spark import tags
from xray_spark.bof import descriptors as desc
from xray_spark.bof.kmeans import lloyd_partials
from xray_spark.bof.pyramid import assign_words, level_weights, pyramid_length, spatial_pyramid
from xray_spark.bof.svm import chi2_distances, decision_scores, fit_tag
from xray_spark.metrics import average_precisions, evaluate, results_table, split_runs


def _describe(image, mask, image_id="a", n=120, scales=(8, 16, 32)):
    return desc.patch_descriptors(image, mask, n_patches=n, scales=scales, size=8,
                                  seed=desc.image_seed(3, image_id))


def test_descriptors_shapes_determinism_and_masked_pixels_never_covered():
    rng = np.random.default_rng(0)
    image = rng.random((96, 80), dtype=np.float32)
    mask = np.zeros(image.shape, bool)
    mask[30:50, :] = True                       # a module gap across the image
    image[mask] = 1e6                           # would dominate any patch that covered it
    d, c = _describe(image, mask)
    assert d.shape == (120, desc.descriptor_length(8)) == (120, 66) and d.dtype == np.float32
    assert c.shape == (120, 2) and (c >= 0).all() and (c < 1).all()
    assert d[:, -2].max() < 1.0, "a patch mean over 1 means a patch covered a masked pixel"
    np.testing.assert_allclose(np.linalg.norm(d[:, :64], axis=1), 1.0, rtol=1e-5)
    d2, c2 = _describe(image, mask)
    assert d.tobytes() == d2.tobytes() and c.tobytes() == c2.tobytes()
    assert _describe(image, mask, image_id="b")[0].tobytes() != d.tobytes()


def test_a_scale_that_fits_nowhere_gives_its_patches_to_the_others():
    image = np.random.default_rng(1).random((40, 40), dtype=np.float32)
    mask = np.zeros((40, 40), bool)
    mask[::20, ::20] = True                     # no free 32x32 window, free 8x8 and 16x16 ones
    d, c = _describe(image, mask, n=50)
    assert len(d) == 50
    assert not len(desc.free_windows(mask, 32)) and len(desc.free_windows(mask, 16))


@pytest.mark.parametrize("shape, masked, reason", [
    ((0, 0), None, "empty"),
    ((20, 64), None, "too small: 20x64 pixels, the largest patch scale is 32"),
    ((64, 64), "all", "all masked"),
    ((64, 64), "grid", "no patch fits"),
])
def test_skip_reasons(shape, masked, reason):
    image = np.zeros(shape, np.float32)
    mask = np.zeros(shape, bool)
    if masked == "all":
        mask[:] = True
    elif masked == "grid":
        mask[::4, :] = True
    assert reason in desc.skip_reason(image, mask, [8, 16, 32])
    assert desc.skip_reason(np.zeros((64, 64)), np.zeros((64, 64), bool), [8, 16, 32]) is None


def test_scales_must_be_multiples_of_the_descriptor_size():
    with pytest.raises(ValueError, match="offending: \\[12\\]"):
        desc.check_scales([8, 12], 8)


def test_words_are_the_nearest_centres():
    rng = np.random.default_rng(2)
    x, centres = rng.random((1000, 66), dtype=np.float32), rng.random((37, 66), dtype=np.float32)
    words, sq = assign_words(x, centres, chunk_rows=128)
    distances = cdist(x, centres, "sqeuclidean")
    np.testing.assert_array_equal(words, distances.argmin(axis=1))
    np.testing.assert_allclose(sq, distances.min(axis=1), rtol=1e-4, atol=1e-4)


def test_spatial_pyramid_weights_cells_and_normalisation():
    k, levels = 5, 3
    words = np.array([0, 1, 4, 4])
    centres = np.array([[0.1, 0.1], [0.1, 0.9], [0.9, 0.1], [0.6, 0.6]])
    h = spatial_pyramid(words, centres, k, levels)
    assert h.shape == (pyramid_length(k, levels),) == (k * 21,)
    assert math.isclose(h.sum(), 1.0, rel_tol=1e-6)
    np.testing.assert_allclose(level_weights(3), [0.25, 0.25, 0.5])
    weights = level_weights(levels) / level_weights(levels).sum()
    level0, level1 = h[:k], h[k:5 * k].reshape(4, k)
    np.testing.assert_allclose(level0, weights[0] * np.array([1, 1, 0, 0, 2]) / 4, rtol=1e-6)
    np.testing.assert_allclose(level1.sum(axis=1), weights[1] * np.array([1, 1, 1, 1]) / 4, rtol=1e-6)
    assert level1[1, 1] > 0 and level1[2, 4] > 0 and level1[3, 4] > 0   # top-right, bottom-left, bottom-right
    level2 = h[5 * k:].reshape(16, k)
    assert level2[0 * 4 + 3, 1] > 0                                     # (0.1, 0.9) -> row 0, column 3
    assert not spatial_pyramid(np.empty(0, int), np.empty((0, 2)), k, levels).any()


def test_lloyd_partials_sum_members():
    rng = np.random.default_rng(3)
    x, centres = rng.random((500, 6), dtype=np.float32), rng.random((4, 6), dtype=np.float32)
    sums, counts, inertia = lloyd_partials(x, centres)
    nearest = cdist(x, centres, "sqeuclidean").argmin(axis=1)
    for j in range(4):
        np.testing.assert_allclose(sums[j], x[nearest == j].sum(axis=0), rtol=1e-5)
    assert counts.sum() == 500
    assert math.isclose(inertia, cdist(x, centres, "sqeuclidean").min(axis=1).sum(), rel_tol=1e-4)


def test_chi2_svm_separates_a_separable_toy_problem():
    rng = np.random.default_rng(4)
    y = np.repeat([0, 1], 60)
    x = rng.random((120, 10)) * 0.2
    x[y == 1, :5] += 1.0                         # positives put their mass on the first half
    x[y == 0, 5:] += 1.0
    x /= x.sum(axis=1, keepdims=True)
    distances = chi2_distances(x, x)
    np.testing.assert_allclose(distances[0, 1], ((x[0] - x[1]) ** 2 / (x[0] + x[1])).sum())
    train, test = np.arange(0, 120, 2), np.arange(1, 120, 2)
    fitted = fit_tag(distances[np.ix_(train, train)], y[train], np.arange(60) % 6, c_grid=[0.1, 1.0, 10.0],
                     gammas=[1.0, 4.0], n_folds=3, seed=0)
    assert fitted["cv_ap"] > 0.99
    s = fitted["support"]
    scores = decision_scores(distances[np.ix_(test, train[s])], fitted["dual"][:, None],
                             np.array([fitted["intercept"]]), np.array([fitted["gamma"]]))[:, 0]
    assert average_precision_score(y[test], scores) == 1.0
    svc = SVC(kernel="precomputed", C=fitted["C"], class_weight="balanced")
    svc.fit(np.exp(-fitted["gamma"] * distances[np.ix_(train, train)]), y[train])
    np.testing.assert_allclose(scores, svc.decision_function(np.exp(-fitted["gamma"] * distances[np.ix_(test, train)])),
                               rtol=1e-6, atol=1e-8)
    constant = fit_tag(distances[:10, :10], np.zeros(10, int), np.arange(10), c_grid=[1.0], gammas=[1.0],
                       n_folds=3, seed=0)
    assert len(constant["support"]) == 0 and constant["intercept"] == -1.0


def test_average_precision_matches_scikit_learn_and_nan_without_positives():
    rng = np.random.default_rng(5)
    labels = (rng.random((50, 3)) < 0.3).astype(int)
    labels[:, 2] = 0
    scores = rng.random((50, 3)) + labels
    ap = average_precisions(scores, labels)
    for j in range(2):
        assert ap[j] == average_precision_score(labels[:, j], scores[:, j])
    assert math.isnan(ap[2])
    r = evaluate(scores, labels, ["Ring: Isotropic", "Horizon", "Yoneda"], method="BoF", label_set="toy",
                 n_train_images=99)
    assert r.n_scored == 2 and math.isclose(r.mean_ap, ap[:2].mean())
    table = results_table([r])
    assert "| Yoneda | 0 | n/a |" in table and f"**{r.mean_ap:.4f}**" in table and "training images: BoF: 99" in table
    with pytest.raises(ValueError, match="same \\(n_images, n_labels\\) shape"):
        average_precisions(scores[:, :2], labels)


def test_split_by_run_is_deterministic_and_keeps_runs_whole():
    runs = [f"run{i % 10}" for i in range(200)]
    test = split_runs(runs, 0.25, seed=7)
    assert len(test) == 3 and test <= set(runs)
    assert split_runs(list(reversed(runs)), 0.25, seed=7) == test
    assert split_runs(runs, 0.25, seed=8) != test or split_runs(runs, 0.25, seed=9) != test
    assert len(split_runs(["a", "b"], 0.9, seed=0)) == 1
    with pytest.raises(ValueError, match="at least 2 runs"):
        split_runs(["a"] * 5, 0.25, seed=0)


def test_twenty_attributes_partition_the_vocabulary():
    grouped = [t for group in tags.ATTRIBUTES_20.values() for t in group]
    assert len(tags.ATTRIBUTES_20) == 20 and sorted(grouped) == sorted(tags.names())
    multi_hot = np.stack([tags.encode(["GISAXS", "Ring: Textured"]), tags.encode([])])
    attributes, names = tags.labels(multi_hot, "attributes20")
    assert attributes.shape == (2, 20) and not attributes[1].any()
    assert {names[j] for j in np.flatnonzero(attributes[0])} == {"Grazing-incidence geometry", "Oriented rings"}
    top, top_names = tags.labels(multi_hot, "top17")
    assert top.shape == (2, 17) and top_names == tags.subset("top17")


def test_paper_preset_sizes_and_job_arguments(capsys):
    from xray_spark.bof import pipeline
    from xray_spark.cli import main
    from xray_spark.config import load_config

    paper = load_config(None, ["bof.preset=paper"])
    assert (paper.bof.effective().patches_per_image, paper.bof.effective().words) == (1000, 2000)
    descriptors, dictionary, pyramid, svms = pipeline.stages(paper)
    assert descriptors.getOrDefault("patchesPerImage") == 1000 and dictionary.getOrDefault("k") == 2000
    assert pyramid.feature_length() == 2000 * 21 and svms.getOrDefault("labelSet") == "attributes20"
    assert pipeline.label_slug("top17") == "top17" and "|" not in pipeline.label_slug("Horizon|Ring: Isotropic")
    with pytest.raises(SystemExit) as exit_:
        main(["train_svm", "--no-such-option"])
    assert exit_.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["--set", "bof.kmeans=kmeans++", "build_dictionary"])
    assert exit_.value.code == 2 and "allowed values are 'lloyd', 'mllib'" in capsys.readouterr().err


def test_unknown_labels_are_left_out_of_that_tags_ap_only():
    scores = np.array([[0.9, 0.1], [0.8, 0.7], [0.1, 0.2], [0.2, 0.9]])
    labels = np.array([[1, 0], [-1, 1], [0, 0], [0, -1]])
    ap = average_precisions(scores, labels)
    assert ap[0] == 1.0 and ap[1] == 1.0                  # the unknown rows would have lowered both
    r = evaluate(scores, labels, ["a", "b"], method="m", label_set="s")
    assert r.positives == [1, 1]
