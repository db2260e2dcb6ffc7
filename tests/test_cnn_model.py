"""The CNN's network and the model-directory protocol, with real TensorFlow (no Spark)."""
import json

import numpy as np
import pytest

from xray_spark import modeldir
from xray_spark.cnn.model import PRESETS, WEIGHTS, architecture, build_model, weighted_binary_crossentropy
from xray_spark.config import load_config


def test_paper_preset_is_the_papers_alexnet_size():
    model = build_model(PRESETS["paper"], 17)
    assert model.output_shape == (None, 17)
    assert 60e6 <= model.count_params() <= 72.5e6  # the paper: "about 72 million parameters"
    convs = [layer for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
    dense = [layer for layer in model.layers if layer.__class__.__name__ == "Dense"]
    assert len(convs) == 5 and len(dense) == 3
    assert dense[-1].activation.__name__ == "sigmoid"
    scores = model(np.random.default_rng(0).random((2, 256, 256, 1), dtype=np.float32)).numpy()
    assert scores.shape == (2, 17) and np.all((scores > 0) & (scores < 1))


def test_cpu_preset_is_small_and_overrides_come_from_the_configuration():
    config = load_config(None, ["cnn.preset=cpu", "cnn.input_size=96", "cnn.dense_units=128"])
    arch = architecture(config)
    assert (arch.input_size, arch.dense_units, arch.width) == (96, 128, PRESETS["cpu"].width)
    model = build_model(arch, 5)
    assert model.get_layer("resize").output_shape == (None, 96, 96, 1)
    assert model.count_params() < 2e6


def test_contrast_only_feeds_the_network_the_image_at_its_own_contrast_alone():
    """cnn.contrast_only: one input channel, the standardised image, so a frame's count scale (a
    multiplied exposure) does not change its scores (the pedestal step off: a floor taken off in counts
    is not a shift of the log scale); the default keeps both channels."""
    import numpy as np

    arch = architecture(load_config(None, ["cnn.contrast_only=true", "cnn.pedestal_percentile=0"]))
    assert arch.contrast_only and arch.contrast_channel
    model = build_model(arch, 3)
    assert model.get_layer("conv1").input.shape[-1] == 1
    assert build_model(architecture(load_config(None, [])), 3).get_layer("conv1").input.shape[-1] == 2
    image = np.random.default_rng(0).random((1, 64, 64, 1)).astype(np.float32) * 0.4 + 0.1
    for changed in (image + 0.15, image * 1.7):     # counts x e^(0.15 log1p(full scale)); a contrast stretch
        np.testing.assert_allclose(model(changed).numpy(), model(image).numpy(), rtol=1e-4, atol=1e-5)


def test_pedestal_is_taken_off_in_counts_before_the_network():
    """cnn.pedestal_percentile: the percentile of a frame's valid counts (read on the stored image's
    sample grid, numpy's ``lower`` rule) is subtracted in counts; an offset added to every valid count
    leaves the network's input as it was; bad pixels stay 0; on by default, 0 turns it off."""
    import numpy as np

    from xray_spark.cnn.model import pedestal_stride, remove_pedestal

    full_scale = 1048575.0
    arch = architecture(load_config(None, []))
    assert (arch.pedestal_percentile, arch.full_scale_counts) == (1.0, full_scale)
    off = architecture(load_config(None, ["cnn.pedestal_percentile=0"]))
    assert (off.pedestal_percentile, off.full_scale_counts) == (0.0, 0.0)
    rng = np.random.default_rng(5)
    counts = rng.poisson(20.0, (64, 64)).astype(np.float64) + 1.0
    counts[30:34, 30:34] += 500.0                       # a feature over the pedestal
    counts = np.stack([counts, counts + 3000.0])        # the same frame with a flat-panel offset
    stored = (np.log1p(counts) / np.log1p(full_scale)).astype(np.float32)
    stored[:, :8, :] = 0.0                              # a gap: bad pixels
    out = remove_pedestal([stored[..., None], stored[..., None]], 1.0, full_scale).numpy()[..., 0]
    assert [int(pedestal_stride(n)) for n in (32 * 32, 64 * 64, 256 * 256, 2048 * 2048)] == [1, 2, 8, 64]
    step = int(pedestal_stride(64 * 64))
    for image, lowered in zip(stored, out):
        c = np.expm1(image.astype(np.float64) * np.log1p(full_scale))
        floor = np.percentile(c[::step, ::step][image[::step, ::step] > 0], 1.0, method="lower")
        pedestal = max(floor - 3 * np.sqrt(floor), 0.0)                 # the floor's Poisson noise left in
        expected = np.where(image > 0, np.log1p(np.maximum(c - pedestal, 0)) / np.log1p(full_scale), 0)
        np.testing.assert_allclose(lowered, expected, atol=1e-4)  # float32 counts of a few thousand
        assert np.all(lowered[:8] == 0)
    left = np.expm1(out[1].astype(np.float64) * np.log1p(full_scale)) - counts[0]   # in counts, valid pixels
    assert 0 < left[8:].mean() < 200 and left[8:].std() < 1.0   # the 3,000-count offset is gone, but its noise
    assert np.abs(stored[1] - stored[0]).max() > 0.4
    model = build_model(arch, 3)
    assert model.get_layer("pedestal").input[0] is model.input and "pedestal" not in [
        layer.name for layer in build_model(off, 3).layers]


def test_gap_fill_closes_module_gaps_and_keeps_wide_masked_areas():
    """cnn.gap_fill: a bad pixel with valid ones in its window takes their mean; a gap of 2 pixels
    across the frame vanishes, a wide masked block keeps its interior, valid pixels are untouched;
    the filled frame is what the pedestal step and the network see; 0 (the default) leaves it out."""
    from xray_spark.cnn.model import fill_gaps

    image = np.full((40, 40), 0.5, np.float32)
    image[:, 20:] = 0.7                                  # two levels: the fill takes the local mean
    image[10:12, :] = 0.0                               # a module gap, 2 pixels wide, across the frame
    image[25:40, 0:15] = 0.0                            # a missing module
    out = fill_gaps(image[None, ..., None], 5).numpy()[0, ..., 0]
    valid = image > 0
    np.testing.assert_array_equal(out[valid], image[valid])
    np.testing.assert_allclose(out[10:12, 2:15], 0.5, atol=1e-6)
    np.testing.assert_allclose(out[10:12, 25:38], 0.7, atol=1e-6)
    assert np.all(out[10:12, 18:22] > 0.5) and np.all(out[10:12, 18:22] < 0.7)
    assert np.all(out[27:, :13] == 0) and np.all(out[25:27, :13] > 0) and np.all(out[27:, 13:15] > 0)    # the block loses a 2-pixel rim
    arch = architecture(load_config(None, ["cnn.gap_fill=5"]))
    model = build_model(arch, 3)
    assert arch.gap_fill == 5 and model.get_layer("gap_fill").input is model.input
    assert model.get_layer("resize").input is model.get_layer("gap_fill").output
    assert model.get_layer("pedestal").input[0] is model.get_layer("gap_fill").output
    assert "gap_fill" not in [layer.name for layer in build_model(architecture(load_config(None, [])), 3).layers]
    from xray_spark.config import ConfigError

    with pytest.raises(ConfigError, match="cnn.gap_fill = 4: allowed values are 0, 3, 5"):
        load_config(None, ["cnn.gap_fill=4"])


@pytest.mark.parametrize("settings", [[], ["cnn.contrast_only=true", "cnn.pedestal_percentile=0", "cnn.input_size=64"],
                                      ["cnn.gap_fill=9"]])
def test_the_settings_of_a_recorded_architecture_rebuild_it(settings):
    """What fine-tuning (self-training) sets from a model's manifest gives that model's network again."""
    import dataclasses

    from xray_spark.cnn.model import settings_of

    config = load_config(None, settings)
    recorded = dataclasses.asdict(architecture(config))
    again = dataclasses.replace(config, cnn=dataclasses.replace(load_config(None, []).cnn, **settings_of(recorded)))
    assert dataclasses.asdict(architecture(again)) == recorded


def test_positive_weights_weigh_only_the_positives():
    import tensorflow as tf

    y_true = tf.constant([[1.0, 0.0]])
    y_pred = tf.constant([[0.3, 0.3]])
    plain = float(weighted_binary_crossentropy(np.array([1.0, 1.0]))(y_true, y_pred)[0])
    heavy = float(weighted_binary_crossentropy(np.array([3.0, 1.0]))(y_true, y_pred)[0])
    expected_plain = -(np.log(0.3) + np.log(0.7)) / 2
    assert plain == pytest.approx(expected_plain, rel=1e-5)
    assert heavy == pytest.approx((-3 * np.log(0.3) - np.log(0.7)) / 2, rel=1e-5)


def _save_cnn(tmp_path, tag_names):
    arch = architecture(load_config(None, ["cnn.input_size=32"]))
    model = build_model(arch, len(tag_names))
    model.save_weights(str(tmp_path / WEIGHTS), save_format="h5")
    modeldir.write_manifest(tmp_path, {
        "kind": "cnn", "model_id": "cnn-test", "tags": tag_names, "thresholds": [0.5] * len(tag_names),
        "input": {"height": 40, "width": 40}, "preprocessing": {}, "architecture": arch.__dict__})
    return model


def test_unknown_labels_are_left_out_of_the_partial_loss():
    """Self-training's labels: -1 is an unknown tag; the loss averages over the known tags only,
    and with every tag known it is the plain (weighted) loss."""
    y_pred = np.array([[0.9, 0.2, 0.6], [0.3, 0.5, 0.5]], np.float32)
    known = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], np.float32)
    partial = np.array([[1.0, -1.0, 1.0], [-1.0, -1.0, -1.0]], np.float32)
    weights = np.array([2.0, 1.0, 1.0])
    full = weighted_binary_crossentropy(weights)(known, y_pred).numpy()
    masked = weighted_binary_crossentropy(weights, partial=True)(partial, y_pred).numpy()
    assert masked[0] == pytest.approx(-(2 * np.log(0.9) + np.log(0.6)) / 2, rel=1e-5)
    assert masked[1] == 0.0                                  # nothing known: no loss
    np.testing.assert_allclose(weighted_binary_crossentropy(weights, partial=True)(known, y_pred).numpy(), full,
                               rtol=1e-6)


