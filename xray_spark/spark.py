"""The SparkSession every job uses, and the progress every job shows.

``build_session`` turns the ``spark`` section of the configuration into a session: app name per
job, ``local[*]`` by default, loopback only for local masters, Arrow on, Spark's log level from
the configuration, Spark's console bar only on a terminal or in a notebook (it garbles log files).

``stage`` names a piece of work in the Spark UI (job group and description) and logs, every
``progress.interval_s`` seconds, done/total tasks, the rate and the ETA read from the driver's
``statusTracker``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from xray_spark.config import Config

log = logging.getLogger(__name__)

LOG4J_CONF = Path("conf/log4j2.properties")
# FAIR scheduler pools of the stream job: its batches' jobs outweigh its background embedding's.
STREAM_POOLS = Path("conf/stream-pools.xml")


def is_local(master: str) -> bool:
    return master.startswith("local")


def attached_to_console() -> bool:
    """True on an interactive terminal or inside a Jupyter/Databricks notebook kernel."""
    if sys.stderr.isatty():
        return True
    if "IPython" not in sys.modules:  # a notebook kernel has imported IPython long before us
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def build_session(config: Config, job: str = "session"):
    """Get or create the SparkSession for ``job`` from ``config.spark``.

    An already running session (a notebook's ``spark``, Databricks) is reused as it is, apart
    from the log level; its master and memory cannot be changed from here.
    """
    from pyspark.sql import SparkSession

    sc = config.spark
    if is_local(sc.master):
        os.environ["SPARK_LOCAL_IP"] = sc.local_ip
        # Executors of local masters run this very interpreter (and its venv).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    console = {"auto": attached_to_console(), "always": True, "never": False}[config.progress.console]
    settings = {
        "spark.master": sc.master,
        "spark.app.name": f"{sc.app_name}-{job}",
        "spark.driver.memory": sc.driver_memory,
        "spark.executor.memory": sc.executor_memory,
        "spark.executor.cores": str(sc.executor_cores),
        "spark.sql.shuffle.partitions": str(sc.shuffle_partitions),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(sc.arrow_batch_rows),
        "spark.ui.enabled": str(sc.ui).lower(),
        "spark.ui.showConsoleProgress": str(console).lower(),
    }
    if is_local(sc.master):
        settings["spark.driver.host"] = settings["spark.driver.bindAddress"] = sc.local_ip
    log4j = f"-Dlog4j.configurationFile={LOG4J_CONF.resolve().as_uri()}" if LOG4J_CONF.is_file() else ""
    java_options = " ".join(filter(None, [log4j, sc.java_options]))
    if java_options:
        settings["spark.driver.extraJavaOptions"] = settings["spark.executor.extraJavaOptions"] = java_options
    if job == "stream" and STREAM_POOLS.is_file():
        settings["spark.scheduler.mode"] = "FAIR"
        settings["spark.scheduler.allocation.file"] = STREAM_POOLS.resolve().as_uri()
    settings.update(sc.options)
    builder = SparkSession.builder
    submitted = _submitted_conf()
    for key, value in settings.items():
        if key not in submitted or key == "spark.app.name":  # spark-submit's --master/--conf flags win
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(sc.log_level)
    return spark


def _submitted_conf() -> set[str]:
    """Keys spark-submit already set for this driver (empty when Python started Spark itself)."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return set()
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connect to spark-submit's JVM, whose properties hold its flags
    return {key for key, _ in SparkConf().getAll()}


class _ProgressLogger(threading.Thread):
    """Driver thread: logs done/total tasks of the running job group, rate and ETA, or the
    stage's own progress line (``progress()``) where tasks say nothing (long-running ones)."""

    def __init__(self, spark, group: str, label: str, interval_s: float, progress: Callable[[], str] | None):
        super().__init__(name=f"progress-{group}", daemon=True)
        self.tracker = spark.sparkContext.statusTracker()
        self.group, self.label, self.interval_s, self.progress = group, label, interval_s, progress
        self.started = time.monotonic()
        self.finished = threading.Event()

    def counts(self) -> tuple[int, int]:
        """(done, total) tasks of the group's jobs; a finished job's skipped stages do not count."""
        done = total = 0
        for job_id in self.tracker.getJobIdsForGroup(self.group):
            job = self.tracker.getJobInfo(job_id)
            if job is None:
                continue
            infos = [i for i in map(self.tracker.getStageInfo, job.stageIds) if i is not None]
            job_done = sum(i.numCompletedTasks for i in infos)
            done += job_done
            total += job_done if job.status == "SUCCEEDED" else sum(i.numTasks for i in infos)
        return done, total

    def line(self) -> str:
        if self.progress is not None:
            return f"{self.label}: {self.progress()}"
        done, total = self.counts()
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = f"{(total - done) / rate:.0f} s" if rate > 0 and total >= done else "unknown"
        return f"{self.label}: {done}/{total} tasks, {rate:.2f} tasks/s, ETA {eta}"

    def run(self):
        while not self.finished.wait(self.interval_s):
            log.info(self.line())


@contextlib.contextmanager
def stage(spark, label: str, interval_s: float = 30.0, group: str | None = None,
          progress: Callable[[], str] | None = None):
    """Name the Spark jobs started inside as ``label`` and log their progress periodically: task
    counts, or ``progress()`` when given (e.g. training epochs, whose two tasks run for hours)."""
    sc = spark.sparkContext
    group = group or f"xray-{label.split()[0].lower()}-{time.monotonic_ns()}"
    sc.setJobGroup(group, label, interruptOnCancel=False)
    sc.setLocalProperty("callSite.short", label)
    reporter = _ProgressLogger(spark, group, label, interval_s, progress)
    reporter.start()
    try:
        yield
    finally:
        reporter.finished.set()
        reporter.join()
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)
        sc.setLocalProperty("callSite.short", None)
