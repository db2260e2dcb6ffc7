"""Clusters of a beamtime: k-means of 100k embeddings on Spark (``explore.clusters``, the project's
BLAS-3 Lloyd of ``bof.kmeans``, ``local[2]``) against scikit-learn ``KMeans`` (Lloyd, ``n_init=1``)
on one core, same k, same k-means++ start, same iterations: seconds per iteration (lower is better;
a ratio below 1 means Spark on 2 cores is faster than scikit-learn on one). Also records that both
reach the same clusters (adjusted Rand index of their assignments).
"""
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import embedding_runs
from bench.harness import RESULTS, record

N, D, K, TRUE_K, RUNS, ITERATIONS = 100_000, 352, 16, 24, 20, 10   # D: 256 CNN units + 2 x 48 profile bins


def main():
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from threadpoolctl import threadpool_limits

    from xray_spark.bof import kmeans
    from xray_spark.bof.pyramid import assign_words
    from xray_spark.config import load_config
    from xray_spark.explore import clusters
    from xray_spark.spark import build_session

    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    parts, _ = embedding_runs.blobs("bench", runs=RUNS, frames_per_run=N // RUNS, k=TRUE_K, d=D, spread=0.6, seed=0)
    points = np.vstack([np.stack(p["embedding"]) for p in parts]).astype(np.float32)
    config = load_config(None, ["spark.master=local[2]", "spark.ui=false", "progress.console=never",
                                "spark.driver_memory=4g"])
    spark = build_session(config, "bench-clusters")
    with tempfile.TemporaryDirectory() as tmp:
        url = embedding_runs.write(parts, Path(tmp) / "embeddings")
        rows = clusters.beamtime_embeddings(spark.read.parquet(url), "bench")
        sample = clusters.sample(rows, config.explore.clusters_sample, seed=0)
        start = kmeans.kmeans_plusplus_init(np.stack(sample["embedding"].to_numpy()).astype(np.float32), K, seed=0)
        blocks = clusters.embedding_blocks(rows).cache()
        assert blocks.map(len).sum() == N
        found = {}

        def spark_lloyd() -> float:
            t = time.perf_counter()
            found["spark"], _, iterations = kmeans.lloyd(spark, blocks, start, max_iter=ITERATIONS, tol=0.0,
                                                          chunk_rows=2048)
            return (time.perf_counter() - t) / iterations

        def sklearn_lloyd() -> float:
            with threadpool_limits(1):
                t = time.perf_counter()
                model = KMeans(K, init=start, n_init=1, max_iter=ITERATIONS, tol=0.0, algorithm="lloyd").fit(points)
                found["sklearn"] = model.cluster_centers_.astype(np.float32)
                return (time.perf_counter() - t) / model.n_iter_

        result = record("clusters_spark_vs_sklearn", figure=spark_lloyd, baseline=sklearn_lloyd, unit="s/iteration",
                        sizes={"embeddings": N, "dimensions": D, "k": K, "blobs": TRUE_K, "iterations": ITERATIONS,
                               "master": config.spark.master, "partitions": blocks.getNumPartitions()},
                        repeats=3, target="ratio < 1 (Spark on 2 cores faster than scikit-learn on one)",
                        notes="same k-means++ start (explore.clusters sample); scikit-learn limited to one thread "
                              "(threadpoolctl); lower is better")
        agreement = adjusted_rand_score(assign_words(points, found["spark"])[0], assign_words(points, found["sklearn"])[0])
        print(f"clusters: adjusted Rand index Spark vs scikit-learn assignments {agreement:.4f}")
        written = RESULTS / "clusters_spark_vs_sklearn.json"
        written.write_text(json.dumps({**json.loads(written.read_text()), "adjusted_rand_index": agreement}, indent=2) + "\n")
        blocks.unpersist()
    spark.stop()
    return result, agreement


if __name__ == "__main__":
    sys.exit(main() and 0)