def test_saved_cnn_reloads_through_the_registry_with_the_same_scores(tmp_path):
    model = _save_cnn(tmp_path, ["GISAXS", "Thin film", "Horizon"])
    images = np.random.default_rng(1).random((5, 40, 40), dtype=np.float32)
    scorer = modeldir.load(tmp_path.as_uri())
    assert scorer.tags == ["GISAXS", "Thin film", "Horizon"]
    np.testing.assert_allclose(scorer.score(images, np.zeros_like(images, bool)),
                               model(images[..., None], training=False).numpy(), rtol=1e-6)


@pytest.mark.parametrize("change, fragment", [
    ({"kind": "svm"}, "kind 'svm'; known kinds: cnn"),
    ({"tags": ["Thin flim"]}, "closest: 'Thin film'"),
    ({"thresholds": [0.5]}, "1 thresholds for 3 tags"),
    ({"format": "other/9"}, "format 'other/9'"),
])
def test_bad_manifests_fail_naming_the_key(tmp_path, change, fragment):
    _save_cnn(tmp_path, ["GISAXS", "Thin film", "Horizon"])
    manifest = json.loads((tmp_path / modeldir.MANIFEST).read_text())
    (tmp_path / modeldir.MANIFEST).write_text(json.dumps({**manifest, **change}))
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(")):
        modeldir.load(tmp_path)


def test_thresholds_maximise_f1_per_tag():
    y_true = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    y_score = np.array([[0.9, 0.1], [0.6, 0.2], [0.4, 0.3], [0.1, 0.4]])
    thresholds = modeldir.choose_thresholds(y_true, y_score)
    assert thresholds[0] == pytest.approx(0.6)   # both positives in, both negatives out: F1 = 1
    assert thresholds[1] == pytest.approx(0.5)   # no positives: the default
    assert modeldir.predicted_tags(y_score, thresholds, ["GISAXS", "Thin film"]) == [["GISAXS"], ["GISAXS"], [], []]


def test_train_cnn_and_predict_reject_bad_input_before_spark_starts(tmp_path, capsys):
    from xray_spark.cli import main

    assert main(["--set", "cnn.tag_set=top999", "train_cnn"]) == 2
    assert "unknown tag subset 'top999'" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err


@pytest.mark.parametrize("kind, final", [("cosine", 0.0), ("cosine", 0.1), ("constant", 0.0)])
def test_learning_rate_warms_up_to_the_scaled_rate_then_follows_its_schedule(kind, final):
    import tensorflow as tf

    from xray_spark.cnn import schedule

    config = load_config(None, ["cnn.learning_rate=0.01", "cnn.warmup_epochs=2", "cnn.epochs=10",
                                f"cnn.lr_schedule={kind}", f"cnn.lr_final_fraction={final}"])
    at = {step: schedule.rate_at(step, config.cnn, ranks=4, steps_per_epoch=5)  # warm-up 10 steps, 50 in all
          for step in (0, 5, 10, 30, 50, 80)}
    assert at[0] == pytest.approx(0.01) and at[5] == pytest.approx(0.025) and at[10] == pytest.approx(0.04)
    if kind == "constant":
        assert at[30] == at[50] == pytest.approx(0.04)
    else:  # half way through the decay: the mean of peak and final; at and after the end: final
        assert at[30] == pytest.approx(0.04 * (final + 1) / 2)
        assert at[50] == pytest.approx(0.04 * final, abs=1e-9) and at[80] == pytest.approx(0.04 * final, abs=1e-9)

    # the callback sets the optimizer's rate from its step counter before every step
    model = tf.keras.Sequential([tf.keras.Input((1,)), tf.keras.layers.Dense(1)])
    model.compile(tf.keras.optimizers.legacy.SGD(1.0), "mse")
    seen = []
    probe = tf.keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(
        float(tf.keras.backend.get_value(model.optimizer.lr))))
    model.fit(np.zeros((6, 1)), np.zeros((6, 1)), batch_size=1, epochs=1, verbose=0,
              callbacks=[schedule.callback(config.cnn, 4, 5), probe])
    assert seen == pytest.approx([schedule.rate_at(step, config.cnn, 4, 5) for step in range(6)])
    assert seen[0] == pytest.approx(0.01) and seen[5] == pytest.approx(0.025)


