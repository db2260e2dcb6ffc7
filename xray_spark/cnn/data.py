"""Training data of the CNN: a frozen train/validation split by run, and its Petastorm -> tf.data feed.

The split is written once per model (``<model>/data/train`` and ``<model>/data/validation``) with
``tables.write_table``: a resumed training reads exactly the images it started with even when the
`images` table has grown since, and the training table is written in at least ``4 x ranks`` files
so Petastorm can shard its row groups over the Horovod ranks.

Each rank reads its own shard (``cur_shard = rank``) of the training table in an endless,
shuffled stream (row groups shuffled by Petastorm, rows by a tf.data buffer). An epoch is
``steps_per_epoch = train_rows // (batch_size * ranks)`` steps, so every rank takes the same
number of steps and an epoch sees each training image at most once.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Sequence

import numpy as np

from xray_spark import metrics
from xray_spark import tags as tagmod
from xray_spark.cnn.augment import Augmentation, augment
from xray_spark.io import tables

log = logging.getLogger(__name__)

FILES_PER_RANK = 4
TARGET_RUN = "target:"      # runs of real target frames (fine-tuning): trained on, never validated on


def split_by_run(spark, images_url: str, out_url: str, tag_set: Sequence[str], *, fraction: float,
                 seed: int, ranks: int, row_group_size_mb: int) -> dict:
    """Write the labelled images of ``images_url`` as ``out_url/train`` and ``out_url/validation``.

    Whole runs of generated images go to validation (``metrics.split_runs``), never a target run
    (``TARGET_RUN``: real frames being fine-tuned on) nor a run with unknown labels (a tag below 0),
    whose frames the thresholds would be chosen on.
    Returns the split facts: table URLs, row counts, validation runs, the training positives per
    tag of ``tag_set`` and whether some labels are unknown (``partial_labels``).
    """
    from pyspark.sql import functions as F

    images = spark.read.parquet(images_url).filter("labelled")
    lowest = images.groupBy("run_id").agg(F.min(F.array_min("tags")).alias("lowest")).collect()  # one row per run
    partial = {r.run_id for r in lowest if r.lowest < 0}
    runs = [r.run_id for r in lowest if r.run_id not in partial and not r.run_id.startswith(TARGET_RUN)]
    validation_runs = sorted(metrics.split_runs(runs, fraction, seed))
    in_validation = F.col("run_id").isin(validation_runs)
    urls = {"train": f"{out_url}/train", "validation": f"{out_url}/validation"}
    tables.write_table(images.filter(~in_validation).repartition(FILES_PER_RANK * ranks, "image_id"),
                       urls["train"], row_group_size_mb)
    tables.write_table(images.filter(in_validation).repartition(max(1, ranks), "image_id"),
                       urls["validation"], row_group_size_mb)
    index = [tagmod.names().index(n) for n in tag_set]
    train = spark.read.parquet(urls["train"])
    sums = train.select(F.count(F.lit(1)).alias("rows"),
                        *[F.sum((F.col("tags")[i] > 0).cast("int")).alias(f"t{i}") for i in index]).first()
    validation_rows = spark.read.parquet(urls["validation"]).count()
    if sums["rows"] == 0 or validation_rows == 0:
        raise ValueError(f"{images_url}: the split by run left {sums['rows']} training and {validation_rows} "
                         f"validation images (runs: {len(runs)}); training needs labelled images in both")
    return {"images_url": images_url, "train_url": urls["train"], "validation_url": urls["validation"],
            "train_rows": int(sums["rows"]), "validation_rows": int(validation_rows),
            "validation_runs": validation_runs, "partial_labels": bool(partial),
            "train_positives": [int(sums[f"t{i}"] or 0) for i in index]}


def steps_per_epoch(train_rows: int, batch_size: int, ranks: int) -> int:
    """Steps of one epoch on every rank: no image is seen twice within an epoch."""
    steps = train_rows // (batch_size * ranks)
    if steps < 1:
        raise ValueError(f"{train_rows} training images cannot fill one step of {batch_size} images on each "
                         f"of {ranks} ranks: lower cnn.batch_size or add images")
    return steps


def positive_weights(positives: Sequence[int], rows: int, max_weight: float) -> np.ndarray:
    """Balanced loss weights of positives per tag: negatives / positives, clipped to [1, max_weight]."""
    positives = np.maximum(np.asarray(positives, np.float64), 1.0)
    return np.clip((rows - positives) / positives, 1.0, max_weight).astype(np.float32)


@contextlib.contextmanager
def training_batches(url: str, tag_set: Sequence[str], *, rank: int, ranks: int, batch_size: int,
                     shuffle_buffer: int, seed: int, workers: int, augmentation: Augmentation | None = None):
    """Endless shuffled (images (b, H, W, 1), labels (b, n_tags)) batches of this rank's shard,
    changed by ``augmentation`` when given (``augment``)."""
    import tensorflow as tf

    with tf_dataset(url, tag_set, num_epochs=None, cur_shard=rank, shard_count=ranks,
                    shuffle_row_groups=True, seed=seed, workers_count=workers) as ds:
        batches = ds.shuffle(shuffle_buffer, seed=seed).batch(batch_size, drop_remainder=True)
        if augmentation is not None:
            generator = tf.random.Generator.from_seed(seed * 1000 + rank)
            batches = batches.map(lambda x, y: (augment(x, generator, augmentation), y))
        yield batches.prefetch(tf.data.AUTOTUNE)


def score_table(model, url: str, tag_set: Sequence[str], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels (n, n_tags), scores (n, n_tags)) of ``model`` over a whole (small) table: validation."""
    labels, scores = [], []
    with tf_dataset(url, tag_set) as ds:
        for images, y in ds.batch(batch_size):
            scores.append(model(images, training=False).numpy())
            labels.append(y.numpy())
    return np.concatenate(labels).astype(np.int8), np.concatenate(scores)


