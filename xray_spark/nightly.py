"""`xray-spark nightly`: ingest what is new, label it with the configured models, report the night.

1. ``ingest`` the archive (only new or changed files are read).
2. Every image that has no prediction yet from a configured model (for its current file checksum)
   is scored through the ``predict`` interface (``predict.score_batches`` on executors, the model
   loaded once per worker) and appended to the nightly predictions table
   ``<paths.predictions>/nightly``, partitioned by night.
3. An HTML summary with PNG figures is written to ``<paths.reports>/nightly/<night>/``.

Exactly-once: what is still to score is computed from the tables, not remembered, so a run killed
anywhere and started again scores each image once; the night's partition is rewritten as its
kept rows plus the new ones (``io.partitions``). Re-running a finished night changes nothing and
writes the same report.
"""
from __future__ import annotations

import argparse
import functools
import logging
import time
from datetime import datetime, timezone

import pyarrow as pa
from pyspark.sql import functions as F

from xray_spark import modeldir, predict, schema
from xray_spark.ingest import check_inputs, ingest
from xray_spark.io import partitions as parts
from xray_spark.io.archive import ArchiveError
from xray_spark.io.labels import LabelsError
from xray_spark.logs import summary
from xray_spark.spark import build_session, stage

log = logging.getLogger(__name__)

NIGHTLY = pa.schema([*schema.PREDICTIONS, pa.field("beamtime", pa.string()), pa.field("checksum", pa.string()),
                     pa.field("night", pa.string())])
KEYS = ("night",)


def nightly_url(config) -> str:
    return f"{config.paths.url('predictions').rstrip('/')}/nightly"


def report_dir(config, night: str) -> str:
    return f"{config.paths.url('reports').rstrip('/')}/nightly/{night}"


def _checksum(column="provenance"):
    return F.get_json_object(column, "$.checksum")


def unscored(spark, config, model_id: str):
    """(image_id, beamtime, run_id, checksum) of archive images without a nightly prediction of
    ``model_id`` for their current checksum. Reads two small columns, never the images."""
    images = (spark.read.schema(schema.spark_schema()).parquet(config.paths.url("images"))
              .filter(F.col("source") == "archive")
              .select("image_id", "beamtime", "run_id", _checksum().alias("checksum")))
    if schema.table_exists(nightly_url(config)):
        done = (spark.read.schema(schema.spark_schema(NIGHTLY)).parquet(nightly_url(config))
                .filter(F.col("model_id") == model_id).select("image_id", "checksum"))
        images = images.join(done, ["image_id", "checksum"], "left_anti")
    return images


def score_night(spark, config, model: str, night: str) -> int:
    """Score what ``model`` has not scored yet into the night's partition; returns rows added."""
    directory = predict.model_path(config, model)
    manifest = modeldir.read_manifest(directory)
    todo = unscored(spark, config, manifest["model_id"]).cache()
    try:
        runs = [(r["beamtime"], r["run_id"]) for r in todo.select("beamtime", "run_id").distinct().collect()]
        if not runs:
            return 0
        images = parts.read_partitions(spark, config.paths.url("images"), runs).alias("i")
        wanted = todo.select("image_id", "checksum").alias("t")
        rows = images.join(wanted, (F.col("i.image_id") == F.col("t.image_id"))
                           & (_checksum("i.provenance") == F.col("t.checksum")), "left_semi")
        scored = rows.select(*predict.INPUT_COLUMNS).mapInArrow(
            functools.partial(predict.score_batches, directory=str(directory), model_id=manifest["model_id"]),
            schema.spark_schema(schema.PREDICTIONS))
        new = (scored.join(todo.select("image_id", "beamtime", "checksum"), "image_id")
               .withColumn("night", F.lit(night)).select(*NIGHTLY.names))
        url = nightly_url(config)
        kept = parts.read_partitions(spark, url, [(night,)], NIGHTLY, KEYS).join(
            todo.select("image_id").withColumn("model_id", F.lit(manifest["model_id"])),
            ["image_id", "model_id"], "left_anti").select(*NIGHTLY.names)
        added = todo.count()
        with stage(spark, f"nightly: label {added} images with {manifest['model_id']}", config):
            parts.rewrite_partitions(spark, url, kept.unionByName(new), [(night,)],
                                     config.tables.row_group_size_mb, keys=KEYS, order_by="image_id")
        return added
    finally:
        todo.unpersist()


def nightly(spark, config, night: str | None = None, archive: str | None = None) -> dict:
    """Ingest, label and report one night; returns counts and the report's path."""
    from xray_spark.report.nightly import write_report

    started = time.monotonic()
    night = night or datetime.now(timezone.utc).date().isoformat()
    result = ingest(spark, config, archive)
    labelled = {}
    for model in config.nightly.models:
        labelled[model] = score_night(spark, config, model, night)
    with stage(spark, f"nightly: report {night}", config):
        index = write_report(spark, config, night)
    seconds = time.monotonic() - started
    summary("nightly", seconds, unit="images", files=result.files, read=result.read, skipped=result.unchanged,
            written=result.written, quarantined_files=result.quarantined_files,
            quarantined_frames=result.quarantined_frames, labelled=sum(labelled.values()))
    return {"ingest": result, "labelled": labelled, "report": index, "seconds": seconds}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--night", metavar="YYYY-MM-DD", help="the night to label and report (default: today, UTC)")
    parser.add_argument("--archive", metavar="DIR", help="archive root (default: ingest.archive)")


def run(config, args) -> int:
    if args.night:
        try:
            datetime.strptime(args.night, "%Y-%m-%d")
        except ValueError:
            log.error("--night %r: expected a date YYYY-MM-DD", args.night)
            return 2
    problem = check_inputs(config, args.archive)
    if problem:
        log.error("%s", problem)
        return 2
    for model in config.nightly.models:
        try:
            modeldir.read_manifest(predict.model_path(config, model))  # fail before Spark starts
        except modeldir.ModelDirError as e:
            log.error("nightly.models: %s", e)
            return 2
    spark = build_session(config, "nightly")
    try:
        out = nightly(spark, config, args.night, args.archive)
    except (ArchiveError, LabelsError) as e:
        log.error("%s", e)
        return 2
    finally:
        spark.stop()
    print(f"nightly summary: {out['report']}")
    return 0