def test_contrast_channel_standardises_each_image_over_its_valid_pixels():
    from xray_spark.cnn.model import image_contrast

    rng = np.random.default_rng(3)
    images = np.stack([0.05 + 0.05 * rng.random((16, 16)), 0.6 + 0.2 * rng.random((16, 16))])[..., None]
    images[0, :4] = 0.0  # bad pixels (a gap) stay 0 and do not count
    out = image_contrast(images.astype(np.float32)).numpy()
    for image, contrast in zip(images, out):
        valid = image > 0
        assert abs(contrast[valid].mean()) < 1e-3 and contrast[valid].std() == pytest.approx(1.0, rel=1e-2)
        assert np.all(contrast[~valid] == 0)
    # a faint image and a bright one come out on the same scale, their order within each kept
    assert np.argsort(out[1].ravel()).tolist() == np.argsort(images[1].ravel()).tolist()
    model = build_model(PRESETS["cpu"], 3)
    assert model.get_layer("with_contrast").output_shape[-1] == 2


def test_training_progress_line_says_epochs_rate_validation_and_eta(tmp_path):
    from xray_spark.cnn.training import _epoch_log, epoch_progress

    log = tmp_path / "epochs.jsonl"
    assert epoch_progress(_epoch_log(log, 30), 30) == "0/30 epochs done (first epoch running)"
    records = [{"epoch": e, "seconds": 40.0, "images_per_s": 300.0, "loss": 0.3, "val_mAP": 0.8} for e in range(2)]
    log.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"epoch": 2, "sec')  # rank 0 mid-write
    line = epoch_progress(_epoch_log(log, 30), 30)
    assert line == "2/30 epochs done, 300 images/s, loss 0.3000, validation mAP 0.8000, ETA 1120 s"


