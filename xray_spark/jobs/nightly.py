"""`xray-spark nightly`: ingest what is new, label it with ``nightly.models``, write the night's
HTML summary (``labelling.night``)."""
from __future__ import annotations

import argparse
from datetime import datetime

from xray_spark.io.archive import ArchiveError
from xray_spark.io.expert_labels import LabelsError
from xray_spark.io.ingestion import check_inputs
from xray_spark.jobs import JobError, embedding_model, model_directory, spark_session
from xray_spark.labelling.night import nightly


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--night", metavar="YYYY-MM-DD", help="the night to label and report (default: today, UTC)")
    parser.add_argument("--archive", metavar="DIR", help="archive root (default: ingest.archive)")


def check_models(config) -> None:
    """Every configured model directory is readable, and the embedding CNN is one (said before Spark starts)."""
    for model in config.nightly.models:
        model_directory(config, model, "nightly.models")
    if config.nightly.models:       # the night embeds what it labels with this CNN
        embedding_model(config)


def run(config, args) -> int:
    if args.night:
        try:
            datetime.strptime(args.night, "%Y-%m-%d")
        except ValueError:
            raise JobError(f"--night {args.night!r}: expected a date YYYY-MM-DD") from None
    problem = check_inputs(config, args.archive)
    if problem:
        raise JobError(problem)
    check_models(config)
    with spark_session(config, "nightly") as spark:
        try:
            out = nightly(spark, config, args.night, args.archive)
        except (ArchiveError, LabelsError) as e:
            raise JobError(str(e)) from None
    print(f"nightly summary: {out['report']}")
    return 0
