"""Ingest: a beamtime archive into the `images` table, incrementally (the `ingest` job).

1. The driver lists the archive (paths, sizes, mtimes; ``io.archive``) and compares the listing
   with the manifest (``io.manifest``): only new or changed files are read; vanished ones are
   marked deleted.
2. One Spark job over ``spark.defaultParallelism * ingest.tasks_per_core`` tasks (fewer for a
   small night: at least ``tasks_per_core`` files a task), each taking a slice of the files in path
   order from a broadcast, the slices with the most bytes first (``read_tasks``): the Python
   workers read, checksum and preprocess the files (``io.rows``) and write the image rows to
   Parquet themselves (``io.staging``, pyarrow) into a staging table laid out as Spark lays out
   partitioned tables. The images never cross into the JVM; the file and
   quarantine rows come back to the driver through an accumulator. Every input file ends up as
   image rows, or in the quarantine table with its reason.
3. Publishing (``io.partitions``), after a journal of the new files: a (beamtime, run_id)
   partition that loses rows (a file with images in it read again, or expert labels to apply) is
   rewritten whole and swapped in (the same tasks rewrite its existing files, without the re-read
   files' rows, with the labels); a new run's directory is renamed in; a run that only gains files
   keeps its files, and the new files are renamed in beside them. Then the quarantine table (only
   when its content changes), then the manifest (the commit record), then the journal goes.

A run killed anywhere is done again exactly once: a rerun first deletes the journalled files whose
input files the manifest does not hold, and reads those input files again (they are not in it).
The fixed cost of a night is small next to reading: the listing, reading the manifest (and the
quarantine table, when there is one), that one job, and writing the manifest.

Expert labels (``--labels`` / ``ingest.labels``) are joined into new rows and into the existing
rows of the runs they name.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone

import pandas as pd
from pyspark.sql import functions as F

from xray_spark import schema
from xray_spark.io import manifest as mf
from xray_spark.io import partitions as parts
from xray_spark.io import staging as staged
from xray_spark.io import tables
from xray_spark.io.archive import ArchiveFile, discover
from xray_spark.io.expert_labels import LabelsError, read_labels
from xray_spark.io.rows import FileFacts
from xray_spark.logs import summary
from xray_spark.spark import stage

log = logging.getLogger(__name__)

FACT_COLUMNS = ["kind", "path", "beamtime", "run_id", "frame", "size", "mtime", "checksum", "status", "frames",
                "quarantined_frames", "reason", "error"]


@dataclass
class IngestResult:
    """What one ingest run did; ``paths`` are the files it read (their images are the new ones)."""

    files: int = 0
    read: int = 0
    unchanged: int = 0
    deleted: int = 0
    written: int = 0
    quarantined_files: int = 0
    quarantined_frames: int = 0
    labels_unmatched: int = 0
    partitions: tuple = ()
    paths: tuple = ()
    image_files: tuple = ()      # the images table files holding the new images (relative to the table)
    seconds: float = 0.0


def settings_of(config, archive: str, labels: dict) -> dict:
    """The plain dict the executors need (shipped with the task closure)."""
    ic = config.ingest
    return {"archive": archive, "hdf5_datasets": list(ic.hdf5_datasets), "labels": labels,
            "defaults": {"detector": ic.detector or None, "distance_m": ic.distance_m,
                         "wavelength_m": ic.wavelength_m, "pixel1_m": ic.pixel_size_m, "pixel2_m": ic.pixel_size_m},
            "beam_center_margin": ic.beam_center_margin, "max_bad_fraction": ic.max_bad_fraction,
            "min_side": ic.min_side, "image_size": config.tables.image_size,
            "full_scale_counts": config.preprocess.full_scale_counts,
            "mask_threshold": config.preprocess.mask_threshold, "letterbox": config.preprocess.letterbox,
            "batch_rows": config.spark.arrow_batch_rows,
            "row_group_size_mb": config.tables.row_group_size_mb, "file_size_mb": ic.file_size_mb,
            "file_timeout_s": ic.file_timeout_s, "max_decompressed_mb": ic.max_decompressed_mb,
            "isolate_reads": ic.isolate_reads}


def read_tasks(work: list[dict], cores: int, per_core: int) -> list[list[dict]]:
    """The units of ``work`` (in path order) split into the ingest job's tasks, as slices in path order.

    ``per_core`` tasks per core balance a large night; a small night gets fewer tasks, each with at
    least ``per_core`` units, as every task has a fixed cost (worker, Parquet writer). The slices
    with the most bytes come first (Spark starts tasks in index order), so the small ones fill the
    cores at the end.
    """
    slices = max(1, min(cores * per_core, math.ceil(len(work) / per_core)))
    bounds = [len(work) * i // slices for i in range(slices + 1)]
    return sorted((work[a:b] for a, b in zip(bounds, bounds[1:])),
                  key=lambda units: -sum(u.get("size", 0) for u in units))


def _label_partitions(spark, url: str, labels: dict) -> set[tuple[str, str]]:
    """Runs that hold a labelled image: from the path's beamtime/run, or by looking the id up."""
    runs = {tuple(k.split("/")[:2]) for k in labels if k.count("/") >= 2}
    ids = [k for k in labels if "/" not in k]
    if ids and tables.table_exists(url):
        found = (spark.read.schema(schema.spark_schema()).parquet(url).filter(F.col("image_id").isin(ids))
                 .select("beamtime", "run_id").distinct().collect())
        runs |= {(r["beamtime"], r["run_id"]) for r in found}
    return runs


