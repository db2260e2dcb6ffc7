"""Writing tables and the file-system layer: Spark's atomic table writer, small Arrow tables
written from the driver, Parquet files written by Python workers, and the pyarrow file system of a
table URL through which the driver lists, renames and deletes."""
from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Sequence

import pyarrow as pa

from xray_spark.schema import IMAGE_FILE

log = logging.getLogger(__name__)

# Per-row values of kilobytes (an image, its mask, the provenance JSON) are neither dictionary
# encoded nor given min/max statistics: both would cost time and bloat the footer for nothing.
_SMALL_COLUMNS = [f.name for f in IMAGE_FILE if f.name not in ("image", "mask", "provenance")]


def exists(fs, path: str) -> bool:
    """Whether ``path`` (a file or directory) exists on the pyarrow FileSystem ``fs``."""
    from pyarrow import fs as pafs

    return fs.get_file_info(path).type != pafs.FileType.NotFound


def table_exists(url: str) -> bool:
    return exists(*filesystem(url))


def write_table(df, url: str, row_group_size_mb: int = 32, partition_by: Sequence[str] = ()) -> str:
    """Write ``df`` as Parquet at ``url`` and publish it atomically; a rerun replaces, never appends.

    The data is written to ``<url>.tmp-<uuid>`` and renamed into place once complete (rename is
    atomic on HDFS and local file systems). A previous table at ``url`` is moved aside first and
    deleted after the rename, so readers never see a half-written table and a crashed write
    leaves only a ``.tmp-`` directory, which the next write removes. Row groups are bounded by
    ``row_group_size_mb`` so readers can shard them across training workers.
    """
    tmp = _fresh_tmp(url)
    writer = (df.write.mode("errorifexists")
              .option("parquet.block.size", str(row_group_size_mb * 1024 * 1024))
              # parquet-mr checks a row group's size only every 100 rows by default: far too
              # late for rows of one image each (0.3-16 MB), so check after every row.
              .option("parquet.block.size.row.check.min", "1")
              .option("compression", "zstd"))
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.parquet(tmp)
    return _publish(tmp, url)


def write_arrow(table: pa.Table, url: str) -> str:
    """Write a small Arrow table (metadata: the manifest, the quarantine) from the driver as one
    Parquet file at ``url``, published as ``write_table`` publishes; no Spark job, which would
    cost more than the writing itself."""
    import pyarrow.parquet as pq

    tmp = _fresh_tmp(url)
    fs, path = filesystem(tmp)
    fs.create_dir(path, recursive=True)
    pq.write_table(table, f"{path}/part-00000.zstd.parquet", filesystem=fs, compression="zstd")
    return _publish(tmp, url)


def read_arrow(url: str, table: pa.Schema) -> pa.Table:
    """A small table written by ``write_arrow`` or ``write_table`` (unpartitioned), read on the driver."""
    import pyarrow.parquet as pq

    fs, path = filesystem(url)
    return pq.read_table(path, filesystem=fs, schema=table)


def _fresh_tmp(url: str) -> str:
    """A new ``<url>.tmp-<uuid>`` to write to, after removing the leftovers of interrupted writes."""
    from pyarrow import fs as pafs

    fs, target = filesystem(url)
    parent, name = target.rstrip("/").rsplit("/", 1)
    for info in fs.get_file_info(pafs.FileSelector(parent, allow_not_found=True)):
        if info.base_name.startswith(name + ".tmp-"):
            log.warning("removing the leftover of an interrupted write: %s", info.path)
            if info.type == pafs.FileType.Directory:
                fs.delete_dir(info.path)
            else:
                fs.delete_file(info.path)
    return f"{url.rstrip('/')}.tmp-{uuid.uuid4().hex[:12]}"


def _publish(tmp: str, url: str) -> str:
    """Rename the complete table ``tmp`` to ``url``, moving a previous one aside and deleting it."""
    fs, target = filesystem(url)
    _, tmp_path = filesystem(tmp)
    old = None
    if exists(fs, target):
        old = f"{target.rstrip('/')}.old-{uuid.uuid4().hex[:12]}"
        fs.move(target, old)
    fs.move(tmp_path, target)
    if old is not None:
        fs.delete_dir(old)
    return url


def filesystem(url: str):
    """(pyarrow FileSystem, path) of a table URL: ``file://``, ``hdfs://``, ``s3://`` (or ``s3a://``,
    as Spark spells it), so Python workers write where Spark reads. The driver lists, renames and
    deletes through it too (a local call, not JVM round trips). Publishing a table renames a
    directory: local and shared file systems and HDFS do that; object stores (s3) do not."""
    from pyarrow import fs

    return fs.FileSystem.from_uri("s3://" + url[len("s3a://"):] if url.startswith("s3a://") else url)


def replace_file(fs, source: str, target: str) -> None:
    """Rename ``source`` to ``target``, replacing a ``target`` that exists (a retried task's file)."""
    try:
        fs.move(source, target)
    except OSError:
        fs.delete_file(target)
        fs.move(source, target)


@contextlib.contextmanager
def replacing(fs, path: str):
    """A hidden temporary path beside ``path`` to write to; once written it replaces ``path``, so
    readers see the whole file or none, and a retried task overwrites its earlier output."""
    directory, name = path.rsplit("/", 1)
    tmp = f"{directory}/.{name}.{uuid.uuid4().hex[:12]}.tmp"
    fs.create_dir(directory, recursive=True)
    yield tmp
    replace_file(fs, tmp, path)


def write_file(table: pa.Table, fs, path: str, row_group_size_mb: int) -> None:
    """Write ``table`` (``IMAGE_FILE`` columns) as one Parquet file at ``path``, from a Python worker.

    The same format as ``write_table``'s: zstd, row groups of at most ``row_group_size_mb`` of
    row data, lists in the standard Parquet layout Spark writes; published by ``replacing``.
    """
    import pyarrow.parquet as pq

    rows = max(1, int(row_group_size_mb * 2**20 * table.num_rows / max(table.nbytes, 1)))
    with replacing(fs, path) as tmp, fs.open_output_stream(tmp) as out, pq.ParquetWriter(
            out, IMAGE_FILE, compression="zstd", use_dictionary=_SMALL_COLUMNS, write_statistics=_SMALL_COLUMNS,
            use_compliant_nested_type=True) as writer:
        writer.write_table(table.select(IMAGE_FILE.names), row_group_size=rows)
