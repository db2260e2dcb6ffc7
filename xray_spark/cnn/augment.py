"""Training-time changes of stored images that real frames show and one generated scene does not:
another count scale (exposure, flux, detector gain), a flat background (air, windows, the dark
pedestal of a CCD or flat panel), masked blocks (missing modules or quadrants, shadows), the
mirror image, and the frame turned by quarter turns (detectors are mounted and frames stored
rotated: a horizon stored as a vertical edge is still a horizon).

The stored image is ``log1p(counts) / log1p(full_scale)`` (``preprocess``), so the counts are
recovered exactly, changed, and stored again on the same scale; bad pixels (0) stay bad. The tags
are physical (a scientist tags a frame stored sideways by what it shows in the lab's frame), so a
mirror or a quarter turn changes none of them. Each change is drawn per image from a seeded
``tf.random.Generator``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Augmentation:
    full_scale_counts: float
    max_scale: float = 10.0            # counts multiplied by a log-uniform factor in [1/max, max]
    max_background: float = 30.0       # plus, for half the images, a flat background of 1 .. this many counts (log-uniform)
    max_blocks: int = 3                # up to this many masked rectangles (each up to half a side)
    flip: bool = True
    rotate: bool = False               # quarter turns


def augment(images, generator, a: Augmentation):
    """A batch of stored images (b, H, W, 1) changed as described in the module docstring."""
    import tensorflow as tf

    b, h, w = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    scale_log = math.log1p(a.full_scale_counts)
    valid = tf.cast(images > 0, tf.float32)
    counts = tf.math.expm1(images * scale_log)
    factor = tf.exp(generator.uniform([b, 1, 1, 1], -math.log(a.max_scale), math.log(a.max_scale)))
    background = 0.0
    if a.max_background > 0:
        background = tf.exp(generator.uniform([b, 1, 1, 1], 0.0, math.log(max(a.max_background, 1.0)))) * tf.cast(
            generator.uniform([b, 1, 1, 1]) < 0.5, tf.float32)
    out = tf.clip_by_value(tf.math.log1p(counts * factor + background) / scale_log, 0.0, 1.0) * valid
    rows = tf.range(h)[None, :, None, None]
    cols = tf.range(w)[None, None, :, None]
    keep = tf.ones_like(out)
    for _ in range(a.max_blocks):
        size = generator.uniform([b, 2], 0.02, 0.5)
        corner = generator.uniform([b, 2], 0.0, 1.0)
        r0 = tf.cast(corner[:, 0] * tf.cast(h, tf.float32), tf.int32)[:, None, None, None]
        c0 = tf.cast(corner[:, 1] * tf.cast(w, tf.float32), tf.int32)[:, None, None, None]
        r1 = r0 + tf.cast(size[:, 0] * tf.cast(h, tf.float32), tf.int32)[:, None, None, None]
        c1 = c0 + tf.cast(size[:, 1] * tf.cast(w, tf.float32), tf.int32)[:, None, None, None]
        drawn = tf.cast(generator.uniform([b, 1, 1, 1]) < 0.3, tf.float32)
        block = tf.cast((rows >= r0) & (rows < r1) & (cols >= c0) & (cols < c1), tf.float32)
        keep *= 1.0 - drawn * block
    out *= keep
    if a.flip:
        mirrored = tf.cast(generator.uniform([b, 1, 1, 1]) < 0.5, tf.float32)
        out = mirrored * tf.reverse(out, axis=[2]) + (1.0 - mirrored) * out
    if a.rotate:       # stored images are square (letterboxed), so every quarter turn keeps the shape
        turns = tf.cast(tf.floor(generator.uniform([b], 0.0, 4.0)), tf.int32)
        out = tf.map_fn(lambda x: tf.image.rot90(x[0], x[1]), (out, turns), fn_output_signature=tf.float32)
    return out
