"""The `images` table: its schema, the one writer (bounded row groups, atomic publish) and the
one reader into tf.data through Petastorm.

The table is plain Parquet that Spark, pandas and Petastorm's ``make_batch_reader`` read without
custom codecs: the image is raw little-endian float32 bytes with ``height`` and ``width`` beside
it, the mask raw uint8 bytes (1 = bad pixel: module gap, beamstop, dead or hot pixel), the tags a
multi-hot int8 list over the whole vocabulary in rank order (``tags.names()``) with the names
beside it for people and SQL. Geometry columns use pyFAI's vocabulary and units (metres;
``pixel1`` is the slow/vertical axis) of the raw detector frame; the beam centre is in raw
detector pixels (row, column) and may lie outside the frame.
"""
from __future__ import annotations

import contextlib
import json
import logging
import uuid
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa

from xray_spark import tags as tagmod

log = logging.getLogger(__name__)

IMAGES = pa.schema([
    pa.field("image_id", pa.string(), nullable=False),      # stable hash of source + index or path + frame
    pa.field("source", pa.string(), nullable=False),        # synthetic | archive
    pa.field("beamtime", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("frame", pa.int64(), nullable=False),          # generator index, or frame within the file
    pa.field("detector", pa.string()),                      # pyFAI detector name, e.g. Pilatus1M
    pa.field("distance_m", pa.float64()),                   # sample-detector distance
    pa.field("wavelength_m", pa.float64()),
    pa.field("pixel1_m", pa.float64()),                     # pixel size, slow (vertical) axis
    pa.field("pixel2_m", pa.float64()),                     # pixel size, fast (horizontal) axis
    pa.field("beam_center_row_px", pa.float64()),           # direct beam on the raw frame (row)
    pa.field("beam_center_col_px", pa.float64()),           # direct beam on the raw frame (column)
    pa.field("incidence_angle_deg", pa.float64()),          # grazing incidence only, else null
    pa.field("raw_height", pa.int32()),                     # raw detector frame shape
    pa.field("raw_width", pa.int32()),
    pa.field("height", pa.int32(), nullable=False),         # stored (preprocessed) image shape
    pa.field("width", pa.int32(), nullable=False),
    pa.field("image", pa.binary(), nullable=False),         # float32 little-endian, height*width
    pa.field("mask", pa.binary(), nullable=False),          # uint8, height*width, 1 = bad pixel
    pa.field("tags", pa.list_(pa.int8()), nullable=False),  # multi-hot over tags.names()
    pa.field("tag_names", pa.list_(pa.string()), nullable=False),
    pa.field("labelled", pa.bool_(), nullable=False),       # False: tags unknown (unlabelled archive)
    pa.field("provenance", pa.string(), nullable=False),    # JSON: generator params, or file facts
])

# The `predictions` table (xray-spark predict): one row per image and model. ``scores`` and
# ``labels`` are aligned with ``scored_tags`` (the model's tags, in its output order).
PREDICTIONS = pa.schema([
    pa.field("image_id", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("model_id", pa.string(), nullable=False),       # manifest model_id of the scoring model
    pa.field("model_kind", pa.string(), nullable=False),     # cnn | bof
    pa.field("scored_tags", pa.list_(pa.string()), nullable=False),
    pa.field("scores", pa.list_(pa.float32())),              # null when the image could not be scored
    pa.field("tag_names", pa.list_(pa.string())),            # tags at or above their threshold
    pa.field("labels", pa.list_(pa.int8())),                 # true multi-hot over scored_tags; null if unlabelled
    pa.field("error", pa.string()),                          # why the image could not be scored, else null
])


def spark_schema(schema: pa.Schema = IMAGES):
    """The Spark StructType of an Arrow table schema (for mapInPandas output)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def encode_image(image: np.ndarray) -> bytes:
    """Raw little-endian float32 bytes of a 2-D image."""
    return np.ascontiguousarray(image, dtype="<f4").tobytes()


def encode_mask(mask: np.ndarray) -> bytes:
    return np.ascontiguousarray(mask, dtype=np.uint8).tobytes()


def decode_images(blobs: Sequence[bytes], height: int, width: int) -> np.ndarray:
    """Stack raw image bytes of one batch into an array of shape (n, height, width), float32."""
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), height, width)


def decode_masks(blobs: Sequence[bytes], height: int, width: int) -> np.ndarray:
    return np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), height, width).astype(bool)


def image_record(*, image_id: str, source: str, beamtime: str, run_id: str, frame: int,
                 image: np.ndarray, mask: np.ndarray, tag_names: Iterable[str] | None,
                 provenance: dict, detector: str | None = None, distance_m: float | None = None,
                 wavelength_m: float | None = None, pixel1_m: float | None = None,
                 pixel2_m: float | None = None, beam_center_row_px: float | None = None,
                 beam_center_col_px: float | None = None, incidence_angle_deg: float | None = None,
                 raw_height: int | None = None, raw_width: int | None = None) -> dict:
    """One row of the `images` table; ``tag_names=None`` means unlabelled."""
    if image.ndim != 2 or image.shape != mask.shape:
        raise ValueError(f"image {image_id}: image shape {image.shape} and mask shape {mask.shape} "
                         "must be the same 2-D shape")
    names = [] if tag_names is None else tagmod.check_names(tag_names, where=f"image {image_id}")
    return {
        "image_id": image_id, "source": source, "beamtime": beamtime, "run_id": run_id,
        "frame": int(frame), "detector": detector, "distance_m": distance_m,
        "wavelength_m": wavelength_m, "pixel1_m": pixel1_m, "pixel2_m": pixel2_m,
        "beam_center_row_px": beam_center_row_px, "beam_center_col_px": beam_center_col_px,
        "incidence_angle_deg": incidence_angle_deg, "raw_height": raw_height, "raw_width": raw_width,
        "height": image.shape[0], "width": image.shape[1],
        "image": encode_image(image), "mask": encode_mask(mask),
        "tags": tagmod.encode(names), "tag_names": [n for n in tagmod.names() if n in set(names)],
        "labelled": tag_names is not None,
        "provenance": json.dumps(provenance, sort_keys=True, default=str),
    }


def records_to_arrow(records: list[dict], schema: pa.Schema = IMAGES) -> pa.RecordBatch:
    """An Arrow batch in the table's exact column order and types (for mapInArrow)."""
    columns = {f.name: [r[f.name] for r in records] for f in schema}
    columns["tags"] = [np.asarray(t, dtype=np.int8) for t in columns["tags"]] if "tags" in columns else None
    return pa.RecordBatch.from_pydict({k: v for k, v in columns.items() if v is not None}, schema=schema)


# ---------------------------------------------------------------- writing

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


# ---------------------------------------------------------------- writing from Python workers

# A partitioned table's files hold every column but the partition keys (they are in the directory
# names), as Spark writes them.
PARTITION_KEYS = ("beamtime", "run_id")
IMAGE_FILE = pa.schema([f for f in IMAGES if f.name not in PARTITION_KEYS])
# Per-row values of kilobytes (an image, its mask, the provenance JSON) are neither dictionary
# encoded nor given min/max statistics: both would cost time and bloat the footer for nothing.
_SMALL_COLUMNS = [f.name for f in IMAGE_FILE if f.name not in ("image", "mask", "provenance")]


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


# ---------------------------------------------------------------- reading into tf.data

@contextlib.contextmanager
def tf_dataset(url: str, tag_set: Sequence[str] | None = None, *, num_epochs: int | None = 1,
               cur_shard: int | None = None, shard_count: int | None = None,
               shuffle_row_groups: bool = False, seed: int | None = None, workers_count: int = 2,
               extra_fields: Sequence[str] = ()):
    """A tf.data dataset of (image, labels) over the `images` table at ``url``, one row per element.

    ``image`` is (height, width, 1) float32 as stored (already preprocessed); ``labels`` is the
    float32 multi-hot restricted to ``tag_set`` (default: all tags). Reading is sharded by row
    group with ``cur_shard``/``shard_count`` (one shard per Horovod rank). Use as a context
    manager: the Petastorm reader stops when the block ends.
    """
    import tensorflow as tf
    from petastorm import make_batch_reader
    from petastorm.tf_utils import make_petastorm_dataset

    tag_set = list(tag_set) if tag_set is not None else tagmod.names()
    columns = tf.constant([tagmod.names().index(n) for n in tagmod.check_names(tag_set)], tf.int32)
    fields = ["image", "height", "width", "tags", *extra_fields]
    with make_batch_reader(url, schema_fields=fields, num_epochs=num_epochs, cur_shard=cur_shard,
                           shard_count=shard_count, shuffle_row_groups=shuffle_row_groups,
                           seed=seed, workers_count=workers_count) as reader:
        def decode(row):
            image = tf.reshape(tf.io.decode_raw(row.image, tf.float32), (row.height, row.width, 1))
            labels = tf.cast(tf.gather(row.tags, columns), tf.float32)
            extras = {name: getattr(row, name) for name in extra_fields}
            return (image, labels, extras) if extra_fields else (image, labels)

        yield make_petastorm_dataset(reader).unbatch().map(decode, num_parallel_calls=tf.data.AUTOTUNE)
