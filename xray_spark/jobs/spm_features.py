"""`xray-spark spm_features`: spatial-pyramid features of every image with the saved dictionary, as
the features table (with the train/test split by run); images that give no patch go to the
``bof_skipped`` table with their reason."""
from __future__ import annotations

import time

from xray_spark.bof import pipeline, steps
from xray_spark.jobs import JobError, spark_session
from xray_spark.logs import summary


def add_arguments(parser) -> None:
    pipeline.add_images_argument(parser)


def run(config, args) -> int:
    started = time.monotonic()
    with spark_session(config, "spm_features") as spark:
        try:
            n_read, n_skipped = steps.spm_features(spark, config, args.images or config.paths.url("images"))
        except ValueError as e:
            raise JobError(str(e)) from None
    summary("spm_features", time.monotonic() - started, read=n_read, written=n_read - n_skipped, skipped=n_skipped)
    print(f"features of {n_read - n_skipped} images: {config.paths.url('features')}; {n_skipped} skipped with "
          f"their reason: {config.paths.url('bof_skipped')}")
    return 0
