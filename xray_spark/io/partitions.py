"""Incremental update of a partitioned table: rewrite only the touched partitions, or add files to them.

The `images` table is partitioned by (beamtime, run_id), the nightly predictions by night.

A night adds images to a few runs; rewriting the whole `images` table for them would make the
nightly cost grow with the archive. Only the partition directories of the touched runs change.
A partition whose rows change is rewritten whole: its new content is written to a staging table
(``rewrite_partitions`` with Spark; ingest's tasks with pyarrow, ``io.staging``), then each
partition directory is swapped into place (``swap_in``: old one moved aside, new one renamed in,
old one deleted; each swap is a rename, atomic on HDFS and local file systems). A partition that
only gains rows (new archive files in an existing run) keeps its files: the staged files are
renamed into it one by one (``add_files``).

Rerunning a rewrite after a crash is exactly-once: the new content of a partition is a function of
its old rows without the rows of the files being re-read, plus those files' rows, whichever
partitions were already swapped. For added files, ingest writes a journal of the new files and
their inputs before publishing (``write_journal``); a rerun first deletes the journalled files
whose inputs the manifest (the commit record) does not hold (``undo_uncommitted``).
"""
from __future__ import annotations

import json
import logging
import uuid
from typing import Iterable

import pyarrow.fs as pafs
from pyspark.sql import DataFrame

from xray_spark import schema
from xray_spark.io import tables

log = logging.getLogger(__name__)
KEYS = ("beamtime", "run_id")


# Characters Spark escapes in partition directory names as %XX (``ExternalCatalogUtils.charToEscape``
# on Linux): control characters and "#%'*/:=?\\{[]^ and DEL. Written here rather than called
# through py4j (several round trips per name, tenths of a second a night); tests compare the two.
_ESCAPED = frozenset([*map(chr, range(1, 32)), *'"#%\'*/:=?\\\x7f{[]^'])


def escape_path_name(value: str) -> str:
    """A partition value as Spark writes it in a directory name, e.g. ``run:1`` -> ``run%3A1``."""
    return "".join(f"%{ord(c):02X}" if c in _ESCAPED else c for c in value)


def partition_path(values: tuple[str, ...], keys: tuple[str, ...] = KEYS) -> str:
    """A partition's directory relative to its table, e.g. ``beamtime=bt1/run_id=run%3A1``."""
    return "/".join(f"{k}={escape_path_name(v)}" for k, v in zip(keys, values))


def partition_dir(url: str, values: tuple[str, ...], keys: tuple[str, ...] = KEYS) -> str:
    """The directory of one partition (a URL)."""
    return f"{url.rstrip('/')}/{partition_path(values, keys)}"


def read_partitions(spark, url: str, partitions: Iterable[tuple[str, ...]], table=schema.IMAGES,
                    keys: tuple[str, ...] = KEYS) -> DataFrame:
    """Rows of the given existing partitions only (the others are not even listed)."""
    fs, _ = tables.filesystem(url)
    dirs = [d for d in (partition_dir(url, p, keys) for p in sorted(set(partitions)))
            if tables.exists(fs, tables.filesystem(d)[1])]
    spark_schema = schema.spark_schema(table)
    if not dirs:
        return spark.createDataFrame(spark.sparkContext.emptyRDD(), spark_schema)  # no rows, no tasks
    return spark.read.schema(spark_schema).option("basePath", url).parquet(*dirs)


def rewrite_partitions(spark, url: str, rows: DataFrame, partitions: Iterable[tuple[str, ...]],
                       row_group_size_mb: int, keys: tuple[str, ...] = KEYS, order_by: str = "image_id") -> None:
    """Make ``rows`` the whole content of ``partitions`` of the table at ``url``.

    ``rows`` must only hold rows of those partitions (the caller unions kept old rows and new
    ones). A partition left without rows is removed. Each partition's rows are gathered into one
    file (a shuffle), sorted by ``order_by``.
    """
    staging = f"{url.rstrip('/')}.staging"
    ordered = rows.repartition(*keys).sortWithinPartitions(*keys, order_by)
    tables.write_table(ordered, staging, row_group_size_mb, partition_by=keys)
    swap_in(url, staging, partitions, keys)
    remove_dir(staging)


