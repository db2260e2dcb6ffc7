"""`xray-spark demo` (what `make demo` runs): the whole pipeline on an embedded default, small.

1. ``generate`` a synthetic training set (physics generator, exact tags) and its ``gallery`` PNG;
2. ``train_cnn`` on it with the small CPU preset (Horovod on Spark);
3. the bag-of-features jobs (``build_dictionary``, ``spm_features``, ``train_svm``, ``evaluate``,
   which prints AP per tag and mAP) with their small preset on the CNN's tags, when
   ``demo.bag_of_features``;
4. build a small beamtime archive in the real formats (EDF, CBF, TIFF, Eiger HDF5, plus damaged
   files and expert labels; ``io.demo_archive``);
5. ``nightly`` on it: ingest, label with the CNN and the bag of features, HTML summary;

and prints where the summary is. Every step is the real job, called through the same command
line a user types, with ``demo.overrides`` and then the user's own ``--conf``/``--set`` applied.
Everything lives under ``demo.root``, which is wiped first (only if an earlier demo made it).
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from datetime import datetime, timezone

log = logging.getLogger(__name__)
MARKER = ".xray_spark_demo"


def _step(name: str, argv: list[str], timings: dict) -> None:
    from xray_spark import cli

    print(f"== demo: {name}", flush=True)
    started = time.monotonic()
    code = cli.main(argv)
    timings[name] = time.monotonic() - started
    if code:
        raise SystemExit(f"demo: step {name!r} failed with exit code {code} (command: xray-spark {' '.join(argv)})")


def _prepare_root(root: str) -> None:
    if os.path.exists(root):
        if not os.path.exists(os.path.join(root, MARKER)):
            raise SystemExit(f"demo: {root!r} exists and was not made by the demo; set demo.root to a new directory")
        shutil.rmtree(root)
    os.makedirs(root)
    open(os.path.join(root, MARKER), "w").close()


def add_arguments(parser) -> None:
    """demo takes no arguments of its own: sizes are in the `demo` configuration section."""


def run(config, args) -> int:
    from xray_spark.bof.pipeline import label_slug
    from xray_spark.io.demo_archive import build_archive
    from xray_spark.spark import build_session

    started = time.monotonic()
    demo = config.demo
    root = os.path.abspath(demo.root)
    _prepare_root(root)
    conf = getattr(args, "job_conf", None) or args.conf
    overrides = [*args.overrides, *getattr(args, "job_overrides", [])]
    user = ([f"--conf={conf}"] if conf else []) + [f"--set={o}" for o in overrides]
    common = [f"--set={o}" for o in demo.overrides] + [f"--set=paths.root={root}"]
    base = common + user
    training = os.path.join(root, "synthetic")
    archive = os.path.join(root, "archive")
    timings: dict[str, float] = {}
    models = [config.cnn.model_name]
    _step("generate training images", base + ["generate", "--n", str(demo.train_images), "--output", training], timings)
    _step("gallery of the training images", base + [
        "gallery", "--input", training, "--output", os.path.join(root, "reports", "synthetic_gallery.png")], timings)
    _step("train CNN", base + ["train_cnn", "--images", training, "--fresh"], timings)
    if demo.bag_of_features:
        # the CNN's tags, so that train_svm also writes the model directory nightly labels with
        bof = common + [f"--set=bof.label_set={config.cnn.tag_set}"] + user
        for job in ("build_dictionary", "spm_features"):
            _step(f"bag of features: {job}", bof + [job, "--images", training], timings)
        for job in ("train_svm", "evaluate"):
            _step(f"bag of features: {job}", bof + [job], timings)
        models.append(f"bof/model-{label_slug(config.cnn.tag_set)}")
    print("== demo: build the beamtime archive", flush=True)
    t = time.monotonic()
    spark = build_session(config, "demo-archive")
    try:
        files = build_archive(spark, config, archive, demo.archive_files, demo.archive_runs, demo.seed)
    finally:
        spark.stop()
    timings["build archive"] = time.monotonic() - t
    night = datetime.now(timezone.utc).date().isoformat()
    _step("nightly", base + [f"--set=nightly.models=[{', '.join(models)}]",
                             f"--set=ingest.labels={os.path.join(archive, 'labels.csv')}",
                             "nightly", "--archive", archive, "--night", night], timings)
    report = os.path.join(root, "reports", "nightly", night, "index.html")
    total = time.monotonic() - started
    print("\n".join([f"demo: {len(files)} archive files ({', '.join(sorted(set(files['format'])))}) "
                     f"labelled by {', '.join(models)}",
                     *(f"  {name:<34} {seconds:6.0f} s" for name, seconds in timings.items()),
                     f"demo done in {total:.0f} s; nightly summary: {report}"]))
    return 0
