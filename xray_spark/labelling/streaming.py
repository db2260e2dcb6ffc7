"""Labelling frames while the beamtime runs: Structured Streaming over the landing directory, exactly once.

The source is the landing directory's notices (``io.landing``): the driver lists the directory
with ingest's listing and settle rule, and Spark's ``json`` file source streams one small notice
per settled detector file; Spark's checkpoint (offsets, commits) fixes which files make each
micro-batch. Each micro-batch (``foreachBatch``) runs the nightly job's own code on its files:

1. ``io.ingestion.ingest(only=<the batch's files>)``: the executors read the files with ingest's
   readers (``io.rows.file_rows``: geometry, masks, preprocessing, quarantine, the isolated reader
   process), write the images table's files, and the driver publishes them with the quarantine and
   the manifest, the commit record nightly reads. ``stream.tasks_per_core`` sizes the read tasks
   to the cores (one task per core: a batch is small, each task has a fixed cost).
2. The batch's new images (the files ingest reports) are scored on the executors by
   ``scoring.score_batches`` with every ``stream.models`` model (loaded once per Python worker,
   then reused batch after batch); ``live_page.frame_facts`` adds each frame's alert numbers and
   thumbnail there. Only the predictions and these facts come back to the driver. The same tasks
   embed the frames (``explore.embeddings.embed_rows``, the ``explore.model`` CNN and pyFAI
   profiles) and write the vectors beside the checkpoint, ``<checkpoint>/embedding/<batch id>/``:
   the images are read once, while they are at hand.
3. The predictions become one file of the nightly predictions table,
   ``<nightly>/night=<night>/part-stream-<batch id>.zstd.parquet``, where ``night.unscored`` looks:
   the nightly job that follows a day of streaming finds every frame the stream labelled already
   done (and ingest finds its files in the manifest). The night is the UTC date on which the
   batch's files were listed, so a replay writes the same file.
4. The batch's record, ``<checkpoint>/labelled/<batch id>.json`` (frames with their file time and
   the time they were labelled, lag, rate), then the live page (``live_page.publish``).
5. Every ``stream.embed_interval_s`` (and when the stream stops), the vectors of the committed
   batches go into the `embeddings` table (``stream_vectors.merge_vectors``: each touched run's partition
   rewritten in run order, ``explore.embeddings.add_embeddings``, as ``nightly`` does) by a driver
   thread of its own (``Embedder``), in the FAIR scheduler pool ``embed`` whose tasks yield the
   executors to the batches' (``conf/stream-pools.xml``): a batch does not wait for it. Not every
   batch, as it rewrites the touched runs' partitions. A batch's vectors are merged only once its
   record exists and deleted after the merge, which replaces an image's earlier vector, so a
   replayed batch or a restart adds nothing twice and loses nothing.

Exactly once: a micro-batch that dies anywhere (driver killed, executor lost) is run again by
Spark with the same batch id and the same files. Step 1 is exactly-once by ingest's own journal
and manifest (what it committed is not read again; what it published without committing is
removed); step 2 scores the batch's images whether ingest read them now or in the dead attempt
(then they are found by path in their runs), but not the frames of a file noticed again (an Eiger
acquisition that gained a data file is read again whole) that an earlier batch or night scored
already (``_scored_before``); step 3 replaces the file of the same name; the page
skips frames it shows already. A killed executor's tasks are retried by Spark: task outputs are
named after their input files, so a retry replaces what it wrote.

Latency: a file waits for the next listing (``stream.list_interval_s``), then for the next
trigger (``stream.trigger_s``, or the end of the running batch), then for its batch to run;
``stream.max_files_per_batch`` bounds a batch after a backlog.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
from pyspark.errors import StreamingQueryException
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQueryListener

from xray_spark import modeldir, schema
from xray_spark.explore import embeddings as emb
from xray_spark.io import partitions as parts
from xray_spark.io import tables
from xray_spark.io.ingestion import ingest
from xray_spark.io.landing import NOTICE_SCHEMA, Landing, Watcher, known_units
from xray_spark.labelling import scoring
from xray_spark.labelling.stream_vectors import Embedder, Embedding, merge_vectors, write_vectors
from xray_spark.logs import summary
from xray_spark.spark import stage

log = logging.getLogger(__name__)

QUERY_NAME = "landing"
# A batch's predictions: one file of the nightly predictions table (the night is in its directory).
NIGHTLY_FILE = pa.schema([f for f in schema.NIGHTLY if f.name not in schema.NIGHTLY_KEYS])
# What labelling brings to the driver, per image and model: the prediction and the frame's small facts.
LABELS = pa.schema([*NIGHTLY_FILE, pa.field("frame", pa.int64()), pa.field("path", pa.string()),
                    pa.field("mtime", pa.float64()), pa.field("facts", pa.string()),
                    pa.field("thumbnail_png", pa.binary())])
IMAGE_COLUMNS = list(dict.fromkeys([*scoring.INPUT_COLUMNS, *emb.INPUT_COLUMNS]))


class StreamError(RuntimeError):
    """The streaming query failed (the message says why; the checkpoint lets a restart resume)."""


@dataclass
class Stream:
    """Where one stream reads and writes, and what labels it (resolved from the configuration)."""

    landing: str
    checkpoint: str                      # URL of the stream's directory
    models: list[tuple[str, str]]        # (model directory, model_id), the first shown on the live page
    page_dir: str | None                 # None: no live page
    embedding: Embedding | None          # None: the stream embeds nothing (nightly does)
    batches: dict = field(default_factory=dict)   # batch id -> record, for the listener's log line

    @classmethod
    def of(cls, config, landing: str | None = None, checkpoint: str | None = None) -> Stream:
        sc = config.stream
        directories = [config.paths.model_dir(m) for m in (sc.models if sc.models is not None else config.nightly.models)]
        models = [(str(d), modeldir.read_manifest(d)["model_id"]) for d in directories]
        checkpoint = checkpoint or sc.checkpoint or config.paths.checkpoint("stream")
        if "://" not in checkpoint:
            checkpoint = Path(checkpoint).resolve().as_uri()
        checkpoint = checkpoint.rstrip("/")
        page = sc.page_dir or str(config.paths.local("reports", "live"))
        return cls(landing or sc.landing or config.ingest.archive, checkpoint, models,
                   page if sc.live_page else None, Embedding.of(config, checkpoint))

    def under(self, name: str) -> str:
        return f"{self.checkpoint}/{name}"


def label_frames(batches, models: list[tuple[str, str]], facts: bool, embedding: Embedding | None = None,
                 batch_id: int = 0):
    """mapInArrow function: images of a batch -> ``LABELS`` rows (each model's prediction, the frame's
    facts); with ``embedding``, the frames' `embeddings` rows into one file of the batch's vectors."""
    from xray_spark.report import live_page

    vectors = []
    for batch in batches:
        rows = batch.to_pydict()
        n = batch.num_rows
        provenance = [json.loads(p) for p in rows["provenance"]]
        small, thumbnails = [None] * n, [None] * n
        for i in range(n if facts else 0):
            h, w = rows["height"][i], rows["width"][i]
            found = live_page.frame_facts(schema.decode_images([rows["image"][i]], h, w)[0],
                                          schema.decode_masks([rows["mask"][i]], h, w)[0])
            thumbnails[i] = found.pop("thumbnail_png", None)
            small[i] = json.dumps(found)
        embedded = embedding.embed(rows) if embedding is not None else None
        for directory, model_id in models:
            if embedded is not None and model_id == embedding.model_id:    # scored by the embedding's pass
                scores = embedded.column("scores").to_pylist()
                scored_batches = [scoring.predictions_of(rows, embedding.network(), scores)]
            else:
                scored_batches = scoring.score_batches([batch], directory, model_id)
            for scored in scored_batches:
                yield pa.RecordBatch.from_pydict({
                    **scored.to_pydict(), "beamtime": rows["beamtime"],
                    "checksum": [p["checksum"] for p in provenance], "frame": rows["frame"],
                    "path": [p["path"] for p in provenance], "mtime": [p["mtime"] for p in provenance],
                    "facts": small, "thumbnail_png": thumbnails}, schema=LABELS)
        if embedded is not None:
            vectors.append(embedded)
    if vectors:
        write_vectors(embedding.of_batch(batch_id), vectors)


def _batch_images(spark, config, result, notices: list):
    """The images table rows of the batch's files: in the files ingest just published, or, when
    ingest found some of them done already (a replayed batch), looked up by path in their runs."""
    url = config.paths.url("images")
    if not result.unchanged:
        if not result.image_files:
            return None
        return (spark.read.schema(schema.spark_schema()).option("basePath", url)
                .parquet(*(f"{url}/{name}" for name in result.image_files)))
    runs = {tuple(n["path"].split("/")[:2]) for n in notices if n["path"].count("/") >= 2}
    return parts.read_partitions(spark, url, runs).filter(
        F.get_json_object("provenance", "$.path").isin([n["path"] for n in notices]))


def _scored_before(spark, config, model_id: str, batch_id: int):
    """image_id of the frames ``model_id`` scored in the nightly predictions table, but in this batch's own file."""
    url = config.paths.nightly_predictions()
    if not tables.table_exists(url):
        return None
    return (spark.read.schema(schema.spark_schema(schema.NIGHTLY)).parquet(url)
            .filter((F.col("model_id") == model_id)
                    & ~F.input_file_name().endswith(_predictions_file(batch_id))).select("image_id"))


