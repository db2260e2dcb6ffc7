"""The paper's AlexNet-style multi-label network, its presets, and its scorer for ``predict``.

Five convolutional layers (96, 256, 384, 384, 256 filters times ``width``; max-pooling after the
1st, 2nd and 5th), two dense layers with dropout, and a sigmoid output with one unit per tag
(Krizhevsky et al. 2012; Wang et al., "Deep learning for analysing synchrotron data streams").
Pooling uses ``same`` padding: at the ``paper`` preset's 227x227 input the last feature map is
7x7x256 and the network has about 72 million parameters, the paper's figure.

The first layer resizes the stored image (the output of ``preprocess.py``, e.g. 256x256) to the
input size with area averaging. Being part of the model, it is the same in training and inference.

Presets:
``paper``  227x227 input, full width, 4096-unit dense layers: the paper's network (GPU).
``cpu``    128x128 input, a quarter of the filters, 256-unit dense layers, a 5x5/2 first layer,
           batch normalisation and a second input channel, the image at its own contrast
           (``image_contrast``): trains in minutes on two CPU cores. The contrast channel raised
           the test mAP after 5 short epochs from 0.68 to 0.72 (12k images; the 256-pixel input
           and horizontal flips did not help at that budget).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONV_FILTERS = (96, 256, 384, 384, 256)
POOL_AFTER = (0, 1, 4)
WEIGHTS = "weights.h5"


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild the network (stored in the model manifest)."""
    input_size: int
    width: float
    dense_units: int
    conv1_kernel: int
    conv1_stride: int
    dropout: float
    batch_norm: bool
    contrast_channel: bool = False
    contrast_only: bool = False          # the image at its own contrast alone, without the fixed log scale
    gap_fill: int = 0                    # masked pixels near valid ones filled over this window first (0: off)
    pedestal_percentile: float = 0.0     # the floor read at this percentile of a frame's counts taken off first (0: off)
    full_scale_counts: float = 0.0       # the stored images' log scale, to go back to counts (pedestal only)


PRESETS = {
    "paper": Architecture(input_size=227, width=1.0, dense_units=4096, conv1_kernel=11, conv1_stride=4,
                          dropout=0.5, batch_norm=False),
    "cpu": Architecture(input_size=128, width=0.25, dense_units=256, conv1_kernel=5, conv1_stride=2,
                        dropout=0.3, batch_norm=True, contrast_channel=True),
}


def architecture(config) -> Architecture:
    """The preset of ``config.cnn.preset`` with its ``input_size``, ``width``, ``dense_units`` overrides
    and the input options (the pedestal needs the stored images' ``preprocess.full_scale_counts``)."""
    cnn = config.cnn
    arch = PRESETS[cnn.preset]
    overrides = {k: getattr(cnn, k) for k in ("input_size", "width", "dense_units") if getattr(cnn, k) is not None}
    if cnn.contrast_only:
        overrides.update(contrast_channel=True, contrast_only=True)
    if cnn.gap_fill:
        overrides.update(gap_fill=cnn.gap_fill)
    if cnn.pedestal_percentile:
        overrides.update(pedestal_percentile=cnn.pedestal_percentile,
                         full_scale_counts=config.preprocess.full_scale_counts)
    return dataclasses.replace(arch, **overrides)


def settings_of(recorded: dict) -> dict:
    """The ``cnn.*`` settings for which ``architecture`` gives this recorded architecture (a model
    manifest's ``architecture``): what fine-tuning a model sets so that its network is rebuilt as it was."""
    return {"input_size": recorded["input_size"], "width": recorded["width"], "dense_units": recorded["dense_units"],
            "contrast_only": recorded.get("contrast_only", False), "gap_fill": recorded.get("gap_fill", 0),
            "pedestal_percentile": recorded.get("pedestal_percentile", 0.0)}


PEDESTAL_SAMPLE = 1024  # the pedestal's percentile is read on a grid of about this many pixels
PEDESTAL_NOISE = 3.0    # the floor's Poisson noise left in: floor - 3 sqrt(floor) is taken off


