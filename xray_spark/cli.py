"""`xray-spark <job>`: one subcommand per job, each a module with ``add_arguments`` and ``run``.

Global options select the configuration (``--conf``) and override any key
(``--set section.key=value``, repeatable). A bad configuration fails before Spark starts,
with exit code 2 and a message naming the key, the value and what is allowed.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from xray_spark import __version__
from xray_spark.config import ConfigError, load_config
from xray_spark.jobs import JobError
from xray_spark.logs import setup_logging

# subcommand -> (module implementing add_arguments(parser) and run(config, args) -> exit code, help)
JOBS = {
    "doctor": ("xray_spark.jobs.doctor", "check that Python, Java, Spark, Petastorm, TensorFlow and Horovod work together"),
    "config": ("xray_spark.jobs.print_config", "print the effective configuration (defaults, file, --set) as YAML"),
    "deploy": ("xray_spark.jobs.deploy_recipes", "render the deployment recipes (spark-submit, Kubernetes, Databricks, Airflow, Docker) from the configuration"),
    "train_cnn": ("xray_spark.jobs.train_cnn", "train the AlexNet multi-label CNN with Horovod on Spark (resumes from its checkpoint)"),
    "adapt": ("xray_spark.jobs.adapt", "adapt a CNN to an unlabelled archive: its batch-norm statistics re-estimated on the archive's images (AdaBN)"),
    "ensemble": ("xray_spark.jobs.build_ensemble", "average the scores of several trained models in one model directory, its thresholds chosen on generated images"),
    "predict": ("xray_spark.jobs.predict", "score an images table with a model directory (CNN or bag of features) into predictions"),
    "build_dictionary": ("xray_spark.jobs.build_dictionary", "bag of features: k-means dictionary of patch descriptors of the training runs"),
    "spm_features": ("xray_spark.jobs.spm_features", "bag of features: spatial-pyramid features of every image (+ skipped table)"),
    "train_svm": ("xray_spark.jobs.train_svm", "bag of features: one chi-square SVM per label on the training runs"),
    "evaluate": ("xray_spark.jobs.evaluate", "bag of features: AP per label and mAP on the test runs (paper's Table I)"),
    "ingest": ("xray_spark.jobs.ingest", "read new or changed files of a beamtime archive into the images table (quarantine the rest)"),
    "nightly": ("xray_spark.jobs.nightly", "ingest what is new, label it with the configured models, write the night's HTML summary"),
    "stream": ("xray_spark.jobs.stream", "label frames as they land in the detectors' landing directory (Structured Streaming, exactly once), with a live page"),
    "demo": ("xray_spark.jobs.demo", "the whole pipeline, small: generate, train, build an archive, nightly; prints the summary's path"),
    "generate": ("xray_spark.jobs.generate", "generate synthetic scattering images with visible-feature tags into the images table"),
    "gallery": ("xray_spark.jobs.gallery", "write a PNG grid of sample images per tag (log scale) from an images table"),
    "embed": ("xray_spark.jobs.embed", "CNN penultimate-layer and I(q) embeddings of every image into the embeddings table, and its faiss index"),
    "similar": ("xray_spark.jobs.similar", "the nearest frames of an image (an id or a detector file) in the embeddings table, with a contact sheet"),
    "atlas": ("xray_spark.jobs.atlas", "a beamtime's clusters, change points along its runs, and its atlas page (from the embeddings table)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xray-spark",
        description="Label synchrotron X-ray scattering images (SAXS, WAXS, GISAXS, GIWAXS) on Spark.")
    parser.add_argument("--version", action="version", version=f"xray_spark {__version__}")
    parser.add_argument("--conf", metavar="FILE", help="configuration YAML (default: conf/local.yaml if present)")
    parser.add_argument("--set", dest="overrides", metavar="SECTION.KEY=VALUE", action="append", default=[],
                        help="override one configuration key, e.g. --set spark.master=local[2] (repeatable)")
    jobs = parser.add_subparsers(dest="job", metavar="JOB", required=True)
    for name, (module, help_text) in JOBS.items():
        sub = jobs.add_parser(name, help=help_text, description=help_text)
        # --conf/--set are accepted after the job name too, as spark-submit jobs/<job>.py passes them.
        sub.add_argument("--conf", dest="job_conf", metavar="FILE", help="same as --conf before the job name")
        sub.add_argument("--set", dest="job_overrides", metavar="SECTION.KEY=VALUE", action="append", default=[],
                         help="same as --set before the job name (applied after those)")
        importlib.import_module(module).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(args.job_conf or args.conf, args.overrides + args.job_overrides)
    except ConfigError as e:
        parser.exit(2, f"xray-spark: configuration error: {e}\n")
    setup_logging(config)
    try:
        return importlib.import_module(JOBS[args.job][0]).run(config, args)
    except JobError as e:
        print(f"xray-spark {args.job}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