@contextlib.contextmanager
def tf_dataset(url: str, tag_set: Sequence[str] | None = None, *, num_epochs: int | None = 1,
               cur_shard: int | None = None, shard_count: int | None = None,
               shuffle_row_groups: bool = False, seed: int | None = None, workers_count: int = 2,
               extra_fields: Sequence[str] = ()):
    """A tf.data dataset of (image, labels) over the `images` table at ``url``, one row per element.

    ``image`` is (height, width, 1) float32 as stored (already preprocessed); ``labels`` is the
    float32 multi-hot restricted to ``tag_set`` (default: all tags). Reading is sharded by row
    group with ``cur_shard``/``shard_count`` (one shard per Horovod rank). Use as a context
    manager: the Petastorm reader stops when the block ends.
    """
    import tensorflow as tf
    from petastorm import make_batch_reader
    from petastorm.tf_utils import make_petastorm_dataset

    tag_set = list(tag_set) if tag_set is not None else tagmod.names()
    columns = tf.constant([tagmod.names().index(n) for n in tagmod.check_names(tag_set)], tf.int32)
    fields = ["image", "height", "width", "tags", *extra_fields]
    with make_batch_reader(url, schema_fields=fields, num_epochs=num_epochs, cur_shard=cur_shard,
                           shard_count=shard_count, shuffle_row_groups=shuffle_row_groups,
                           seed=seed, workers_count=workers_count) as reader:
        def decode(row):
            image = tf.reshape(tf.io.decode_raw(row.image, tf.float32), (row.height, row.width, 1))
            labels = tf.cast(tf.gather(row.tags, columns), tf.float32)
            extras = {name: getattr(row, name) for name in extra_fields}
            return (image, labels, extras) if extra_fields else (image, labels)

        yield make_petastorm_dataset(reader).unbatch().map(decode, num_parallel_calls=tf.data.AUTOTUNE)
