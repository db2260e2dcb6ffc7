"""Similar-image search: the k frames of an `embeddings` table nearest a query embedding.

Two ways, the same answer up to the index's approximation:

- **exact on Spark** (``exact_top_k``): the query vector is broadcast, each partition keeps its k
  nearest rows (numpy, float64 distances, ties broken by image_id) and Spark merges the
  partitions' k rows on the driver (``orderBy(...).limit(k)``, a take-ordered: at most
  partitions x k rows move). Exact for any table size; costs a pass over the table (seconds).
  Used when there is no index of the table, when it is stale (the table changed since it was
  built), or when asked for (``--search exact``).
- **the faiss index** beside the table (``vector_index``): milliseconds per query in one process,
  no Spark; for interactive use on a workstation. Used by default (``--search auto``) whenever a
  current index exists; ``explore.index = ivf`` is approximate (its recall@20 against the exact
  search is measured by ``python -m bench search``), ``flat`` exact.

Distances are Euclidean between the unit-length embeddings (0 = the same vector, 2 = opposite):
a frame of the table searched with its own embedding comes first, at distance 0.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from xray_spark.explore.embeddings import as_matrix, read_embeddings
from xray_spark.explore.vector_index import FRAME_COLUMNS, load_index

RESULT = pa.schema([pa.field("image_id", pa.string()), pa.field("beamtime", pa.string()),
                    pa.field("run_id", pa.string()), pa.field("frame", pa.int64()),
                    pa.field("tag_names", pa.list_(pa.string())), pa.field("distance", pa.float64())])
SEARCH_BATCH_ROWS = 8192     # rows per Arrow batch of the exact search (vectors are small rows)


@dataclass
class Neighbours:
    """The answer of a search: rows (image_id, beamtime, run_id, frame, tag_names, distance), nearest
    first, and how it was found ("exact on Spark" or "faiss ivf index", with why)."""
    rows: list[dict]
    method: str


def _nearest(ids: np.ndarray, distances: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k smallest distances, ties by image_id (the same whatever the partitioning)."""
    if len(distances) > k:
        cut = np.partition(distances, k - 1)[k - 1]
        candidates = np.flatnonzero(distances <= cut)
    else:
        candidates = np.arange(len(distances))
    order = np.lexsort((ids[candidates], distances[candidates]))
    return candidates[order[:k]]


def _partition_top_k(batches, query: np.ndarray, k: int):
    """Executor side of ``exact_top_k``: the k nearest rows of one partition, as one batch."""
    best = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        vectors = as_matrix(batch.column("embedding")).astype(np.float64)
        distances = np.sqrt(np.square(vectors - query).sum(axis=1))
        table = pa.Table.from_batches([batch]).select(FRAME_COLUMNS).append_column("distance", pa.array(distances))
        best = table if best is None else pa.concat_tables([best, table])
        keep = _nearest(np.asarray(best.column("image_id").to_pylist(), object),
                        best.column("distance").to_numpy(), k)
        best = best.take(pa.array(keep))
    if best is not None:
        yield from best.cast(RESULT).to_batches()


def exact_top_k(spark, embeddings_url: str, model_id: str, query: np.ndarray, k: int) -> list[dict]:
    """The k rows of ``model_id`` nearest ``query`` in the table, exactly (see module docstring)."""
    from pyspark.sql import functions as F

    from xray_spark.schema import spark_schema

    rows = (read_embeddings(spark, embeddings_url).filter((F.col("model_id") == model_id) & F.col("embedding").isNotNull())
            .select(*FRAME_COLUMNS, "embedding"))
    first = rows.select(F.size("embedding").alias("d")).first()
    if first is not None:
        check_dimension(first["d"], len(query), embeddings_url)
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    previous = spark.conf.get(key)
    spark.conf.set(key, str(SEARCH_BATCH_ROWS))       # images are large rows; vectors are not
    try:
        nearest = rows.mapInArrow(functools.partial(_partition_top_k, query=np.asarray(query, np.float64), k=k),
                                  spark_schema(RESULT))
        return [r.asDict() for r in nearest.orderBy("distance", "image_id").limit(k).collect()]
    finally:
        spark.conf.set(key, previous)


def check_dimension(table: int, query: int, url: str) -> None:
    """A query must have the table's embedding length (the same model and ``explore`` grids)."""
    if table != query:
        raise ValueError(f"the embeddings at {url} have {table} numbers, the query {query}: they were made "
                         "with another model or other explore.* grids; embed the table again (xray-spark embed)")


def search(embeddings_url: str, model_id: str, query: np.ndarray, k: int, *, how: str = "auto", probe: int = 32,
           spark_factory=None) -> Neighbours:
    """The k nearest frames of ``query``: ``how`` = ``index`` (the saved index; fails when there is
    none or it is stale), ``exact`` (Spark), or ``auto`` (the index when current, else exact).
    ``spark_factory()`` gives the SparkSession of the exact search, started only when needed."""
    if how not in ("auto", "index", "exact"):
        raise ValueError(f"search = {how!r}: use auto, index or exact")
    if how != "exact":
        index, why_not = load_index(embeddings_url, model_id, probe)
        if index is not None:
            check_dimension(index.index.d, len(query), embeddings_url)
            distances, rows = index.search(query, k)
            kind = index.facts["kind"]
            return Neighbours([{**r, "distance": float(d)} for r, d in zip(rows, distances)],
                              f"faiss {kind} index ({index.facts['rows']} vectors"
                              + (f", {index.index.nprobe} of {index.index.nlist} lists probed)" if kind == "ivf" else ")"))
        if how == "index":
            raise FileNotFoundError(why_not)
    else:
        why_not = "asked for"
    return Neighbours(exact_top_k(spark_factory(), embeddings_url, model_id, query, k),
                      f"exact on Spark ({why_not})")
