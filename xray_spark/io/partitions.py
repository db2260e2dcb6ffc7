"""Incremental update of a table partitioned by (beamtime, run_id): rewrite only the touched runs.

A night adds images to a few runs; rewriting the whole `images` table for them would make the
nightly cost grow with the archive. Only the partition directories of the touched runs are
rewritten: their kept old rows plus the new rows are written with ``schema.write_table`` to a
staging table, then each partition directory is swapped into place (old one moved aside, new one
renamed in, old one deleted: each swap is a rename, atomic on HDFS and local file systems).

Rerunning after a crash is exactly-once: the new content of a partition is a function of its old
rows without the rows of the files being re-read, plus those files' rows, whichever partitions
were already swapped.
"""
from __future__ import annotations

import logging
import uuid
from typing import Iterable

from pyspark.sql import DataFrame, functions as F

from xray_spark import schema

log = logging.getLogger(__name__)
KEYS = ("beamtime", "run_id")


def _fs(spark, url: str):
    return schema._hadoop_fs(spark, url)


def partition_dir(spark, url: str, beamtime: str, run_id: str) -> str:
    """The directory of one partition, escaped as Spark escapes partition values."""
    escape = spark.sparkContext._jvm.org.apache.spark.sql.catalyst.catalog.ExternalCatalogUtils.escapePathName
    return f"{url.rstrip('/')}/beamtime={escape(beamtime)}/run_id={escape(run_id)}"


def read_partitions(spark, url: str, partitions: Iterable[tuple[str, str]], table=schema.IMAGES) -> DataFrame:
    """Rows of the given existing partitions only (the others are not even listed)."""
    fs, _ = _fs(spark, url)
    dirs = [d for d in (partition_dir(spark, url, *p) for p in sorted(set(partitions))) if fs.exists(_fs(spark, d)[1])]
    spark_schema = schema.spark_schema(table)
    if not dirs:
        return spark.createDataFrame([], spark_schema)
    return spark.read.schema(spark_schema).option("basePath", url).parquet(*dirs)


def rewrite_partitions(spark, url: str, rows: DataFrame, partitions: Iterable[tuple[str, str]],
                       row_group_size_mb: int) -> None:
    """Make ``rows`` the whole content of ``partitions`` of the table at ``url``.

    ``rows`` must only hold rows of those partitions (the caller unions kept old rows and new
    ones). A partition left without rows is removed.
    """
    partitions = sorted(set(partitions))
    staging = f"{url.rstrip('/')}.staging"
    ordered = rows.repartition(*KEYS).sortWithinPartitions(*KEYS, "image_id")
    schema.write_table(ordered, staging, row_group_size_mb, partition_by=KEYS)
    fs, root = _fs(spark, url)
    fs.mkdirs(root)
    tag = uuid.uuid4().hex[:12]
    for beamtime, run_id in partitions:
        _, target = _fs(spark, partition_dir(spark, url, beamtime, run_id))
        _, new = _fs(spark, partition_dir(spark, staging, beamtime, run_id))
        _, aside = _fs(spark, f"{url.rstrip('/')}/_replaced-{tag}/{target.getParent().getName()}/{target.getName()}")
        if fs.exists(target):
            fs.mkdirs(aside.getParent())
            if not fs.rename(target, aside):
                raise OSError(f"could not move {target} aside")
        if fs.exists(new):
            fs.mkdirs(target.getParent())
            if not fs.rename(new, target):
                raise OSError(f"could not publish {new} as {target}")
    fs.delete(_fs(spark, f"{url.rstrip('/')}/_replaced-{tag}")[1], True)
    fs.delete(_fs(spark, staging)[1], True)
    log.info("rewrote %d partition(s) of %s", len(partitions), url)


def drop_files(rows: DataFrame, paths: Iterable[str]) -> DataFrame:
    """Rows whose provenance path is not among ``paths`` (files being re-read)."""
    paths = sorted(set(paths))
    if not paths:
        return rows
    return rows.filter(~F.get_json_object("provenance", "$.path").isin(paths))
