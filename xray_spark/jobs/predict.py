"""`xray-spark predict`: score an images table with any model directory (CNN or bag of features)
into a predictions table (``labelling.scoring``); AP per tag and mAP when the images are labelled."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from xray_spark import metrics
from xray_spark.jobs import model_directory, spark_session
from xray_spark.labelling.scoring import predict
from xray_spark.logs import summary
from xray_spark.paths import SHIPPED_MODEL

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--model", default=SHIPPED_MODEL, metavar="NAME|DIR",
                        help=f"model directory, or its name under paths.models (default: {SHIPPED_MODEL}, "
                             "the pretrained CNN shipped with the package)")
    parser.add_argument("--images", metavar="URL", help="images table to score (default: paths.images)")
    parser.add_argument("--output", metavar="URL",
                        help="predictions table to write (default: paths.predictions/<model name>)")
    parser.add_argument("--evaluation", metavar="FILE", help="also write AP per tag and mAP as JSON here")


def run(config, args) -> int:
    started = time.monotonic()
    directory = model_directory(config, args.model)
    output = args.output or config.paths.under("predictions", directory.name)
    with spark_session(config, "predict") as spark:
        result = predict(spark, directory, args.images or config.paths.url("images"), output,
                         row_group_size_mb=config.tables.row_group_size_mb, interval_s=config.progress.interval_s)
    if result["evaluation"] is not None:
        print(metrics.results_table([result["evaluation"]]), end="")
        if args.evaluation:
            Path(args.evaluation).write_text(result["evaluation"].to_json() + "\n")
    print(f"predictions of {result['model_id']} written to {output}")
    if result["errors"]:
        log.warning("%d images could not be scored: see the error column of %s", result["errors"], output)
    summary("predict", time.monotonic() - started, "images", read=result["rows"],
            written=result["rows"] - result["errors"], quarantined=result["errors"])
    return 0
