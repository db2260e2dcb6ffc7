"""`xray-spark evaluate`: AP per label and mAP of the saved SVMs on the test runs' features, as a
table shaped like the paper's Table I (``reports/bof/results-<labels>.md``) and JSON."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from pyspark.sql import functions as F

from xray_spark import tags
from xray_spark.bof import pipeline
from xray_spark.bof.svm import ChiSquareSVMModel, label_spec
from xray_spark.evaluate import evaluate, results_table
from xray_spark.logs import summary
from xray_spark.spark import stage


def add_arguments(parser) -> None:
    parser.add_argument("--features", metavar="URL", help="features table (default: paths.features)")
    parser.add_argument("--out", metavar="DIR", help="directory of the results (default: <reports>/bof, local)")


def run(config, args) -> int:
    from xray_spark.spark import build_session

    started = time.monotonic()
    spark = build_session(config, "evaluate")
    try:
        slug = pipeline.label_slug(config.bof.label_set)
        model = ChiSquareSVMModel.load(pipeline.model_url(config, f"svm-{slug}"))
        features = spark.read.parquet(args.features or config.paths.url("features"))
        test = features.filter((F.col("split") == "test") & F.col("labelled") & F.col("features").isNotNull())
        with stage(spark, f"evaluate: scoring the test runs ({slug})", config):
            rows = model.transform(test).select("tags", "scores").collect()
        if not rows:
            raise SystemExit("evaluate: no labelled test image with features: run spm_features first")
        names = model.getOrDefault(model.labelNames)
        labels, label_names = tags.labels(np.array([r["tags"] for r in rows], dtype=np.int8),
                                          label_spec(config.bof.label_set))
        if label_names != names:
            raise SystemExit(f"evaluate: the saved SVMs score {names}, bof.label_set gives {label_names}")
        results = evaluate(np.array([r["scores"] for r in rows]), labels, names, method="BoF (chi2 SVM)",
                           label_set=config.bof.label_set, n_train_images=int(model.arrays()["n_train"][0]))
        out = Path(args.out or Path(config.paths.url("reports").removeprefix("file://")) / "bof")
        out.mkdir(parents=True, exist_ok=True)
        (out / f"results-{slug}.json").write_text(results.to_json() + "\n")
        table = results_table([results])
        (out / f"results-{slug}.md").write_text(table)
        print(table)
        summary("evaluate", time.monotonic() - started, read=len(rows), written=1)
    finally:
        spark.stop()
    return 0
