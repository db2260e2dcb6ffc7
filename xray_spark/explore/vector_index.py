"""The faiss index of an `embeddings` table, saved beside it, for interactive queries on a workstation.

``build_index`` gathers one model's embeddings in ONE executor task (sorted by image_id; the
driver never sees them), builds the index there and writes, under
``<table>.index/<model_id>/``: ``index.faiss`` (faiss' own serialisation), ``frames.parquet`` (the
image_id, beamtime, run_id, frame and tags of each indexed vector, in index order) and
``index.json`` (kind, size, dimension, and the fingerprint of the table's files when it was built).
``load_index`` reads it back in any process and says whether it is still current: a table
rewritten since (an ``embed`` rerun, a night's new images) has another fingerprint, and a stale
index is not used (``similar`` then searches exactly on Spark).

Kinds (``explore.index``):
- ``ivf``: faiss ``IndexIVFFlat``, L2: the vectors are split into ``nlist`` k-means lists (about
  sqrt(n); the k-means trained on at most 64 vectors per list, at least 39, so a million vectors
  train in about a minute on two cores) and a query scans the ``explore.index_probe`` lists
  nearest it: approximate (recall@20 measured by ``python -m bench search``), milliseconds for a
  million vectors, memory = the vectors themselves;
- ``flat``: faiss ``IndexFlatL2``: exact, a full scan per query with BLAS (tens of ms per million).
Building needs the table's vectors in one worker's memory (4 bytes x dimension x rows, twice while
stacking): a workstation-sized index; beyond that, the exact search on Spark answers.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math

import numpy as np
import pyarrow as pa

from xray_spark import schema
from xray_spark.explore.embeddings import as_matrix, read_embeddings
from xray_spark.io import tables

FRAME_COLUMNS = ["image_id", "beamtime", "run_id", "frame", "tag_names"]
KINDS = ("ivf", "flat")
MIN_PER_LIST = 39          # faiss warns below 39 training vectors per k-means centroid
TRAIN_PER_LIST = 64        # k-means training sample per list (faiss draws it with its fixed seed)


def index_url(embeddings_url: str, model_id: str) -> str:
    return f"{embeddings_url.rstrip('/')}.index/{model_id}"


def fingerprint(url: str) -> str:
    """SHA-1 of the table's data files (relative path, size, mtime): changes whenever a file does."""
    import pyarrow.fs as pafs

    fs, path = tables.filesystem(url)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    entries = sorted((i.path[len(path):], i.size, i.mtime_ns) for i in infos
                     if i.type == pafs.FileType.File and i.path.endswith(".parquet"))
    return hashlib.sha1(json.dumps(entries).encode()).hexdigest()


