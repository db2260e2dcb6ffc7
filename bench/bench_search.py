"""Latency of one similar-image query over 100k and 1M embeddings: the faiss index against the exact
search on Spark and scikit-learn's brute force on one core, and the index's recall@20.

The vectors have the shipped ``cnn-top17``'s embedding length and stand in for real embeddings: a
mixture of 500 overlapping Gaussian clusters (spreads 0.5-2 times the centres' scale), each vector
scaled to unit length. Each block of 10,000 rows has its own seed, so the executors that write the
table and this process that builds the index draw the same vectors without moving them. Queries are 100
fresh draws of the same mixture.

- index: ``explore.vector_index.make_index`` (``explore.index``: IVF-Flat, ``explore.index_probe``
  lists probed), faiss' own threads (the workstation's cores), median of the 100 queries;
- exact on Spark: ``explore.neighbours.exact_top_k`` over the Parquet table (local Spark, all cores),
  median of 3 queries;
- scikit-learn: ``NearestNeighbors(algorithm="brute")`` on one core (threadpoolctl), median of 5.
recall@20: the fraction of the exact 20 nearest (faiss ``IndexFlatL2``, checked against the Spark
answer of the timed queries) that the index returns, over the 100 queries (target >= 0.95).
"""
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import record

SEED, CLUSTERS, QUERIES, K, BLOCK = 5, 500, 100, 20, 10_000
SIZES = (100_000, 1_000_000)


def dimension() -> int:
    from xray_spark.config import load_config
    from xray_spark.explore.embeddings import EmbeddingSettings, embedding_dimension
    from xray_spark.paths import SHIPPED_MODEL, SHIPPED_MODELS

    return embedding_dimension(SHIPPED_MODELS / SHIPPED_MODEL, EmbeddingSettings.from_config(load_config(None, [])))


def mixture(block: int, n: int, d: int) -> np.ndarray:
    """``n`` unit vectors of block ``block`` (block -1: the queries), float32."""
    centres = np.random.default_rng([SEED, 0, 0]).standard_normal((CLUSTERS, d))
    spreads = np.random.default_rng([SEED, 0, 1]).uniform(0.5, 2.0, CLUSTERS)    # clusters overlap
    rng = np.random.default_rng([SEED, 1, block + 1])
    which = rng.integers(0, CLUSTERS, n)
    vectors = centres[which] + spreads[which, None] * rng.standard_normal((n, d))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _table_block(d: int, batches):
    """Executor side: embeddings rows of the blocks in the batch."""
    import pyarrow as pa

    for batch in batches:
        for block in batch.column("id").to_pylist():
            vectors = mixture(block, BLOCK, d)
            ids = [f"v{block * BLOCK + i:08d}" for i in range(BLOCK)]
            yield pa.RecordBatch.from_pydict({
                "image_id": ids, "beamtime": ["bench"] * BLOCK, "run_id": [f"run{block}"] * BLOCK,
                "frame": list(range(BLOCK)), "model_id": ["bench"] * BLOCK, "embedding": list(vectors),
                "tag_names": [[] for _ in range(BLOCK)]}, schema=_schema())


def median_seconds(fn, queries) -> float:
    times = []
    for q in queries:
        start = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    import faiss
    from sklearn.neighbors import NearestNeighbors
    from threadpoolctl import threadpool_limits

    from xray_spark.config import load_config
    from xray_spark.explore.neighbours import exact_top_k
    from xray_spark.explore.vector_index import list_count, make_index
    from xray_spark.io import tables
    from xray_spark.schema import spark_schema
    from xray_spark.spark import build_session

    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])      # executors import bench.*
    config = load_config(None, ["spark.ui=false", "progress.console=never"])
    d, probe = dimension(), config.explore.index_probe
    queries = mixture(-1, QUERIES, d)
    spark = build_session(config, "bench-search")
    for n in SIZES:
        blocks = n // BLOCK
        with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
            url = Path(tmp, "embeddings").as_uri()
            table = spark.range(0, blocks, numPartitions=max(2, blocks // 10)).mapInArrow(
                functools.partial(_table_block, d), spark_schema(_schema()))
            tables.write_table(table, url, config.tables.row_group_size_mb, partition_by=("beamtime", "run_id"))
            vectors = np.concatenate([mixture(b, BLOCK, d) for b in range(blocks)])
            started = time.perf_counter()
            index = make_index(vectors, "ivf")
            build_s = time.perf_counter() - started
            index.nprobe = min(probe, index.nlist)
            exact = faiss.IndexFlatL2(d)
            exact.add(vectors)
            _, truth = exact.search(queries, K)
            _, found = index.search(queries, K)
            recall = float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))
            index_s = median_seconds(lambda q: index.search(q[None], K), queries)
            spark_answers = []
            spark_s = median_seconds(lambda q: spark_answers.append(exact_top_k(spark, url, "bench", q, K)), queries[:3])
            agrees = all([int(r["image_id"][1:]) for r in a] == list(t) for a, t in zip(spark_answers, truth[:3]))
            with threadpool_limits(1):
                brute = NearestNeighbors(n_neighbors=K, algorithm="brute").fit(vectors)
                sklearn_s = median_seconds(lambda q, nn=brute: nn.kneighbors(q[None]), queries[:5])
            del brute, vectors, exact
        sizes = {"vectors": n, "dimension": d, "queries_index": QUERIES, "queries_spark": 3, "queries_sklearn": 5,
                 "k": K, "nlist": list_count(n), "nprobe": index.nprobe, "index_build_s": round(build_s, 1),
                 "faiss_threads": faiss.omp_get_max_threads(), "recall_at_20": round(recall, 4),
                 "spark_exact_equals_flat_index": agrees, "spark_exact_s": round(spark_s, 3),
                 "sklearn_brute_1core_s": round(sklearn_s, 4), "index_s": round(index_s, 5)}
        label = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"
        record(f"search_latency_{label}", figure=lambda: index_s * 1e3, baseline=lambda: spark_s * 1e3,
               unit="ms per query (lower is better)", repeats=1, sizes=sizes,
               target="recall@20 of the index >= 0.95",
               notes=f"figure: faiss IVF-Flat query; baseline: exact top-k on Spark (local, all cores); "
                     f"scikit-learn brute force on one core: {sklearn_s * 1e3:.1f} ms; recall@20 {recall:.4f}")
    spark.stop()


def _schema():
    import pyarrow as pa

    from xray_spark import schema

    return pa.schema([schema.EMBEDDINGS.field(c) for c in ("image_id", "beamtime", "run_id", "frame", "model_id",
                                                           "embedding", "tag_names")])


if __name__ == "__main__":
    sys.exit(main())