def test_mixed_precision_computes_in_float16_with_a_float32_output():
    import tensorflow as tf

    tf.keras.mixed_precision.set_global_policy("mixed_float16")  # what cnn.mixed_precision sets on GPUs
    try:
        model = build_model(PRESETS["cpu"], 4)
        model.compile(tf.keras.optimizers.legacy.SGD(0.01), weighted_binary_crossentropy(None))
        assert model.get_layer("conv2").compute_dtype == "float16"
        assert model.get_layer("tags").compute_dtype == "float32" and model.output.dtype == tf.float32
        images = np.random.default_rng(0).random((4, 64, 64, 1), dtype=np.float32)
        loss = model.train_on_batch(images, np.eye(4, dtype=np.float32))
        assert np.isfinite(loss)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")


def test_augmentation_changes_counts_not_bad_pixels_and_is_identity_when_off():
    import math

    import tensorflow as tf

    from xray_spark.cnn.augment import Augmentation, augment

    full = 2.0**20 - 1
    stored = np.zeros((8, 32, 32, 1), np.float32)
    stored[:, 4:28, 4:20, 0] = math.log1p(200) / math.log1p(full)         # the rest is bad (0)
    off = augment(tf.constant(stored), tf.random.Generator.from_seed(0),
                  Augmentation(full, max_scale=1.0, max_background=0.0, max_blocks=0, flip=False)).numpy()
    np.testing.assert_allclose(off, stored, atol=1e-6)
    on = augment(tf.constant(stored), tf.random.Generator.from_seed(0), Augmentation(full, max_blocks=3)).numpy()
    assert on.min() >= 0 and on.max() <= 1
    bad = stored == 0
    assert all((o[b] == 0).all() or (o[:, ::-1][b] == 0).all() for o, b in zip(on, bad))  # bad stays bad
    levels = {round(float(v), 3) for v in on[on > 0]}
    assert len(levels) > 3                                                # per-image count scales differ


def test_quarter_turns_keep_the_image_and_turn_it():
    import tensorflow as tf

    from xray_spark.cnn.augment import Augmentation, augment

    stored = np.zeros((16, 8, 8, 1), np.float32)
    stored[:, 0, :3, 0] = 0.5                                             # a bar along the top edge
    turned = augment(tf.constant(stored), tf.random.Generator.from_seed(3),
                     Augmentation(2.0**20 - 1, max_scale=1.0, max_background=0.0, max_blocks=0, flip=False,
                                  rotate=True)).numpy()
    assert all(np.isclose(t.sum(), stored[0].sum()) for t in turned)
    corners = {tuple(np.argwhere(t[..., 0] > 0)[0]) for t in turned}
    assert len(corners) > 1                                               # several orientations drawn
