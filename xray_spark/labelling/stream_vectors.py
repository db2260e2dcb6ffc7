"""The stream's embeddings: the label tasks embed the frames they label and leave the vectors
beside the checkpoint, one directory per batch (``Embedding``, ``write_vectors``); a driver thread
(``Embedder``) merges the committed batches' vectors into the `embeddings` table every
``stream.embed_interval_s`` (``merge_vectors``), its Spark jobs in a FAIR scheduler pool that yields
the cores to the batches' (``EMBED_POOL``, ``conf/stream-pools.xml``).

Exactly once: a replayed batch first deletes its directory and writes it again; a directory is
merged only once the batch's record exists, and deleted after the merge, which replaces an image's
earlier vector (``explore.embeddings.add_embeddings``): a crash between the two merges it again,
to the same rows.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import pyarrow as pa
from pyarrow import fs as pafs

from xray_spark import schema
from xray_spark.explore import embeddings as emb
from xray_spark.io import partitions as parts
from xray_spark.io import tables

log = logging.getLogger(__name__)

EMBED_POOL = "embed"         # the Embedder's FAIR scheduler pool (conf/stream-pools.xml)


@dataclass(frozen=True)
class Embedding:
    """How the label tasks embed: the CNN (model directory and id), the settings, where vectors wait."""
    directory: str
    model_id: str
    settings: emb.EmbeddingSettings
    url: str                             # <checkpoint>/embedding; a batch's vectors in <url>/<batch id>/

    @classmethod
    def of(cls, config, checkpoint: str) -> Embedding | None:
        """The stream's embedding (``explore.model``), or None when ``stream.embed_interval_s`` is null."""
        if config.stream.embed_interval_s is None:
            return None
        directory = config.paths.model_dir(config.explore.model)
        return cls(str(directory), emb.check_model(directory)["model_id"], emb.EmbeddingSettings.from_config(config),
                   f"{checkpoint}/embedding")

    def of_batch(self, batch_id: int) -> str:
        return f"{self.url}/{batch_id:010d}"

    def network(self) -> emb.PenultimateLayer:
        """On an executor: the CNN, loaded once per worker."""
        return emb.network_of(self.directory, self.model_id)

    def embed(self, rows: dict) -> pa.RecordBatch:
        """On an executor: the `embeddings` rows of image rows."""
        return emb.embed_rows(rows, self.network(), self.settings)


def write_vectors(url: str, vectors: list[pa.RecordBatch]) -> None:
    """A label task's `embeddings` rows as ``<url>/part-<partition>.parquet`` (a retried task replaces it)."""
    import pyarrow.parquet as pq
    from pyspark import TaskContext

    fs, root = tables.filesystem(url)
    with tables.replacing(fs, f"{root}/part-{TaskContext.get().partitionId():05d}.parquet") as tmp:
        pq.write_table(pa.Table.from_batches(vectors, schema=schema.EMBEDDINGS), tmp, filesystem=fs)


def merge_vectors(spark, config, embedding: Embedding, labelled_url: str) -> int:
    """Put the vectors of the batches committed so far into the `embeddings` table, then delete them;
    returns the batches merged. A batch's vectors count once its record (``<labelled_url>/<batch
    id>.json``) exists: it is written after them."""
    fs, root = tables.filesystem(embedding.url)
    waiting = sorted(i.base_name for i in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
                     if i.type == pafs.FileType.Directory)
    _, labelled = tables.filesystem(labelled_url)
    ready = [name for name in waiting if tables.exists(fs, f"{labelled}/{name}.json")]
    if not ready:
        return 0
    vectors = (spark.read.schema(schema.spark_schema(schema.EMBEDDINGS))
               .parquet(*(embedding.of_batch(int(name)) for name in ready)))
    runs = [(r["beamtime"], r["run_id"]) for r in vectors.select("beamtime", "run_id").distinct().collect()]
    if runs:
        emb.add_embeddings(spark, config, vectors, runs, f"stream: embeddings of {len(ready)} batch(es)")
    for name in ready:
        parts.remove_dir(embedding.of_batch(int(name)))
    return len(ready)


class Embedder:
    """A driver thread that merges the batches' vectors every ``interval_s`` seconds (``merge_vectors``),
    its Spark jobs in the FAIR pool ``EMBED_POOL`` (under the ``stream`` job's session the batches' pool
    outweighs it, so a batch's tasks take the next free cores). A failed merge is logged and tried
    again at the next interval; the last merge, at stop, runs in the stream's thread."""

    def __init__(self, spark, config, embedding: Embedding, labelled_url: str, interval_s: float):
        from pyspark import InheritableThread

        self.spark, self.config, self.interval_s = spark, config, interval_s
        self.embedding, self.labelled_url = embedding, labelled_url
        self.stopping = threading.Event()
        self.thread = InheritableThread(target=self._run, name="stream-embedder", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stop after the merge under way, if any."""
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join()

    def _run(self) -> None:
        self.spark.sparkContext.setLocalProperty("spark.scheduler.pool", EMBED_POOL)
        while not self.stopping.wait(self.interval_s):
            try:
                merge_vectors(self.spark, self.config, self.embedding, self.labelled_url)
            except Exception as e:                     # the stream goes on; the vectors stay to merge
                if not self.stopping.is_set():
                    log.error("stream: merging embeddings failed, tried again in %.0f s: %s", self.interval_s, e)
