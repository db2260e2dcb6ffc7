"""Set-up of a PySpark Python worker process: two fixed costs of every task made small.

1. Zip directories, applied once when the worker first imports xray_spark.

On Python 3.11, every task a PySpark 3.5 worker runs starts with ``importlib.invalidate_caches()``,
and 3.11's ``zipimporter.invalidate_caches`` re-reads the whole directory of every zip on the
worker's ``sys.path`` then and there: pyspark.zip, py4j's zip and Spark's core jar (5,221
entries), which Spark puts on the workers' PYTHONPATH. That was 50 ms of CPU per task, most of a
short task's cost (10 rounds of 64 empty tasks: 33 s of worker CPU). CPython 3.12 makes the call
lazy (python/cpython#103200), Spark 4.1 calls it only when a task adds paths (SPARK-54744).
Here the zip importers keep their directories: the archives on a worker's path do not change while
it lives (``addPyFile`` adds new paths, and Spark refuses to replace a file under the same name).

2. The cycle collector. PySpark's daemon runs a full ``gc.collect()`` in the worker after every
task, which walks every object of the imported libraries (numpy, pyarrow, fabio, h5py, pyFAI,
scipy): 24 ms of CPU a task. ``freeze_imports``, called at the start of a task, hands what is
alive then (the modules, once imported; the previous task's garbage has just been collected) to
``gc.freeze``, so later collections walk only what tasks create (1.4 ms a task).
"""
from __future__ import annotations

import functools
import gc
import sys
import zipimport


def in_pyspark_worker() -> bool:
    """True in a PySpark worker process (its daemon imports ``pyspark.worker`` before forking it)."""
    return "pyspark.worker" in sys.modules


def keep_zip_directories() -> None:
    """Make ``invalidate_caches`` of zip importers a no-op in this process (see module docstring)."""
    if sys.version_info < (3, 12):
        zipimport.zipimporter.invalidate_caches = lambda self: None


def freeze_imports() -> None:
    """In a PySpark worker, ``gc.freeze`` what is alive whenever modules were imported since the
    last freeze (the first tasks import lazily); elsewhere nothing (see module docstring)."""
    if in_pyspark_worker():
        _freeze_with(len(sys.modules))


@functools.cache
def _freeze_with(modules: int) -> None:
    gc.freeze()