def _predictions_file(batch_id: int) -> str:
    return f"part-stream-{batch_id:010d}.zstd.parquet"


def _write_predictions(url: str, labels, night: str, batch_id: int) -> None:
    """The batch's predictions as one file of the nightly predictions table (a replay replaces it)."""
    import pyarrow.parquet as pq

    fs, root = tables.filesystem(url)
    path = f"{root}/{parts.partition_path((night,), schema.NIGHTLY_KEYS)}/{_predictions_file(batch_id)}"
    table = pa.Table.from_pandas(labels[NIGHTLY_FILE.names], schema=NIGHTLY_FILE, preserve_index=False)
    with tables.replacing(fs, path) as tmp:
        pq.write_table(table, tmp, filesystem=fs, compression="zstd")


def _write_json(url: str, value: dict) -> None:
    fs, path = tables.filesystem(url)
    with tables.replacing(fs, path) as tmp, fs.open_output_stream(tmp) as out:
        out.write(json.dumps(value, sort_keys=True).encode())


def label_batch(spark, config, stream: Stream, notices: list, batch_id: int) -> dict:
    """Ingest, label and commit one micro-batch (see module docstring); returns its record."""
    started = time.time()
    files = sorted({f for n in notices for f in n["files"]})
    reading = dataclasses.replace(config, ingest=dataclasses.replace(config.ingest,
                                                                      tasks_per_core=config.stream.tasks_per_core))
    result = ingest(spark, reading, stream.landing, only=files)
    images = _batch_images(spark, config, result, notices)
    done = _scored_before(spark, config, stream.models[0][1], batch_id) if any(n["again"] for n in notices) else None
    if images is not None and done is not None:      # a file read again: its frames labelled already stay as they are
        images = images.join(done, "image_id", "left_anti")
    night = datetime.fromtimestamp(max(n["listed_at"] for n in notices), timezone.utc).date().isoformat()
    labels = None
    if stream.embedding is not None:
        parts.remove_dir(stream.embedding.of_batch(batch_id))      # a dead attempt's vectors
    if images is not None:
        with stage(spark, f"stream batch {batch_id}: label {len(notices)} file(s)", config.progress.interval_s):
            labels = images.select(*IMAGE_COLUMNS).mapInArrow(
                functools.partial(label_frames, models=stream.models, facts=stream.page_dir is not None,
                                  embedding=stream.embedding, batch_id=batch_id),
                schema.spark_schema(LABELS)).toPandas()
    if labels is not None and len(labels):
        _write_predictions(config.paths.nightly_predictions(), labels, night, batch_id)
    ended = time.time()
    shown = labels[labels["model_id"] == stream.models[0][1]] if labels is not None else []
    lags = [ended - m for m in shown["mtime"]] if len(shown) else []
    record = {"batch_id": batch_id, "night": night, "started": started, "ended": ended, "files": len(notices),
              "frames": len(shown), "quarantined_files": result.quarantined_files,
              "quarantined_frames": result.quarantined_frames,
              "lag_s": statistics.median(lags) if lags else None, "lag_max_s": max(lags) if lags else None,
              "rate_fps": len(shown) / (ended - started),
              "labelled": [{"image_id": r.image_id, "path": r.path, "frame": int(r.frame), "mtime": r.mtime,
                            "tag_names": list(r.tag_names if r.tag_names is not None else [])}
                           for r in (shown.itertuples() if len(shown) else [])]}
    _write_json(stream.under(f"labelled/{batch_id:010d}.json"), record)
    if stream.page_dir is not None and len(shown):
        _publish(stream.page_dir, record, shown, config.live)
    stream.batches[batch_id] = record
    return record


