"""What an ingest task writes: Parquet files of the `images` table, from the Python worker itself.

The images never cross into the JVM: a task reads its archive files (``io.rows.file_rows``) and
writes their image rows with pyarrow into a staging table laid out as Spark lays out a
partitioned table (``<staging>/beamtime=<b>/run_id=<r>/<file>``, partition values escaped as
Spark escapes them: the driver computes the directory names, ``io.partitions.partition_path``, and
ships them in the units). Spark
only schedules the tasks and brings the file and quarantine rows back (``FileFacts``); before,
the JVM spent 9-16 ms of CPU per frame taking each image from the worker and encoding it.

The files of one task in one run partition are named after what they hold: ``part-<hash of the
input files' paths, sizes, mtimes and run setup>-<seq>.zstd.parquet``, so the same archive gives
the same files whatever happens, and a retried (or speculative) task rewrites the same names
instead of adding files. Rows are sorted by ``image_id`` within each file; a file holds at most
``ingest.file_size_mb`` of rows (the task holds that much in memory to sort it), in row groups of
at most ``tables.row_group_size_mb``.

A run partition that loses rows (a file re-read, or expert labels to apply) is rewritten whole:
each of its existing files is rewritten here too (``keep_rows``), without the rows of the
re-read files and with the labels applied, or copied unchanged when neither concerns it.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from typing import Iterable, Iterator

import pyarrow as pa

from xray_spark import schema
from xray_spark import tags as tagmod
from xray_spark.io import tables
from xray_spark.io.rows import file_rows, lookup_tags
from xray_spark.worker import freeze_imports


def group_stem(units: list[dict]) -> str:
    """Name stem of the files holding the images of ``units`` (one task's files of one run)."""
    digest = hashlib.sha256()
    for u in units:
        digest.update(json.dumps([u["path"], u["size"], u["mtime"], u["sidecar"]]).encode())
    return f"part-{digest.hexdigest()[:24]}"


def read_groups(units: list[dict]) -> Iterator[tuple[str, list[dict]]]:
    """(partition directory, archive files) of one task's units, run by run (units come in path order)."""
    reads = [u for u in units if "old_file" not in u]
    for partition, group in itertools.groupby(reads, key=lambda u: u["partition"]):
        yield partition, list(group)


def journal_entries(task_units: list[list[dict]]) -> list[dict]:
    """What the tasks ``task_units`` add to the table, for ``io.partitions.write_journal``: per task
    and run, the partition, the file name stem and the input files (path, size, mtime)."""
    return [{"partition": partition, "stem": group_stem(group), "inputs": [[u["path"], u["size"], u["mtime"]] for u in group]}
            for units in task_units for partition, group in read_groups(units)]


def write_task(index: int, tasks, settings: dict, facts) -> None:
    """``foreach`` body of the ingest job: task ``index`` does the units ``tasks.value[index]``.

    ``tasks`` is a broadcast list of lists of units: archive files to read (``io.rows`` units
    with their ``partition`` directory) and existing table files to keep (``old_file``). Each
    read file's quarantine and file rows go to ``facts`` (a ``FileFacts`` accumulator).
    """
    freeze_imports()
    fs, staging = tables.filesystem(settings["staging"])
    units = tasks.value[index]
    for unit in units:
        if "old_file" in unit:
            keep_rows(unit, fs, staging, settings)
    for partition, group in read_groups(units):
        write_images(_image_batches(group, settings, facts), fs, f"{staging}/{partition}", group_stem(group),
                     settings)


def _image_batches(units: list[dict], settings: dict, facts) -> Iterator[pa.RecordBatch]:
    """The image rows of ``units`` as Arrow batches of ``settings["batch_rows"]`` rows at most."""
    for unit in units:
        other, images = [], []
        for record in file_rows(unit, settings):
            if record["kind"] != "image":
                other.append(record)
                continue
            images.append(record)
            if len(images) >= settings["batch_rows"]:
                yield pa.RecordBatch.from_pylist(images, schema=schema.IMAGE_FILE)
                images = []
        if images:
            yield pa.RecordBatch.from_pylist(images, schema=schema.IMAGE_FILE)
        facts.add({unit["path"]: other})


def write_images(batches: Iterable[pa.RecordBatch], fs, directory: str, stem: str, settings: dict) -> int:
    """Write ``batches`` as ``<directory>/<stem>-000.zstd.parquet``, ``-001`` ... (a new file each
    ``settings["file_size_mb"]`` of rows), rows sorted by ``image_id`` within each; returns the
    number of files (none without rows)."""
    pending, size, files = [], 0, 0
    limit = settings["file_size_mb"] * 2**20

    def flush():
        nonlocal pending, size, files
        if pending:
            table = pa.Table.from_batches(pending).sort_by("image_id")
            tables.write_file(table, fs, f"{directory}/{stem}-{files:03d}.zstd.parquet", settings["row_group_size_mb"])
            files += 1
        pending, size = [], 0

    for batch in batches:
        if size + batch.nbytes > limit:
            flush()
        pending.append(batch)
        size += batch.nbytes
    flush()
    return files


def relabel(rows: list[dict], labels: dict) -> int:
    """Apply the expert labels to image rows (dicts with frame and provenance) in place; returns how
    many rows changed."""
    changed = 0
    for row in rows if labels else ():
        names = lookup_tags(labels, json.loads(row["provenance"])["path"], row["frame"])
        if names is None:
            continue
        new = {"tags": tagmod.encode(names).tolist(), "labelled": True,
               "tag_names": [n for n in tagmod.names() if n in set(names)]}
        if any(row.get(k) != v for k, v in new.items()):
            row.update(new)
            changed += 1
    return changed


def keep_rows(unit: dict, fs, staging: str, settings: dict) -> None:
    """Rewrite the table file ``unit["old_file"]`` (relative to the table) into the staging table:
    without the rows of the files ``unit["drop"]`` (being re-read), with the expert labels
    applied. A file that neither concerns is copied as it is; one left without rows is not written."""
    import pyarrow.parquet as pq

    _, root = tables.filesystem(settings["table"])
    source, target = f"{root}/{unit['old_file']}", f"{staging}/{unit['old_file']}"
    drop, labels = set(unit["drop"]), settings["labels"]
    with fs.open_input_file(source) as f:
        parquet = pq.ParquetFile(f)
        rows = parquet.read(columns=["frame", "provenance", "tags", "tag_names", "labelled"]).to_pylist()
        dropped = [json.loads(r["provenance"])["path"] in drop for r in rows]
        if not any(dropped) and not relabel(rows, labels):
            with tables.replacing(fs, target) as tmp:
                fs.copy_file(source, tmp)
            return
        if all(dropped):
            return
        rows = [r for r, gone in zip(parquet.read().to_pylist(), dropped) if not gone]
    relabel(rows, labels)
    tables.write_file(pa.Table.from_pylist(rows, schema=schema.IMAGE_FILE), fs, target, settings["row_group_size_mb"])
