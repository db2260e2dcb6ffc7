"""`xray-spark train_svm`: one chi-square SVM per label of ``bof.label_set`` on the training runs'
features, saved under ``<models>/bof/svm-<labels>``, the whole fitted bag-of-features
``PipelineModel`` under ``<models>/bof/pipeline-<labels>``, and for a label set of vocabulary tags
the model directory ``<models>/bof/model-<labels>`` that ``predict`` and ``nightly`` load."""
from __future__ import annotations

import time

from xray_spark.bof import steps
from xray_spark.jobs import spark_session
from xray_spark.logs import summary


def add_arguments(parser) -> None:
    parser.add_argument("--features", metavar="URL", help="features table (default: paths.features)")


def run(config, args) -> int:
    started = time.monotonic()
    with spark_session(config, "train_svm") as spark:
        model, directory = steps.train_svms(spark, config, args.features or config.paths.url("features"))
    if directory is not None:
        print(f"model directory for predict/nightly: {directory}")
    names = model.getOrDefault(model.labelNames)
    summary("train_svm", time.monotonic() - started, read=steps.n_train_images(model), written=len(names))
    arrays = model.arrays()
    for name, c, gamma, ap in zip(names, arrays["C"], arrays["gammas"], arrays["cv_ap"]):
        print(f"{name}: C={c:g} gamma={gamma:.4g} cross-validated AP={ap:.4f}")
    return 0
