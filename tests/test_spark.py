import io
import logging
import sys
import time

from xray_spark.config import load_config
from xray_spark.spark import _ProgressLogger, attached_to_console, build_session, stage


def _slow(batches):
    for batch in batches:
        time.sleep(0.3)
        yield batch


def test_cluster_has_two_executors(spark, cluster_config):
    executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1
    assert executors == 2
    session = build_session(cluster_config, "tests")  # the shared session, with this configuration's settings
    assert session is spark
    assert session.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert session.conf.get("spark.ui.showConsoleProgress") == "false"


def test_console_bar_only_on_a_terminal_or_in_a_notebook(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file: no terminal, and no kernel here
    assert not attached_to_console()


def test_stage_names_jobs_and_logs_progress(spark, caplog):
    config = load_config(None, ["progress.interval_s=0.2"])
    caplog.set_level(logging.INFO, logger="xray_spark.spark")
    with stage(spark, "k-means iteration 7/20", config.progress.interval_s, group="test-kmeans"):
        n = spark.range(0, 8, numPartitions=8).mapInPandas(_slow, "id long").count()
        jobs = spark.sparkContext.statusTracker().getJobIdsForGroup("test-kmeans")
    assert n == 8 and jobs, "the jobs started inside the stage belong to its group"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("k-means iteration 7/20:")]
    assert lines, "a progress line every interval while the stage runs"
    assert "tasks/s, ETA" in lines[-1] and "/" in lines[-1].split(":")[1]
    # after the stage, new jobs are no longer in its group
    spark.range(3).count()
    assert spark.sparkContext.statusTracker().getJobIdsForGroup("test-kmeans") == jobs


def test_progress_counts_done_and_total_tasks(spark):
    reporter = _ProgressLogger(spark, "test-count", "count", 1.0, None)
    spark.sparkContext.setJobGroup("test-count", "count")
    spark.range(0, 10, numPartitions=5).count()
    spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty(10_000)  # the status tracker is told asynchronously
    done, total = reporter.counts()
    assert done == total and total >= 5
    assert reporter.line().startswith(f"count: {done}/{total} tasks")


def test_a_stage_with_its_own_progress_line_logs_that(spark, caplog):
    caplog.set_level(logging.INFO, logger="xray_spark.spark")
    config = load_config(None, ["progress.interval_s=0.1"])
    with stage(spark, "training", config.progress.interval_s, progress=lambda: "3/30 epochs done"):
        spark.range(0, 4, numPartitions=4).mapInPandas(_slow, "id long").count()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training:")]
    assert lines and set(lines) == {"training: 3/30 epochs done"}


def _zip_directories_survive_invalidation(_):
    """In a worker: whether importlib.invalidate_caches() leaves the zip importers' directories."""
    import importlib

    import xray_spark  # noqa: F401  (the worker set-up happens on this import)

    zips = {p: f for p, f in sys.path_importer_cache.items() if type(f).__name__ == "zipimporter"}
    before = {p: id(f._files) for p, f in zips.items()}
    importlib.invalidate_caches()
    yield bool(zips) and all(id(zips[p]._files) == before[p] for p in zips)


def test_workers_do_not_reread_zip_directories_every_task(spark):
    # PySpark 3.5 invalidates import caches at every task; on Python 3.11 that re-read Spark's
    # core jar and pyspark.zip each time (50 ms a task). xray_spark.worker keeps them.
    kept = spark.sparkContext.parallelize(range(4), 4).mapPartitions(_zip_directories_survive_invalidation).collect()
    assert kept == [True] * 4 or sys.version_info >= (3, 12)


def _frozen_after_the_ingest_imports(_):
    """In a worker: whether the cycle collector is left to walk only a small part of the heap."""
    import gc

    import xray_spark.io.staging  # noqa: F401  (what an ingest task imports)
    from xray_spark.worker import freeze_imports

    freeze_imports()
    gc.collect()
    yield gc.get_freeze_count() > 10 * len(gc.get_objects())


def test_workers_freeze_imported_modules_out_of_the_collectors_walk(spark):
    # PySpark's daemon runs gc.collect() after every task: over numpy, pyarrow, fabio, h5py, pyFAI
    # that was 24 ms a task. Frozen at the task's start, the modules are no longer walked.
    import gc

    from xray_spark.worker import freeze_imports

    assert spark.sparkContext.parallelize(range(2), 2).mapPartitions(_frozen_after_the_ingest_imports).collect() \
        == [True, True]
    before = gc.get_freeze_count()
    freeze_imports()                      # the driver's heap is left alone
    assert gc.get_freeze_count() == before
