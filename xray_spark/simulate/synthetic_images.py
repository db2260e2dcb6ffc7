"""Synthetic images on Spark executors: ``generate_images(spark, config, n_images, seed)``.

The driver only plans ``spark.range(n)``; each executor task renders its image indices with
``mapInArrow`` (scene from (seed, index), physics, detector, visible labels, ``preprocess``)
and emits rows of the `images` table. Nothing is built or collected on the driver.
"""
from __future__ import annotations

import hashlib
import json
import math

from xray_spark import schema
from xray_spark.config import Config, to_dict
from xray_spark.preprocess import preprocess, stored_shape
from xray_spark.simulate.detectors import detector
from xray_spark.simulate.render import render, scene_geometry
from xray_spark.simulate.scene import sample_scene, validate
from xray_spark.simulate.visibility import visible_tags
from xray_spark.worker import freeze_imports

GENERATOR_VERSION = 1
OUTPUT_BATCH_BYTES = 64 * 2**20     # Arrow batches handed back to Spark stay below this (2048^2 images are 20 MB)


def config_fingerprint(config: Config) -> str:
    """Short hash of what decides an image's bytes: the simulate, tables and preprocess sections."""
    relevant = {k: to_dict(config)[k] for k in ("simulate", "tables", "preprocess")}
    return hashlib.sha1(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]


def make_image(config: Config, seed: int, index: int, fingerprint: str | None = None) -> dict:
    """The `images` row of image ``index`` of ``seed``: stored image, mask, visible tags, provenance.

    ``fingerprint`` is ``config_fingerprint(config)``, passed in by callers that make many images.
    """
    sim = config.simulate
    scene, rng = sample_scene(sim, seed, index)
    det = detector(scene["detector"])
    # rendered at the frame's aspect ratio when the stored image keeps it
    rendered = render(scene, stored_shape(det.shape, sim.render_size, config.preprocess.letterbox), rng)
    tag_names = visible_tags(scene, rendered, det, sim)
    image, mask = preprocess(rendered.counts, rendered.bad, config.tables.image_size,
                             full_scale_counts=config.preprocess.full_scale_counts,
                             mask_threshold=config.preprocess.mask_threshold, letterbox=config.preprocess.letterbox)
    return schema.image_record(
        image_id=f"synthetic-s{seed}-{index:09d}", source="synthetic", beamtime=sim.beamtime,
        run_id=f"synthetic-s{seed}-r{index // sim.images_per_run:07d}", frame=index,
        image=image, mask=mask, tag_names=tag_names, geometry=scene_geometry(scene),
        provenance={"generator": "xray_spark.simulate", "version": GENERATOR_VERSION, "seed": seed,
                    "index": index, "config": fingerprint or config_fingerprint(config), "scene": scene})


def _batches(config: Config, seed: int):
    """mapInArrow function: image indices in, `images` rows out in Arrow batches of bounded size."""
    fingerprint = config_fingerprint(config)
    side = config.tables.image_size
    per_batch = max(1, OUTPUT_BATCH_BYTES // (5 * side * side))      # float32 image + uint8 mask per row

    def generate(batches):
        freeze_imports()
        for batch in batches:
            ids = batch.column("id").to_numpy()
            for start in range(0, len(ids), per_batch):
                yield schema.records_to_arrow([make_image(config, seed, int(i), fingerprint)
                                               for i in ids[start:start + per_batch]])
    return generate


def generate_images(spark, config: Config, n_images: int | None = None, seed: int | None = None,
                    partitions: int | None = None):
    """Lazy DataFrame of ``n_images`` synthetic images (schema ``schema.IMAGES``), built on executors.

    ``n_images`` and ``seed`` default to ``config.simulate``; ``partitions`` defaults to
    ``ceil(n / simulate.images_per_task)``, at least the cluster's default parallelism. The
    images do not depend on the partitioning.
    """
    validate(config.simulate)
    n = config.simulate.n_images if n_images is None else int(n_images)
    seed = config.simulate.seed if seed is None else int(seed)
    if n < 1 or seed < 0:
        raise ValueError(f"n_images = {n}, seed = {seed}: need n_images >= 1 and seed >= 0")
    if partitions is None:
        partitions = max(math.ceil(n / config.simulate.images_per_task), spark.sparkContext.defaultParallelism)
    partitions = max(1, min(int(partitions), n))
    ids = spark.range(0, n, numPartitions=partitions)
    return ids.mapInArrow(_batches(config, seed), schema.spark_schema())


def tag_prevalence(df) -> dict[str, float]:
    """Fraction of images carrying each tag: one Spark aggregation over the tags column, on executors.

    Each row's multi-hot vector is exploded into (position, value) pairs, so a position's row
    count is the number of images and its sum the number tagged; only 98 numbers reach the driver.
    """
    from pyspark.sql import functions as F

    from xray_spark import tags as tagmod

    rows = (df.select(F.posexplode("tags").alias("pos", "hot")).groupBy("pos")
            .agg(F.sum("hot").alias("tagged"), F.count("hot").alias("images")).collect())
    names = tagmod.names()
    return {names[r["pos"]]: r["tagged"] / r["images"] for r in sorted(rows, key=lambda r: r["pos"])}
