"""`xray-spark spm_features`: spatial-pyramid features of every image with the saved dictionary, as
the features table (with the train/test split by run); images that give no patch go to the
``bof_skipped`` table with their reason."""
from __future__ import annotations

import time

from pyspark.ml import PipelineModel
from pyspark.sql import functions as F

from xray_spark import schema
from xray_spark.bof import pipeline
from xray_spark.bof.stages import VisualDictionaryModel
from xray_spark.logs import summary
from xray_spark.spark import stage

FEATURE_COLUMNS = ["image_id", "run_id", "frame", "source", "labelled", "tags", "tag_names", "split",
                   "n_patches", "skip_reason", "features"]


def add_arguments(parser) -> None:
    pipeline.add_images_argument(parser)


def run(config, args) -> int:
    from xray_spark.spark import build_session

    started = time.monotonic()
    spark = build_session(config, "spm_features")
    try:
        images = pipeline.with_split(spark.read.parquet(args.images or config.paths.url("images")), config)
        descriptors, _, pyramid, _ = pipeline.stages(config)
        dictionary = VisualDictionaryModel.load(pipeline.model_url(config, "dictionary"))
        if len(dictionary.centres) != pyramid.getOrDefault(pyramid.numWords):
            raise SystemExit(f"spm_features: the saved dictionary has {len(dictionary.centres)} words but "
                             f"bof.words = {pyramid.getOrDefault(pyramid.numWords)}: rebuild it or set bof.words")
        features = PipelineModel([descriptors, dictionary, pyramid]).transform(images).select(*FEATURE_COLUMNS)
        url = config.paths.url("features")
        with stage(spark, "spm_features: descriptors, words, pyramids", config):
            schema.write_table(features, url, config.tables.row_group_size_mb)
        written = spark.read.parquet(url)
        skipped = written.filter(F.col("skip_reason").isNotNull()).select("image_id", "run_id", "skip_reason")
        with stage(spark, "spm_features: skipped table", config):
            schema.write_table(skipped.coalesce(1), config.paths.url("bof_skipped"), config.tables.row_group_size_mb)
        n_read, n_skipped = written.count(), spark.read.parquet(config.paths.url("bof_skipped")).count()
        summary("spm_features", time.monotonic() - started, read=n_read, written=n_read - n_skipped,
                skipped=n_skipped)
        print(f"features of {n_read - n_skipped} images: {url}; {n_skipped} skipped with their reason: "
              f"{config.paths.url('bof_skipped')}")
    finally:
        spark.stop()
    return 0
