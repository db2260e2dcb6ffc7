"""The jobs of ``xray-spark``: one module per job, each with ``add_arguments(parser)`` and
``run(config, args) -> exit code``, called by the CLI and by the spark-submit entry points in
``jobs/``. Jobs compose library functions; no library module imports a job.

The skeleton every job shares: ``spark_session`` (the job's named SparkSession; stages inside are
named with ``spark.stage``), one closing summary line (``logs.summary``), and the exit code:
0 done, 2 bad input (``JobError``: the CLI prints ``xray-spark <job>: <message>``, before Spark
starts wherever the input can be checked without it).
"""
from __future__ import annotations

import contextlib

from xray_spark.spark import build_session


class JobError(Exception):
    """Bad input of a job, said in one line naming the argument, file or key and what is allowed."""


@contextlib.contextmanager
def spark_session(config, job: str):
    """The SparkSession of ``job``; stopped at the end unless it was running before (a notebook's
    or a test's session is left running)."""
    from pyspark.sql import SparkSession

    owned = SparkSession.getActiveSession() is None
    spark = build_session(config, job)
    try:
        yield spark
    finally:
        if owned:
            spark.stop()


def model_directory(config, model: str, what: str = ""):
    """The model directory of ``model`` (a name under paths.models, a path, or a shipped model), its
    manifest read before Spark starts; a bad one is a ``JobError`` (prefixed ``what: `` when given)."""
    from xray_spark import modeldir

    directory = config.paths.model_dir(model)
    try:
        modeldir.read_manifest(directory)
    except modeldir.ModelDirError as e:
        raise JobError(f"{what}: {e}" if what else str(e)) from None
    return directory


def embedding_model(config, why: str = ""):
    """The ``explore.model`` directory, checked before Spark starts to be a CNN that embeds images; a
    bad one is a ``JobError`` naming the key (and ``why`` the job needs it, when given)."""
    from xray_spark import modeldir
    from xray_spark.explore.embeddings import check_model

    directory = config.paths.model_dir(config.explore.model)
    try:
        check_model(directory)
    except modeldir.ModelDirError as e:
        raise JobError(f"explore.model{f' ({why})' if why else ''}: {e}") from None
    return directory