def remove_pedestal(images, percentile: float, full_scale_counts: float):
    """Each image with its pedestal taken off: the ``percentile`` of its valid pixels' counts (a CCD
    or flat-panel offset, a flat background of air or of a bright sample) subtracted in counts, the
    result put back on the log scale; bad pixels stay 0.

    ``images`` is ``[stored, resized]``: the percentile is read on the stored image, whose bad pixels
    are exactly 0 (the network's resize blends them into their valid neighbours, which would pass
    for low counts), on every ``pedestal_stride``-th pixel of every such row (about 1k values: a
    sort of 1k values, not 65k, for a 256x256 image; every pixel of a 32x32 one); it is taken off
    the resized image. Percentile rule: numpy's ``lower`` (index ``floor(p/100 * (n - 1))`` of n
    sorted values). What is taken off is the floor less ``PEDESTAL_NOISE`` times its Poisson noise,
    ``floor - 3 sqrt(floor)`` (nothing below a floor of 9 counts): the background stays just above
    its noise instead of at 0, and the few counts of a photon-counting frame's floor, which jitter
    from frame to frame, are left alone (taking them off moved the embeddings of a steady run
    enough to make change points). On the fixed log scale a ring 100 counts over a pedestal of
    1000 is a 1 % step; generated frames have no pedestal.
    """
    import tensorflow as tf

    stored, resized = images
    dtype, stored, resized = resized.dtype, tf.cast(stored, tf.float32), tf.cast(resized, tf.float32)
    scale = float(np.log1p(full_scale_counts))
    stride = pedestal_stride(tf.shape(stored)[1] * tf.shape(stored)[2])
    sample = tf.reshape(stored[:, ::stride, ::stride, :], (tf.shape(stored)[0], -1))
    values = tf.where(sample > 0, sample, np.inf)
    n = tf.reduce_sum(tf.cast(sample > 0, tf.int32), axis=1)
    index = tf.cast(tf.math.floor(percentile / 100.0 * tf.cast(tf.maximum(n - 1, 0), tf.float32)), tf.int32)
    level = tf.where(n > 0, tf.gather(tf.sort(values, axis=1), index, batch_dims=1), 0.0)
    floor = tf.math.expm1(level * scale)
    pedestal = tf.maximum(floor - PEDESTAL_NOISE * tf.sqrt(floor), 0.0)[:, None, None, None]
    lowered = tf.math.log1p(tf.maximum(tf.math.expm1(resized * scale) - pedestal, 0.0)) / scale
    return tf.cast(tf.where(resized > 0, lowered, 0.0), dtype)


def pedestal_stride(pixels):
    """The grid step that leaves about ``PEDESTAL_SAMPLE`` of an image's ``pixels`` (1 for small images):
    a sample of a fixed size, so that the floor of a small frame is not the minimum of a few dozen."""
    import tensorflow as tf

    return tf.maximum(1, tf.cast(tf.math.floor(tf.sqrt(tf.cast(pixels, tf.float32) / PEDESTAL_SAMPLE)), tf.int32))


def fill_gaps(images, window: int):
    """Each bad pixel (exactly 0) with a valid pixel in its ``window`` x ``window`` neighbourhood
    takes the mean of those valid pixels (normalised convolution); valid pixels are unchanged.

    A detector's module gaps are masked lines a few stored pixels wide that cross the whole frame:
    the network reads them as rods and edges (the real false positives of Linear beamstop were
    frames crossed by Pilatus gaps, docs/cnn.md). Filled from both sides they disappear, while a
    wide masked area (a missing module, a beamstop, a CCD's round field) loses only its rim of
    ``window // 2`` pixels.
    """
    import tensorflow as tf

    dtype, images = images.dtype, tf.cast(images, tf.float32)
    valid = tf.cast(images > 0, tf.float32)
    total = tf.nn.avg_pool2d(images * valid, window, 1, "SAME")
    share = tf.nn.avg_pool2d(valid, window, 1, "SAME")
    filled = tf.where(share > 0, total / tf.maximum(share, 1e-6), 0.0)
    return tf.cast(tf.where(valid > 0, images, filled), dtype)


def image_contrast(images):
    """Each image standardised over its valid (non-zero) pixels: (x - mean) / std, bad pixels 0.

    The stored images keep one fixed log scale so that weak and strong scattering differ (both are
    tags), which leaves a faint ring a few percent above its background; this second channel shows
    every image at its own contrast, as a scientist would stretch the display.
    """
    import tensorflow as tf

    dtype, images = images.dtype, tf.cast(images, tf.float32)  # sums of 16k pixels: not in float16
    valid = tf.cast(images > 0, tf.float32)
    n = tf.maximum(tf.reduce_sum(valid, axis=(1, 2, 3), keepdims=True), 1.0)
    mean = tf.reduce_sum(images * valid, axis=(1, 2, 3), keepdims=True) / n
    variance = tf.reduce_sum(tf.square((images - mean) * valid), axis=(1, 2, 3), keepdims=True) / n
    return tf.cast((images - mean) * tf.math.rsqrt(variance + 1e-6) * valid, dtype)


