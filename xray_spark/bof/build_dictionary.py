"""`xray-spark build_dictionary`: the visual dictionary (k-means over sampled patch descriptors of
the training runs' images), saved as a fitted stage under ``<models>/bof/dictionary``."""
from __future__ import annotations

import time

from pyspark.sql import functions as F

from xray_spark.bof import pipeline
from xray_spark.logs import summary


def add_arguments(parser) -> None:
    pipeline.add_images_argument(parser)


def run(config, args) -> int:
    from xray_spark.spark import build_session

    started = time.monotonic()
    spark = build_session(config, "build_dictionary")
    try:
        images = spark.read.parquet(args.images or config.paths.url("images"))
        train = pipeline.with_split(images, config).filter(F.col("split") == "train")
        descriptors, dictionary, _, _ = pipeline.stages(config)
        model = dictionary.fit(descriptors.transform(train))
        url = pipeline.model_url(config, "dictionary")
        model.write().overwrite().save(url)
        n = train.count()
        summary("build_dictionary", time.monotonic() - started, read=n, written=len(model.centres))
        print(f"dictionary of {len(model.centres)} words from the training runs' {n} images: {url}")
    finally:
        spark.stop()
    return 0
