"""Shared fixtures: a real two-executor Spark cluster (local-cluster[2,1,1024]) for the session."""
from __future__ import annotations

import contextlib
import os
import sys
import time

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Executors import the functions of test modules by name, as they import the package's.
_TESTS = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_TESTS, os.environ.get("PYTHONPATH")]))

CLUSTER = ["spark.master=local-cluster[2,1,1024]", "spark.executor_memory=768m",
           "spark.driver_memory=2g", "spark.ui=false", "spark.shuffle_partitions=4",
           "progress.console=never"]


@pytest.fixture(scope="session")
def cluster_config():
    from xray_spark.config import load_config

    return load_config(None, CLUSTER)


@pytest.fixture(scope="session")
def spark(cluster_config):
    """Two executor JVMs with one core each: distributed code really crosses processes."""
    from xray_spark.spark import build_session

    session = build_session(cluster_config, "tests")
    status = session.sparkContext._jsc.sc().getExecutorMemoryStatus
    deadline = time.monotonic() + 120
    while status().size() < 3 and time.monotonic() < deadline:  # the driver + 2 executors
        time.sleep(0.5)
    yield session
    session.stop()


def pytest_collection_modifyitems(items):
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)


@pytest.fixture
def killed_at_commit(monkeypatch):
    """A context manager: the ingest run inside it is killed as it writes its manifest (the commit
    record, written last), as a crash or an operator's Ctrl-C would."""
    from xray_spark import schema
    from xray_spark.io import manifest as mf

    @contextlib.contextmanager
    def kill():
        real_write = mf.write

        def write(frame, url, table, sort_by):
            if table is schema.MANIFEST:
                raise KeyboardInterrupt("killed")
            real_write(frame, url, table, sort_by)

        monkeypatch.setattr(mf, "write", write)
        with pytest.raises(KeyboardInterrupt):
            yield
        monkeypatch.setattr(mf, "write", real_write)

    return kill