def swap_in(url: str, staging: str, partitions: Iterable[tuple[str, ...]], keys: tuple[str, ...] = KEYS) -> None:
    """Make each partition's directory in ``staging`` its directory in ``url`` (none: removed)."""
    partitions = sorted(set(partitions))
    fs, root = tables.filesystem(url)
    _, staged = tables.filesystem(staging)
    fs.create_dir(root, recursive=True)
    aside = f"{root}/_replaced-{uuid.uuid4().hex[:12]}"
    for values in partitions:
        relative = partition_path(values, keys)
        target, new = f"{root}/{relative}", f"{staged}/{relative}"
        if tables.exists(fs, target):
            fs.create_dir(f"{aside}/{relative}".rsplit("/", 1)[0], recursive=True)
            fs.move(target, f"{aside}/{relative}")
        if tables.exists(fs, new):
            fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            fs.move(new, target)
    if tables.exists(fs, aside):
        fs.delete_dir(aside)
    if partitions:
        log.info("swapped in %d partition(s) of %s", len(partitions), url)


def data_files(url: str, partition: str) -> list[str]:
    """Names of the Parquet files of one partition (``partition`` relative to the table ``url``);
    none when it does not exist. Hidden files (``.``, ``_``) are not data, as for Spark."""
    fs, root = tables.filesystem(url)
    infos = fs.get_file_info(pafs.FileSelector(f"{root}/{partition}", allow_not_found=True))
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.File and i.base_name[0] not in "._")


def add_files(url: str, staging: str, partitions: Iterable[str]) -> int:
    """Rename each staged file of ``partitions`` (relative directories) into the table's partition
    directory, beside its files (a file of the same name is replaced); returns the files added."""
    fs, root = tables.filesystem(url)
    _, staged = tables.filesystem(staging)
    added = 0
    for partition in partitions:
        names = data_files(staging, partition)
        if names:
            fs.create_dir(f"{root}/{partition}", recursive=True)
        for name in names:
            tables.replace_file(fs, f"{staged}/{partition}/{name}", f"{root}/{partition}/{name}")
        added += len(names)
    return added


def remove_dir(url: str) -> None:
    """Delete the directory at ``url`` and everything in it, if it exists."""
    fs, path = tables.filesystem(url)
    if tables.exists(fs, path):
        fs.delete_dir(path)


# ---------------------------------------------------------------- the journal of added files

def journal_url(url: str) -> str:
    return f"{url.rstrip('/')}.pending.json"


def write_journal(url: str, entries: list[dict]) -> None:
    """Record, before publishing, the files a run adds: ``{"partition", "stem", "inputs": [[path,
    size, mtime], ...]}`` per group of files (``io.staging.group_stem``). Written whole or not at all."""
    fs, path = tables.filesystem(journal_url(url))
    with tables.replacing(fs, path) as tmp, fs.open_output_stream(tmp) as out:
        out.write(json.dumps(entries).encode())


def undo_uncommitted(url: str, committed: set[tuple[str, int, float]]) -> int:
    """Delete the files a run journalled and published but never committed: those of a group
    with an input (path, size, mtime) that is not in ``committed`` (the manifest's). Then the
    journal goes. Returns the files deleted."""
    fs, path = tables.filesystem(journal_url(url))
    if not tables.exists(fs, path):
        return 0
    with fs.open_input_stream(path) as f:
        entries = json.loads(f.read())
    _, root = tables.filesystem(url)
    deleted = 0
    for entry in entries:
        if all((p, s, m) in committed for p, s, m in entry["inputs"]):
            continue
        for name in data_files(url, entry["partition"]):
            if name.startswith(entry["stem"] + "-"):
                fs.delete_file(f"{root}/{entry['partition']}/{name}")
                deleted += 1
    if deleted:
        log.warning("removed %d image file(s) of an ingest run that did not commit", deleted)
    drop_journal(url)
    return deleted


def drop_journal(url: str) -> None:
    """Forget the journal once the manifest that commits its files is written."""
    fs, path = tables.filesystem(journal_url(url))
    if tables.exists(fs, path):
        fs.delete_file(path)