def list_count(n: int) -> int:
    """IVF lists for ``n`` vectors: about sqrt(n), at most n / 39 (at least 1)."""
    return max(1, min(round(math.sqrt(n)), n // MIN_PER_LIST))


def make_index(vectors: np.ndarray, kind: str):
    """A trained faiss index of ``vectors`` (n, d) float32 (L2), ids 0..n-1 in row order."""
    import faiss

    if kind not in KINDS:
        raise ValueError(f"explore.index = {kind!r}: known kinds {', '.join(KINDS)}")
    vectors = np.ascontiguousarray(vectors, np.float32)
    d = vectors.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatL2(d)
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, list_count(len(vectors)), faiss.METRIC_L2)
        index.cp.max_points_per_centroid = TRAIN_PER_LIST
        index.train(vectors)
    index.add(vectors)
    return index


def _write_bytes(url: str, data: bytes) -> None:
    fs, path = tables.filesystem(url)
    with fs.open_output_stream(path) as out:
        out.write(data)


def _build_task(batches, url: str, kind: str, threads: int):
    """Executor side of ``build_index``: every batch of the one partition -> the index files."""
    import faiss
    import pyarrow.parquet as pq

    faiss.omp_set_num_threads(threads)
    batches = [b for b in batches if b.num_rows]
    frames = pa.Table.from_batches(batches, schema=batches[0].schema) if batches else None
    if frames is None:
        yield pa.RecordBatch.from_pydict({"rows": [0]})
        return
    vectors = as_matrix(frames.column("embedding"))
    index = make_index(vectors, kind)
    fs, path = tables.filesystem(url)
    fs.create_dir(path, recursive=True)
    _write_bytes(f"{url}/index.faiss", faiss.serialize_index(index).tobytes())
    pq.write_table(frames.select(FRAME_COLUMNS), f"{path}/frames.parquet", filesystem=fs)
    yield pa.RecordBatch.from_pydict({"rows": [len(vectors)]})


def build_index(spark, embeddings_url: str, model_id: str, kind: str) -> dict:
    """Build the ``kind`` index of ``model_id``'s embeddings at ``embeddings_url`` (see module
    docstring); returns its ``index.json`` facts."""
    from pyspark.sql import functions as F

    url = index_url(embeddings_url, model_id)
    tables.filesystem(url)[0].delete_dir_contents(tables.filesystem(url)[1], missing_dir_ok=True)
    built_from = fingerprint(embeddings_url)
    rows = (read_embeddings(spark, embeddings_url).filter((F.col("model_id") == model_id) & F.col("embedding").isNotNull())
            .select(*FRAME_COLUMNS, "embedding").repartition(1).sortWithinPartitions("image_id"))
    threads = int(spark.conf.get("spark.task.cpus", "1"))
    counted = rows.mapInArrow(functools.partial(_build_task, url=url, kind=kind, threads=threads),
                              "rows long").collect()
    facts = {"kind": kind, "model_id": model_id, "rows": int(sum(r["rows"] for r in counted)),
             "fingerprint": built_from}
    if facts["rows"]:
        _write_bytes(f"{url}/index.json", json.dumps(facts, indent=2).encode())
    return facts


class SavedIndex:
    """An index read back by ``load_index``: ``search(query, k)`` -> (distances, rows of frames)."""

    def __init__(self, index, frames: pa.Table, facts: dict, probe: int):
        self.index, self.frames, self.facts = index, frames, facts
        if hasattr(index, "nprobe"):
            index.nprobe = min(probe, index.nlist)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, list[dict]]:
        """Euclidean distances (k,) and the frames' columns, nearest first."""
        squared, ids = self.index.search(np.asarray(query, np.float32).reshape(1, -1), k)
        keep = ids[0] >= 0
        rows = self.frames.take(pa.array(ids[0][keep])).to_pylist()
        return np.sqrt(np.maximum(squared[0][keep], 0.0)), rows


def load_index(embeddings_url: str, model_id: str, probe: int) -> tuple[SavedIndex | None, str]:
    """(the saved index, "") when it exists and is current with the table, else (None, why not)."""
    import faiss
    import pyarrow.parquet as pq

    url = index_url(embeddings_url, model_id)
    fs, path = tables.filesystem(url)
    if not tables.exists(fs, f"{path}/index.json"):
        return None, f"no index at {url} (xray-spark embed --index-only builds it)"
    with fs.open_input_stream(f"{path}/index.json") as f:
        facts = json.loads(f.read())
    if facts["fingerprint"] != fingerprint(embeddings_url):
        return None, (f"the index at {url} is stale: the embeddings table changed since it was built "
                      "(xray-spark embed --index-only rebuilds it)")
    with fs.open_input_stream(f"{path}/index.faiss") as f:
        index = faiss.deserialize_index(np.frombuffer(f.read(), np.uint8))
    frames = pq.read_table(f"{path}/frames.parquet", filesystem=fs, schema=pa.schema(
        [schema.EMBEDDINGS.field(c) for c in FRAME_COLUMNS]))
    return SavedIndex(index, frames, facts, probe), ""