def ingest(spark, config, archive: str | None = None, labels_path: str | None = None,
           only: list[str] | None = None) -> IngestResult:
    """Ingest what is new or changed in ``archive`` (default ``ingest.archive``); see module docstring."""
    started = time.monotonic()
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    root = archive or config.ingest.archive
    labels_path = labels_path or config.ingest.labels
    labels = read_labels(labels_path) if labels_path else {}
    files, sidecars = discover(root, config.ingest.ignore, config.ingest.sidecar, only, config.ingest.settle_s)
    unsettled = {f.path for f in files if f.refused == "unsettled"}         # still being written: next run
    listing = pd.DataFrame([asdict(f) for f in files if f.path not in unsettled],
                           columns=[f.name for f in fields(ArchiveFile)])
    urls = {name: config.paths.url(name) for name in ("images", "manifest", "quarantine")}
    manifest = mf.read(urls["manifest"], schema.MANIFEST)
    quarantine = mf.read(urls["quarantine"], schema.QUARANTINE)
    parts.undo_uncommitted(urls["images"], set(zip(manifest["path"], manifest["size"], manifest["mtime"])))
    todo, unchanged, deleted = mf.plan(listing, manifest)
    deleted = deleted[~deleted["path"].isin(unsettled)]
    if only is not None:                        # a run over some paths cannot tell what vanished elsewhere
        deleted = deleted.iloc[:0]
    if unsettled:
        log.info("%d file(s) still being written (ingest.settle_s): left for the next run", len(unsettled))
    refused = todo[todo["refused"] != ""]
    to_read = todo[todo["refused"] == ""]
    result = IngestResult(files=len(listing), read=len(to_read), unchanged=unchanged, deleted=len(deleted))
    log.info("archive %s: %d files, %d to read, %d refused, %d unchanged, %d deleted",
             root, len(listing), len(to_read), len(refused), unchanged, len(deleted))
    if todo.empty and deleted.empty and not labels:
        result.seconds = time.monotonic() - started
        _log_summary(result)
        return result

    images_url = urls["images"]
    staging = f"{images_url.rstrip('/')}.staging"
    settings = {**settings_of(config, str(root), labels), "table": images_url, "staging": staging}
    parts.remove_dir(staging)                                          # an interrupted run's leftovers
    label_runs = _label_partitions(spark, images_url, labels) if labels else set()
    touched = set(zip(todo["beamtime"], todo["run_id"])) - {("", "")} | label_runs
    # a run loses rows when a file with images in it is read again (or labels change them): it is
    # rewritten whole; a run that only gains rows keeps its files and gets the new ones beside them
    in_table = manifest["path"][pd.to_numeric(manifest["frames"]).fillna(0) > 0]
    reread = todo[todo["path"].isin(in_table)]
    replace = set(zip(reread["beamtime"], reread["run_id"])) | label_runs
    dirs = {p: parts.partition_path(p) for p in touched}
    units = [{"path": r.path, "abspath": r.abspath, "beamtime": r.beamtime, "run_id": r.run_id, "size": int(r.size),
              "mtime": float(r.mtime), "parts": list(r.parts), "partition": dirs[(r.beamtime, r.run_id)],
              "sidecar": json.dumps(sidecars.get((r.beamtime, r.run_id), {}))} for r in to_read.itertuples()]
    keep = [{"old_file": f"{dirs[p]}/{name}",
             "drop": [path for path, b, r in zip(todo["path"], todo["beamtime"], todo["run_id"]) if (b, r) == p]}
            for p in sorted(replace) for name in parts.data_files(images_url, dirs[p])]
    task_units = read_tasks(units + keep, spark.sparkContext.defaultParallelism, config.ingest.tasks_per_core)
    slices = len(task_units)
    tasks = spark.sparkContext.broadcast(task_units)
    read_facts = spark.sparkContext.accumulator({}, FileFacts())
    write = functools.partial(staged.write_task, tasks=tasks, settings=settings, facts=read_facts)
    try:
        with stage(spark, "ingest: read, preprocess and write images", config.progress.interval_s):
            spark.sparkContext.parallelize(range(slices), slices).foreach(write)
    finally:
        tasks.destroy()
    entries = staged.journal_entries(task_units)
    parts.write_journal(images_url, entries)
    grown = {p for p in touched - replace if parts.data_files(images_url, dirs[p])}
    parts.swap_in(images_url, staging, touched - grown)
    added = parts.add_files(images_url, staging, [dirs[p] for p in sorted(grown)])
    log.info("images: %d run(s) rewritten or new, %d file(s) added to %d existing run(s)",
             len(touched - grown), added, len(grown))
    if labels:
        result.labels_unmatched = _unmatched(spark, urls["images"], touched, labels)
    facts = pd.DataFrame([row for rows in read_facts.value.values() for row in rows], columns=FACT_COLUMNS)
    file_rows = facts[facts["kind"] == "file"]
    quarantine_rows = facts[facts["kind"] == "quarantine"]
    refused_rows = refused.assign(frame=None, checksum=None, reason=refused["refused"])
    file_rows = (pd.concat([file_rows, refused_rows.assign(status="quarantined", frames=0, quarantined_frames=0)],
                           ignore_index=True).drop(columns="setup", errors="ignore")
                 .merge(todo[["path", "setup"]], on="path", how="left"))
    quarantine_rows = pd.concat([quarantine_rows, refused_rows], ignore_index=True)

    replaced = pd.concat([todo["path"], deleted["path"]])
    if len(quarantine_rows) or quarantine["path"].isin(replaced).any():
        mf.write(mf.updated_quarantine(quarantine, quarantine_rows, replaced, now),
                 urls["quarantine"], schema.QUARANTINE, ["path", "frame"])
    mf.write(mf.updated_manifest(manifest, file_rows, deleted, now), urls["manifest"], schema.MANIFEST, ["path"])
    parts.drop_journal(images_url)                                     # committed
    parts.remove_dir(staging)
    result.written = int(file_rows["frames"].sum())
    result.quarantined_files = int((file_rows["status"] == "quarantined").sum())
    result.quarantined_frames = int((quarantine_rows["frame"].notna()).sum())
    result.partitions = tuple(sorted(touched))
    result.paths = tuple(sorted(to_read["path"]))
    result.image_files = tuple(f"{e['partition']}/{name}" for e in entries
                               for name in parts.data_files(images_url, e["partition"]) if name.startswith(e["stem"] + "-"))
    result.seconds = time.monotonic() - started
    _log_summary(result)
    return result


