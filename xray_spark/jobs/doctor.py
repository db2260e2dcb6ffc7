"""`xray-spark doctor`: checks that the whole stack works together on this machine, and says how
to fix what does not. Each check runs the real thing: a Spark job on executors, a Petastorm
dataset written and read back into tf.data, a Horovod allreduce across processes started by Spark.
"""
from __future__ import annotations

import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np

INSTALL_FIX = "run `make venv` (recreates .venv from constraints.txt)"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_python(config) -> Check:
    ok = sys.version_info[:2] == (3, 11)
    return Check("Python", ok, f"{platform.python_version()} at {sys.executable}",
                 "" if ok else "use Python 3.11 (make uses /usr/bin/python3.11 or python3.11)")


def check_java(config) -> Check:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        return Check("Java", False, str(e), "install Java 17 (apt install openjdk-17-jre-headless)")
    first = out.splitlines()[0] if out else "no output"
    ok = '"17' in first or '"21' in first
    return Check("Java", ok, first, "" if ok else "Spark 3.5 needs Java 17 (or 21) on PATH")


def _executor_pid(batches):
    import os

    import pandas as pd

    for batch in batches:
        yield pd.DataFrame({"pid": [os.getpid()] * len(batch), "n": batch["id"]})


def check_spark(config, spark) -> Check:
    df = spark.range(0, 1000, numPartitions=4).mapInPandas(_executor_pid, "pid long, n long")
    row = df.groupBy().agg({"n": "sum", "pid": "count"}).collect()[0]
    ok = row["sum(n)"] == sum(range(1000))
    return Check("Spark", ok, f"{spark.version} on {spark.sparkContext.master}, "
                 f"defaultParallelism={spark.sparkContext.defaultParallelism}",
                 "" if ok else "Spark ran but computed a wrong sum: " + INSTALL_FIX)


def _tiny_images(batches):
    from xray_spark import schema

    for batch in batches:
        records = [schema.image_record(
            image_id=f"doctor-{i}", source="synthetic", beamtime="doctor", run_id="doctor", frame=i,
            image=np.full((32, 32), i, np.float32), mask=np.zeros((32, 32), bool),
            tag_names=["Thin film"] if i % 2 else [], provenance={"doctor": i})
            for i in batch.column("id").to_pylist()]
        yield schema.records_to_arrow(records)


def check_petastorm(config, spark) -> Check:
    from xray_spark import schema
    from xray_spark.cnn.data import tf_dataset
    from xray_spark.io import tables

    with tempfile.TemporaryDirectory(prefix="xray-doctor-") as tmp:
        url = Path(tmp, "images").as_uri()
        df = spark.range(0, 8, numPartitions=2).mapInArrow(_tiny_images, schema.spark_schema())
        tables.write_table(df, url, row_group_size_mb=1)
        values, labels = [], []
        with tf_dataset(url, ["Thin film"]) as ds:
            for image, label in ds:
                values.append(float(image[0, 0, 0]))
                labels.append(float(label[0]))
    ok = sorted(values) == list(map(float, range(8))) and sum(labels) == 4
    return Check("Petastorm", ok, f"{version('petastorm')}: 8 images written by Spark, read into tf.data",
                 "" if ok else "rows read back differ from rows written: " + INSTALL_FIX)


def check_tensorflow(config) -> Check:
    import tensorflow as tf

    devices = ", ".join(d.device_type for d in tf.config.list_physical_devices())
    value = float(tf.reduce_sum(tf.ones((4, 4))))
    ok = value == 16.0
    return Check("TensorFlow", ok, f"{tf.__version__} (keras {version('keras')}), devices: {devices}",
                 "" if ok else INSTALL_FIX)


def _allreduce():
    import horovod.tensorflow as hvd
    import tensorflow as tf

    hvd.init()
    total = hvd.allreduce(tf.constant([float(hvd.rank() + 1)]), op=hvd.Sum)
    return hvd.rank(), hvd.size(), float(total.numpy()[0])


def check_horovod(config, spark) -> Check:
    try:
        import horovod.spark
        import horovod.tensorflow as hvd
    except ImportError as e:
        return Check("Horovod", False, str(e), "Horovod is not built with TensorFlow: " + INSTALL_FIX)
    if not (hvd.gloo_built() and hvd.tensorflow_built() if hasattr(hvd, "tensorflow_built") else hvd.gloo_built()):
        return Check("Horovod", False, "built without Gloo", "rebuild with HOROVOD_WITH_GLOO=1: " + INSTALL_FIX)
    n = config.horovod.num_proc
    results = sorted(horovod.spark.run(_allreduce, num_proc=n, nics=set(config.horovod.nics),
                                       start_timeout=180, verbose=0))
    expected = n * (n + 1) / 2
    ok = [r[0] for r in results] == list(range(n)) and all(r[2] == expected for r in results)
    return Check("Horovod", ok, f"{version('horovod')} (TensorFlow, Gloo): allreduce over {n} ranks "
                 f"on Spark = {results[0][2]:g}",
                 "" if ok else f"allreduce gave {results}; check horovod.nics in the configuration")


def check_library(name: str, dist: str) -> Check:
    try:
        __import__(name)
        return Check(dist, True, version(dist))
    except Exception as e:  # an import error of any kind is what the doctor reports
        return Check(dist, False, str(e), INSTALL_FIX)


def run_checks(config) -> list[Check]:
    from xray_spark.spark import build_session, stage

    checks = [check_python(config), check_java(config)]
    spark = None
    try:
        spark = build_session(config, "doctor")
        for fn in (check_spark, check_petastorm, check_horovod):
            with stage(spark, f"doctor: {fn.__name__[6:]}", config.progress.interval_s):
                checks.append(_guard(fn.__name__[6:].capitalize(), fn, config, spark))
    except Exception as e:  # no session: report it, and go on with the checks that need none
        checks.append(Check("Spark", False, f"{type(e).__name__}: {e}",
                            "check Java 17 and spark.master; locally SPARK_LOCAL_IP=127.0.0.1"))
    finally:
        if spark is not None:
            spark.stop()
    checks.append(_guard("TensorFlow", check_tensorflow, config))
    checks += [check_library("sklearn", "scikit-learn"), check_library("skimage", "scikit-image")]
    return checks


def _guard(name, fn, *args) -> Check:
    try:
        return fn(*args)
    except Exception as e:  # a crashing check is a failed check, with its reason
        return Check(name, False, f"{type(e).__name__}: {e}"[:300], INSTALL_FIX)


def format_table(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'check':<{width}}  status  detail", f"{'-' * width}  ------  ------"]
    for c in checks:
        lines.append(f"{c.name:<{width}}  {'OK' if c.ok else 'FAIL':<6}  {c.detail}")
        if not c.ok:
            lines.append(f"{'':<{width}}  {'':<6}  fix: {c.fix}")
    return "\n".join(lines)


def add_arguments(parser) -> None:
    """doctor takes no arguments of its own: it checks the configured master and Horovod ranks."""


def run(config, args) -> int:
    started = time.monotonic()
    checks = run_checks(config)
    print(format_table(checks))
    failed = [c.name for c in checks if not c.ok]
    print(f"doctor: {len(checks) - len(failed)}/{len(checks)} checks passed in "
          f"{time.monotonic() - started:.0f} s" + (f"; broken: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
