"""`xray-spark evaluate`: AP per label and mAP of the saved SVMs on the test runs' features, as a
table shaped like the paper's Table I (``reports/bof/results-<labels>.md``) and JSON."""
from __future__ import annotations

import time
from pathlib import Path

from xray_spark.bof import steps
from xray_spark.jobs import JobError, spark_session
from xray_spark.logs import summary


def add_arguments(parser) -> None:
    parser.add_argument("--features", metavar="URL", help="features table (default: paths.features)")
    parser.add_argument("--out", metavar="DIR", help="directory of the results (default: <reports>/bof, local)")


def run(config, args) -> int:
    started = time.monotonic()
    out = Path(args.out) if args.out else config.paths.local("reports", "bof")
    with spark_session(config, "evaluate") as spark:
        try:
            results, table = steps.evaluate_svms(spark, config, args.features or config.paths.url("features"), out)
        except ValueError as e:
            raise JobError(str(e)) from None
    print(table)
    summary("evaluate", time.monotonic() - started, read=results.n_images, written=1)
    return 0
