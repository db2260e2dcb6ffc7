"""`xray-spark ingest`: read new or changed files of a beamtime archive into the images table
(``io.ingestion``); what cannot be read is quarantined with its reason."""
from __future__ import annotations

import argparse

from xray_spark.io.archive import ArchiveError
from xray_spark.io.expert_labels import LabelsError
from xray_spark.io.ingestion import check_inputs, ingest
from xray_spark.jobs import JobError, spark_session


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archive", metavar="DIR", help="archive root (default: ingest.archive)")
    parser.add_argument("--labels", metavar="CSV", help="expert labels to join (default: ingest.labels)")
    parser.add_argument("--only", metavar="PATH", nargs="+",
                        help="ingest only these files (relative to the archive root, or absolute inside it)")


def run(config, args) -> int:
    problem = check_inputs(config, args.archive, args.labels)
    if problem:
        raise JobError(problem)
    with spark_session(config, "ingest") as spark:
        try:
            ingest(spark, config, args.archive, args.labels, args.only)
        except (ArchiveError, LabelsError) as e:
            raise JobError(str(e)) from None
    return 0