def _open_pages(stream: Stream, live) -> None:
    """A waiting live page for each beamtime directory of the landing directory without one."""
    from xray_spark.report import live_page

    for entry in sorted(os.scandir(stream.landing), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
            live_page.open_page(stream.page_dir, entry.name, live)


def _publish(page_dir: str, record: dict, shown, live) -> None:
    """The batch's frames on the live page of each beamtime they belong to."""
    from xray_spark.report import live_page

    batch = {k: record[k] for k in ("batch_id", "frames", "lag_s", "rate_fps", "started", "ended")}
    for beamtime, frames in shown.groupby("beamtime"):
        live_page.publish(page_dir, beamtime, batch, [
            {"image_id": r.image_id, "run_id": r.run_id, "frame": int(r.frame), "path": r.path, "mtime": r.mtime,
             "labelled_at": record["ended"], "tag_names": list(r.tag_names if r.tag_names is not None else []),
             "scores": list(r.scores if r.scores is not None else []), "scored_tags": list(r.scored_tags),
             "facts": {**json.loads(r.facts), "thumbnail_png": r.thumbnail_png}}
            for r in frames.itertuples()], live=live)


class BatchLog(StreamingQueryListener):
    """One log line per micro-batch: its frames, lag and rate beside Spark's own progress metrics
    (input files/s, batch duration, and the ``landing`` observed metrics: files, the oldest file's mtime)."""

    def __init__(self, stream: Stream):
        self.stream = stream

    def onQueryStarted(self, event):
        log.info("stream %s started (id %s)", event.name, event.id)

    def onQueryProgress(self, event):
        p = event.progress
        if p.name != QUERY_NAME or not p.numInputRows:
            return
        record = self.stream.batches.get(p.batchId, {})
        landing = p.observedMetrics.get("landing")
        started = datetime.fromisoformat(p.timestamp).timestamp()
        oldest = (f", oldest file {started - landing['oldest_mtime']:.1f} s old at the start"
                  if landing and landing["oldest_mtime"] else "")
        lag = (f"lag median {record['lag_s']:.2f} s max {record['lag_max_s']:.2f} s, "
               if record.get("lag_s") is not None else "")
        log.info("stream batch %d: %d file(s), %d frame(s) labelled, %d quarantined file(s); %s%.1f frames/s; "
                 "Spark: %d ms, %.1f files/s in, %.1f files/s processed%s", p.batchId, p.numInputRows,
                 record.get("frames", 0), record.get("quarantined_files", 0), lag, record.get("rate_fps", 0.0),
                 p.batchDuration, p.inputRowsPerSecond, p.processedRowsPerSecond, oldest)

    def onQueryIdle(self, event):
        pass

    def onQueryTerminated(self, event):
        log.info("stream %s stopped%s", event.id, f": {event.exception}" if event.exception else "")


def run_stream(spark, config, landing: str | None = None, checkpoint: str | None = None, *,
               available_now: bool = False, max_batches: int | None = None, timeout_s: float | None = None,
               stop: threading.Event | None = None) -> dict:
    """Run the stream until stopped (Ctrl-C, SIGTERM, ``stop`` set), ``max_batches`` batches with files,
    ``timeout_s`` seconds, or, ``available_now``, once everything listed at start is labelled. Returns counts."""
    started = time.monotonic()
    stream = Stream.of(config, landing, checkpoint)
    sc, ic = config.stream, config.ingest
    landing_dir = Landing(stream.landing, stream.under("notices"),
                          known_units(stream.under("notices"), config.paths.url("manifest")),
                          ic.ignore, ic.sidecar, ic.settle_s)
    log.info("stream: landing %s, checkpoint %s, models %s; %d new file(s) listed", stream.landing,
             stream.checkpoint, ", ".join(m for _, m in stream.models), landing_dir.scan())
    if stream.page_dir is not None:                   # a page to open before the first frames
        _open_pages(stream, config.live)

    def each_batch(batch_df, batch_id):
        notices = batch_df.collect()                  # a few hundred bytes per detector file
        if notices:
            label_batch(spark, config, stream, notices, batch_id)

    notices = (spark.readStream.schema(NOTICE_SCHEMA).option("maxFilesPerTrigger", sc.max_files_per_batch)
               .option("cleanSource", "delete").json(stream.under("notices"))
               .observe("landing", F.count(F.lit(1)).alias("files"), F.min("mtime").alias("oldest_mtime")))
    writer = (notices.writeStream.queryName(QUERY_NAME).foreachBatch(each_batch)
              .option("checkpointLocation", stream.under("spark")))
    writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=f"{sc.trigger_s} seconds")
    listener = BatchLog(stream)
    spark.streams.addListener(listener)
    watcher = Watcher(landing_dir, sc.list_interval_s)
    embedder = (Embedder(spark, config, stream.embedding, stream.under("labelled"), sc.embed_interval_s)
                if stream.embedding is not None and not available_now else None)
    query = writer.start()
    try:
        if not available_now:
            watcher.start()
        if embedder is not None:
            embedder.start()
        while query.isActive:
            try:
                query.awaitTermination(0.2)
            except StreamingQueryException as e:
                raise StreamError(f"stream over {stream.landing} failed: {e.getMessage()}") from None
            done = len(stream.batches)
            if ((max_batches and done >= max_batches) or (timeout_s and time.monotonic() - started > timeout_s)
                    or (stop is not None and stop.is_set())):
                query.stop()
    finally:
        if query.isActive:
            query.stop()
        if watcher.is_alive():
            watcher.stop()
        if embedder is not None:
            embedder.stop()
        spark.streams.removeListener(listener)
    if stream.embedding is not None:                 # what the last interval labelled
        merge_vectors(spark, config, stream.embedding, stream.under("labelled"))
    records = list(stream.batches.values())
    counts = {"batches": len(records), "files": sum(r["files"] for r in records),
              "written": sum(r["frames"] for r in records),
              "quarantined_files": sum(r["quarantined_files"] for r in records)}
    summary("stream", time.monotonic() - started, unit="frames", **counts)
    return {**counts, "checkpoint": stream.checkpoint, "records": records}
