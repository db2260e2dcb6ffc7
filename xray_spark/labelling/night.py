"""A night of labelling: ingest what is new, score every image not yet scored, write the summary.

1. ``ingest`` the archive (only new or changed files are read).
2. Every image that has no prediction yet from a configured model (for its current file checksum)
   is scored with ``scoring.score_batches`` on executors (the model loaded once per worker) and
   appended to the nightly predictions table (``paths.nightly_predictions()``), partitioned by night.
3. The same images are embedded with the ``explore.model`` CNN into the `embeddings` table
   (``explore.embeddings.embed_new_images``), for similar-image search and clusters.
4. An HTML summary with PNG figures is written to ``paths.nightly_report(night)``.

Exactly-once: what is still to score is computed from the tables, not remembered, so a run killed
anywhere and started again scores each image once; the night's partition is rewritten as its
kept rows plus the new ones (``io.partitions``). Re-running a finished night changes nothing and
writes the same report.
"""
from __future__ import annotations

import functools
import logging
import time
from datetime import datetime, timezone

from pyspark.sql import functions as F

from xray_spark import modeldir, schema
from xray_spark.explore.embeddings import check_model, embed_new_images
from xray_spark.explore.vector_index import build_index
from xray_spark.io import partitions as parts
from xray_spark.io import tables
from xray_spark.io.ingestion import ingest
from xray_spark.labelling import scoring
from xray_spark.logs import summary
from xray_spark.report.night_summary import write_report
from xray_spark.spark import stage

log = logging.getLogger(__name__)


def _checksum(column="provenance"):
    return F.get_json_object(column, "$.checksum")


def unscored(spark, config, model_id: str):
    """(image_id, beamtime, run_id, checksum) of archive images without a nightly prediction of
    ``model_id`` for their current checksum. Reads two small columns, never the images."""
    images = (spark.read.schema(schema.spark_schema()).parquet(config.paths.url("images"))
              .filter(F.col("source") == "archive")
              .select("image_id", "beamtime", "run_id", _checksum().alias("checksum")))
    if tables.table_exists(config.paths.nightly_predictions()):
        done = (spark.read.schema(schema.spark_schema(schema.NIGHTLY)).parquet(config.paths.nightly_predictions())
                .filter(F.col("model_id") == model_id).select("image_id", "checksum"))
        images = images.join(done, ["image_id", "checksum"], "left_anti")
    return images


def score_night(spark, config, model: str, night: str) -> int:
    """Score what ``model`` has not scored yet into the night's partition; returns rows added."""
    directory = config.paths.model_dir(model)
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
        scored = rows.select(*scoring.INPUT_COLUMNS).mapInArrow(
            functools.partial(scoring.score_batches, directory=str(directory), model_id=manifest["model_id"]),
            schema.spark_schema(schema.PREDICTIONS))
        new = (scored.join(todo.select("image_id", "beamtime", "checksum"), "image_id")
               .withColumn("night", F.lit(night)).select(*schema.NIGHTLY.names))
        url = config.paths.nightly_predictions()
        kept = parts.read_partitions(spark, url, [(night,)], schema.NIGHTLY, schema.NIGHTLY_KEYS).join(
            todo.select("image_id").withColumn("model_id", F.lit(manifest["model_id"])),
            ["image_id", "model_id"], "left_anti").select(*schema.NIGHTLY.names)
        added = todo.count()
        with stage(spark, f"nightly: label {added} images with {manifest['model_id']}", config.progress.interval_s):
            parts.rewrite_partitions(spark, url, kept.unionByName(new), [(night,)],
                                     config.tables.row_group_size_mb, keys=schema.NIGHTLY_KEYS, order_by="image_id")
        return added
    finally:
        todo.unpersist()


def nightly(spark, config, night: str | None = None, archive: str | None = None) -> dict:
    """Ingest, label and report one night; returns counts and the report's path."""
    started = time.monotonic()
    night = night or datetime.now(timezone.utc).date().isoformat()
    result = ingest(spark, config, archive)
    labelled = {}
    for model in config.nightly.models:
        labelled[model] = score_night(spark, config, model, night)
    embedded = embed_new_images(spark, config, result.paths) if config.nightly.models else 0
    if embedded and config.explore.index != "none":      # similar-image search stays interactive
        model_id = check_model(config.paths.model_dir(config.explore.model))["model_id"]
        build_index(spark, config.paths.url("embeddings"), model_id, config.explore.index)
    with stage(spark, f"nightly: report {night}", config.progress.interval_s):
        index = write_report(spark, config, night)
    seconds = time.monotonic() - started
    summary("nightly", seconds, unit="images", files=result.files, read=result.read, skipped=result.unchanged,
            written=result.written, quarantined_files=result.quarantined_files,
            quarantined_frames=result.quarantined_frames, labelled=sum(labelled.values()), embedded=embedded)
    return {"ingest": result, "labelled": labelled, "embedded": embedded, "report": index, "seconds": seconds}

