"""A small synthetic beamtime embedded once per test session, for the explore tests.

24 generated images (seed 3, runs of 8) whose frames 0, 5, 10, ... have their geometry columns
emptied (the image-space case), embedded with the shipped ``cnn-top17`` on the executors.
"""
from pathlib import Path

from pyspark.sql import functions as F

from xray_spark import geometry, schema
from xray_spark.config import load_config
from xray_spark.io import tables

N, SEED = 24, 3


def explore_config(root: Path, *more: str):
    from conftest import CLUSTER

    return load_config(None, [*CLUSTER, f"paths.root={root}", "simulate.images_per_run=8", "explore.index=flat", *more])


def no_geometry(images):
    """Frames 0, 5, 10, ... without geometry (every geometry column null)."""
    empty = F.col("frame") % 5 == 0
    for field in geometry.COLUMNS:
        images = images.withColumn(field, F.when(empty, F.lit(None)).otherwise(F.col(field)))
    return images.select(*schema.IMAGES.names)


def build(spark, root: Path) -> dict:
    """The images and embeddings tables under ``root`` (built by the first caller of the session)."""
    from xray_spark.explore.embeddings import EmbeddingSettings, embed
    from xray_spark.simulate import generate_images

    config = explore_config(root)
    urls = {"config": config, "images": config.paths.url("images"), "embeddings": config.paths.url("embeddings")}
    if not (root / "built").exists():
        generated = generate_images(spark, config, n_images=N, seed=SEED, partitions=3)
        tables.write_table(no_geometry(generated.select(*schema.IMAGES.names)), urls["images"], 1,
                           partition_by=schema.PARTITION_KEYS)
        embed(spark, config.paths.model_dir(config.explore.model), urls["images"], urls["embeddings"],
              EmbeddingSettings.from_config(config), row_group_size_mb=1)
        (root / "built").write_text("")
    return urls
