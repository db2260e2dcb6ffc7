"""`xray-spark build_dictionary`: the visual dictionary (k-means over sampled patch descriptors of
the training runs' images), saved as a fitted stage under ``<models>/bof/dictionary``."""
from __future__ import annotations

import time

from xray_spark.bof import pipeline, steps
from xray_spark.jobs import spark_session
from xray_spark.logs import summary


def add_arguments(parser) -> None:
    pipeline.add_images_argument(parser)


def run(config, args) -> int:
    started = time.monotonic()
    with spark_session(config, "build_dictionary") as spark:
        url, n, words = steps.build_dictionary(spark, config, args.images or config.paths.url("images"))
    summary("build_dictionary", time.monotonic() - started, read=n, written=words)
    print(f"dictionary of {words} words from the training runs' {n} images: {url}")
    return 0
