"""`xray-spark demo` (what `make demo` runs): the whole pipeline on an embedded default, small.

1. generate a synthetic training set (physics generator, exact tags) and its gallery PNG;
2. train the CNN on it with the small CPU preset (Horovod on Spark);
3. the bag of features (dictionary, spatial pyramids, SVMs, evaluation with AP per tag and mAP)
   with its small preset on the CNN's tags, when ``demo.bag_of_features``;
4. build a small beamtime archive in the real formats (EDF, CBF, TIFF, Eiger HDF5, plus damaged
   files and expert labels; ``io.demo_archive``);
5. a night on it: ingest, label with the CNN and the bag of features, HTML summary;

and prints where the summary is. Every step calls the library function its job calls, in one
Spark session, with ``demo.overrides`` and then the user's own ``--conf``/``--set`` applied.
Everything lives under ``demo.root``, which is wiped first (only if an earlier demo made it).
"""
from __future__ import annotations

import os
import shutil
import time
from datetime import datetime, timezone

from xray_spark.bof import pipeline, steps
from xray_spark.cnn.training import train
from xray_spark.config import load_config
from xray_spark.io import tables
from xray_spark.io.demo_archive import build_archive
from xray_spark.jobs import JobError, spark_session
from xray_spark.labelling.night import nightly
from xray_spark.paths import SHIPPED_MODEL
from xray_spark.report.tag_gallery import draw, sample_rows, tag_list
from xray_spark.simulate.synthetic_images import generate_images

MARKER = ".xray_spark_demo"


def _prepare_root(root: str) -> None:
    if os.path.exists(root):
        if not os.path.exists(os.path.join(root, MARKER)):
            raise JobError(f"{root!r} exists and was not made by the demo; set demo.root to a new directory")
        shutil.rmtree(root)
    os.makedirs(root)
    open(os.path.join(root, MARKER), "w").close()


def add_arguments(parser) -> None:
    """demo takes no arguments of its own: sizes are in the `demo` configuration section."""


def run(config, args) -> int:
    started = time.monotonic()
    demo = config.demo
    root = os.path.abspath(demo.root)
    _prepare_root(root)
    conf = getattr(args, "job_conf", None) or args.conf
    user = [*args.overrides, *getattr(args, "job_overrides", [])]

    def configured(*overrides: str):
        return load_config(conf, [*demo.overrides, f"paths.root={root}", *overrides, *user])

    cfg = configured()
    training, archive = os.path.join(root, "synthetic"), os.path.join(root, "archive")
    timings: dict[str, float] = {}

    def step(name: str, work):
        print(f"== demo: {name}", flush=True)
        t = time.monotonic()
        out = work()
        timings[name] = time.monotonic() - t
        return out

    models = [SHIPPED_MODEL, cfg.cnn.model_name]      # the pretrained CNN labels; the demo's shows training
    with spark_session(cfg, "demo") as spark:
        step("generate training images", lambda: tables.write_table(
            generate_images(spark, cfg, n_images=demo.train_images), training, cfg.tables.row_group_size_mb))
        step("gallery of the training images", lambda: draw(
            sample_rows(spark.read.parquet(training), tag_list("top17"), 4), 4,
            cfg.paths.local("reports", "synthetic_gallery.png"), title="synthetic: log-scale stored images per tag"))
        step("train CNN", lambda: train(spark, cfg, training, fresh=True))
        if demo.bag_of_features:
            # the CNN's tags, so that train_svm also writes the model directory nightly labels with
            bof = configured(f"bof.label_set={cfg.cnn.tag_set}")
            step("bag of features: build_dictionary", lambda: steps.build_dictionary(spark, bof, training))
            step("bag of features: spm_features", lambda: steps.spm_features(spark, bof, training))
            step("bag of features: train_svm", lambda: steps.train_svms(spark, bof, bof.paths.url("features")))
            _, table = step("bag of features: evaluate", lambda: steps.evaluate_svms(
                spark, bof, bof.paths.url("features"), bof.paths.local("reports", "bof")))
            print(table)
            models.append(f"bof/model-{pipeline.label_slug(cfg.cnn.tag_set)}")
        files = step("build archive", lambda: build_archive(spark, cfg, archive, demo.archive_files,
                                                            demo.archive_runs, demo.seed))
        night = datetime.now(timezone.utc).date().isoformat()
        labelled = configured(f"nightly.models=[{', '.join(models)}]",
                              f"ingest.labels={os.path.join(archive, 'labels.csv')}")
        out = step("nightly", lambda: nightly(spark, labelled, night, archive))
    print("\n".join([f"demo: {len(files)} archive files ({', '.join(sorted(set(files['format'])))}) "
                     f"labelled by {', '.join(models)}",
                     *(f"  {name:<34} {seconds:6.0f} s" for name, seconds in timings.items()),
                     f"demo done in {time.monotonic() - started:.0f} s; nightly summary: {out['report']}"]))
    return 0