def _unmatched(spark, url: str, touched, labels: dict) -> int:
    """Number of label keys that match no image (reported, never silently dropped)."""
    rows = parts.read_partitions(spark, url, touched).select(
        "image_id", "frame", F.get_json_object("provenance", "$.path").alias("path")).collect()
    keys = set()
    for r in rows:
        keys |= {r["image_id"], f"{r['path']}#{r['frame']}", r["path"]}
    missing = sorted(k for k in labels if k not in keys)
    if missing:
        log.warning("%d expert label(s) match no image, e.g. %s", len(missing), ", ".join(missing[:5]))
    return len(missing)


def _log_summary(r: IngestResult) -> str:
    return summary("ingest", r.seconds, unit="frames", files=r.files, read=r.read, skipped=r.unchanged,
                   deleted=r.deleted, written=r.written, quarantined_files=r.quarantined_files,
                   quarantined_frames=r.quarantined_frames, labels_unmatched=r.labels_unmatched)


def check_inputs(config, archive: str | None, labels_path: str | None = None) -> str | None:
    """The problem with the archive root or labels file, found before Spark starts; None if usable."""
    root = archive or config.ingest.archive
    if not os.path.isdir(root):
        return f"archive root {root!r} is not a directory (set ingest.archive or --archive)"
    try:
        if labels_path or config.ingest.labels:
            read_labels(labels_path or config.ingest.labels)
    except LabelsError as e:
        return str(e)
    return None
