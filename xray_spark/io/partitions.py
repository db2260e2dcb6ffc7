"""Incremental update of a partitioned table: rewrite only the touched partitions.

The `images` table is partitioned by (beamtime, run_id), the nightly predictions by night.

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


def partition_dir(spark, url: str, values: tuple[str, ...], keys: tuple[str, ...] = KEYS) -> str:
    """The directory of one partition, escaped as Spark escapes partition values."""
    escape = spark.sparkContext._jvm.org.apache.spark.sql.catalyst.catalog.ExternalCatalogUtils.escapePathName
    return "/".join([url.rstrip("/"), *(f"{k}={escape(v)}" for k, v in zip(keys, values))])


def read_partitions(spark, url: str, partitions: Iterable[tuple[str, ...]], table=schema.IMAGES,
                    keys: tuple[str, ...] = KEYS) -> DataFrame:
    """Rows of the given existing partitions only (the others are not even listed)."""
    fs, _ = _fs(spark, url)
    dirs = [d for d in (partition_dir(spark, url, p, keys) for p in sorted(set(partitions)))
            if fs.exists(_fs(spark, d)[1])]
    spark_schema = schema.spark_schema(table)
    if not dirs:
        return spark.createDataFrame(spark.sparkContext.emptyRDD(), spark_schema)  # no rows, no tasks
    return spark.read.schema(spark_schema).option("basePath", url).parquet(*dirs)


def rewrite_partitions(spark, url: str, rows: DataFrame, partitions: Iterable[tuple[str, ...]],
                       row_group_size_mb: int, keys: tuple[str, ...] = KEYS, order_by: str = "image_id",
                       one_file_per_partition: bool = True) -> None:
    """Make ``rows`` the whole content of ``partitions`` of the table at ``url``.

    ``rows`` must only hold rows of those partitions (the caller unions kept old rows and new
    ones). A partition left without rows is removed. Rows are sorted by ``order_by`` within each
    file. ``one_file_per_partition`` gathers each partition's rows into one file (a shuffle);
    False writes every task's rows where they are, one file per task and partition it holds: no
    shuffle, so reading and writing run in one pass (ingest, whose tasks hold contiguous files).
    """
    partitions = sorted(set(partitions))
    staging = f"{url.rstrip('/')}.staging"
    ordered = (rows.repartition(*keys) if one_file_per_partition else rows).sortWithinPartitions(*keys, order_by)
    schema.write_table(ordered, staging, row_group_size_mb, partition_by=keys)
    fs, root = _fs(spark, url)
    fs.mkdirs(root)
    tag = uuid.uuid4().hex[:12]
    for values in partitions:
        _, target = _fs(spark, partition_dir(spark, url, values, keys))
        _, new = _fs(spark, partition_dir(spark, staging, values, keys))
        _, aside = _fs(spark, partition_dir(spark, f"{url.rstrip('/')}/_replaced-{tag}", values, keys))
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