def build_model(arch: Architecture, n_tags: int):
    """The Keras model: (batch, H, W, 1) stored images -> (batch, n_tags) sigmoid scores.

    Any stored size H x W is accepted; the first layer resizes to ``arch.input_size``.
    Under a mixed-precision policy the output layer stays float32.
    """
    from tensorflow import keras

    layers = keras.layers
    inputs = keras.Input((None, None, 1), name="image")
    stored = inputs
    if arch.gap_fill:
        stored = layers.Lambda(fill_gaps, name="gap_fill", arguments={"window": arch.gap_fill})(inputs)
    x = layers.Resizing(arch.input_size, arch.input_size, interpolation="area", name="resize")(stored)
    if arch.pedestal_percentile:
        x = layers.Lambda(remove_pedestal, name="pedestal", arguments={
            "percentile": arch.pedestal_percentile, "full_scale_counts": arch.full_scale_counts})([stored, x])
    if arch.contrast_channel:
        contrast = layers.Lambda(image_contrast, name="contrast")(x)
        x = contrast if arch.contrast_only else layers.Concatenate(name="with_contrast")([x, contrast])
    kernels = (arch.conv1_kernel, 5, 3, 3, 3)
    for i, (filters, kernel) in enumerate(zip(CONV_FILTERS, kernels)):
        x = layers.Conv2D(max(8, round(filters * arch.width)), kernel,
                          strides=arch.conv1_stride if i == 0 else 1,
                          padding="valid" if i == 0 else "same", use_bias=not arch.batch_norm,
                          activation=None if arch.batch_norm else "relu", name=f"conv{i + 1}")(x)
        if arch.batch_norm:
            x = layers.ReLU(name=f"relu{i + 1}")(layers.BatchNormalization(name=f"bn{i + 1}")(x))
        if i in POOL_AFTER:
            x = layers.MaxPooling2D(3, 2, padding="same", name=f"pool{i + 1}")(x)
    x = layers.Flatten(name="flatten")(x)
    for name in ("fc6", "fc7"):
        x = layers.Dense(arch.dense_units, activation="relu", name=name)(x)
        x = layers.Dropout(arch.dropout, name=f"drop_{name}")(x)
    outputs = layers.Dense(n_tags, activation="sigmoid", dtype="float32", name="tags")(x)
    return keras.Model(inputs, outputs, name="alexnet_multilabel")


def weighted_binary_crossentropy(positive_weights: np.ndarray | None, partial: bool = False):
    """Binary cross-entropy averaged over tags; positives of tag j weigh ``positive_weights[j]``.

    ``None`` gives the plain loss. Weights > 1 counter rare tags (few positives per batch).
    ``partial``: a label below 0 is unknown (a pseudo-label that was not confident, ``self_training``)
    and left out; each image's loss is the mean over its known tags (0 when it has none).
    """
    import tensorflow as tf

    if positive_weights is None and not partial:
        return tf.keras.losses.BinaryCrossentropy(name="bce")
    w = tf.constant(np.asarray(1.0 if positive_weights is None else positive_weights, np.float32))

    def loss(y_true, y_pred):
        p = tf.clip_by_value(tf.cast(y_pred, tf.float32), 1e-7, 1.0 - 1e-7)
        y = tf.cast(y_true, tf.float32)
        terms = -(w * tf.maximum(y, 0.0) * tf.math.log(p) + (1.0 - tf.abs(y)) * tf.math.log(1.0 - p))
        if not partial:
            return tf.reduce_mean(terms, axis=-1)
        known = tf.cast(y >= 0.0, tf.float32)
        return tf.reduce_sum(terms * known, axis=-1) / tf.maximum(tf.reduce_sum(known, axis=-1), 1.0)

    return loss


class CnnScorer:
    """A trained CNN from its model directory: architecture from the manifest, weights from HDF5."""

    def __init__(self, directory: Path, manifest: dict):
        self.manifest = manifest
        self.tags = list(manifest["tags"])
        self.thresholds = np.asarray(manifest["thresholds"], np.float64)
        self.batch = int(manifest.get("inference_batch", 64))
        self.model = build_model(Architecture(**manifest["architecture"]), len(self.tags))
        self.model.load_weights(str(Path(directory) / WEIGHTS))

    def score(self, images: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        """(n, n_tags) float32 sigmoid scores of stored images (n, H, W); bad pixels are already 0."""
        images = np.asarray(images, np.float32)[..., None]
        out = [self.model(images[i:i + self.batch], training=False).numpy()
               for i in range(0, len(images), self.batch)]
        return np.concatenate(out) if out else np.zeros((0, len(self.tags)), np.float32)


def load_scorer(directory: Path, manifest: dict) -> CnnScorer:
    """The ``cnn`` loader of ``modeldir.LOADERS``."""
    return CnnScorer(directory, manifest)
