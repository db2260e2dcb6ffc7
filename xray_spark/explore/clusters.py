"""Clusters of a beamtime's frames: k-means of their embeddings on Spark, each cluster described by
the frames nearest its centre, its tag composition, its mean profile and its size per run.

Method. The embeddings (unit vectors, ``schema.EMBEDDINGS``) are clustered with the project's own
k-means (``bof.kmeans``): a k-means++ start on a sample, then BLAS-3 Lloyd iterations on the
executors. k is ``explore.clusters_k``; when that is 0, k is chosen by the *silhouette criterion*:
every k of ``explore.clusters_k_range`` is fitted, and the k whose clusters give the sample the
highest mean silhouette (scikit-learn ``silhouette_score``, Euclidean; on unit vectors that orders
pairs as the cosine distance does) wins, the smaller k on a tie. The silhouette rewards clusters
that are both tight and apart, and unlike the inertia it does not improve by itself as k grows.

Stable: the sample (the start, the silhouette, the atlas' 2-D map) is the ``sample_size`` frames
of smallest xxhash64(image_id, seed), sorted by image_id, whatever the partitioning; Lloyd sums in
float64 and rounds the centres to float32, so the same data and seed give the same clusters on 1
or 100 partitions. Clusters are numbered by size, 0 the largest.

The medoids of a cluster are its ``medoids`` frames nearest the centre (chosen on the executors;
only k x medoids rows reach the driver), its typical frames to look at.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from xray_spark import schema
from xray_spark.bof import kmeans
from xray_spark.bof.pyramid import assign_words
from xray_spark.explore.embeddings import as_matrix
from xray_spark.spark import stage

log = logging.getLogger(__name__)

SAMPLE_COLUMNS = ["image_id", "run_id", "frame", "embedding", "tag_names"]


@dataclass
class Clusters:
    """The fitted clusters of one beamtime: ``table`` (``schema.CLUSTERS`` rows, pandas), the
    ``assigned`` frames (Spark: every embeddings column plus ``cluster`` and ``distance``), and the
    ``sample`` (pandas, ``SAMPLE_COLUMNS`` plus ``cluster``) the start and the criterion used."""
    table: pd.DataFrame
    assigned: DataFrame
    sample: pd.DataFrame
    centres: np.ndarray


def beamtime_embeddings(embeddings: DataFrame, beamtime: str, model_id: str | None = None) -> DataFrame:
    """The rows of ``beamtime`` embedded by ``model_id`` (``None``: the table's only model for it)."""
    rows = embeddings.filter(F.col("beamtime") == beamtime)
    models = sorted(r.model_id for r in rows.select("model_id").distinct().collect())
    if not models:
        raise ValueError(f"beamtime {beamtime!r}: no rows in the embeddings table")
    if model_id is None:
        if len(models) > 1:
            raise ValueError(f"beamtime {beamtime!r} is embedded by {len(models)} models {models}: name one (--model)")
        model_id = models[0]
    elif model_id not in models:
        raise ValueError(f"model {model_id!r}: beamtime {beamtime!r} is embedded by {models} only")
    return rows.filter(F.col("model_id") == model_id).filter(F.col("embedding").isNotNull())


def sample(rows: DataFrame, n: int, seed: int) -> pd.DataFrame:
    """The ``n`` rows of smallest xxhash64(image_id, seed), sorted by image_id: the same rows
    however the table is partitioned."""
    key = F.xxhash64("image_id", F.lit(seed))
    picked = rows.select(*SAMPLE_COLUMNS, key.alias("_key")).orderBy("_key", "image_id").limit(n).toPandas()
    return picked.drop(columns="_key").sort_values("image_id", kind="stable").reset_index(drop=True)


def _block(batches):
    """Executor side of ``embedding_blocks``: one float32 (n, d) block per Arrow batch, as bytes."""
    for batch in batches:
        vectors = as_matrix(batch.column("embedding"))
        yield pa.RecordBatch.from_pydict({"n": [len(vectors)], "d": [vectors.shape[1] if len(vectors) else 0],
                                          "block": [vectors.astype("<f4").tobytes()]})


def embedding_blocks(rows: DataFrame):
    """An RDD of (n_i, d) float32 embedding blocks, one per Arrow batch (cache it: Lloyd reads it
    once per iteration)."""
    out = "n long, d long, block binary"
    return (rows.select("embedding").mapInArrow(_block, out).rdd
            .filter(lambda r: r.n > 0).map(lambda r: np.frombuffer(r.block, "<f4").reshape(r.n, r.d)))


def _silhouette(vectors: np.ndarray, labels: np.ndarray, seed: int) -> float:
    from sklearn.metrics import silhouette_score

    if len(np.unique(labels)) < 2:
        return -1.0
    return float(silhouette_score(vectors, labels, random_state=seed))


def fit_centres(spark, blocks, start_sample: np.ndarray, k_values: list[int], *, seed: int, max_iter: int,
                tol: float, interval_s: float = 30.0) -> tuple[np.ndarray, str]:
    """The centres of the best k among ``k_values`` (silhouette on ``start_sample``; one k: that k)
    and a sentence saying how k was chosen."""
    best = None
    scores = {}
    for k in k_values:
        if len(start_sample) < k:
            raise ValueError(f"k = {k}: the beamtime has only {len(start_sample)} sampled frames; lower the k")
        start = kmeans.kmeans_plusplus_init(start_sample, k, seed)
        centres, _, _ = kmeans.lloyd(spark, blocks, start, max_iter=max_iter, tol=tol, chunk_rows=2048,
                                     interval_s=interval_s)
        if len(k_values) == 1:
            return centres, "configured"
        labels, _ = assign_words(start_sample, centres)
        scores[k] = _silhouette(start_sample, labels, seed)
        log.info("clusters: k=%d silhouette %.3f", k, scores[k])
        if best is None or scores[k] > scores[best[0]]:
            best = (k, centres)
    k, centres = best
    return centres, (f"silhouette {scores[k]:.3f} (highest over k={min(k_values)}..{max(k_values)} on "
                     f"{len(start_sample)} sampled frames)")


def _assign(centres, batches):
    for frame in batches:
        vectors = np.stack(frame["embedding"].to_numpy()).astype(np.float32)
        words, sq = assign_words(vectors, centres)
        yield frame.assign(cluster=words.astype(np.int32), distance=np.sqrt(sq).astype(np.float32))


def assign(rows: DataFrame, centres: np.ndarray) -> DataFrame:
    """``rows`` with the nearest centre's index ``cluster`` and the Euclidean ``distance`` to it."""
    shared = rows.sparkSession.sparkContext.broadcast(np.asarray(centres, np.float32))
    from pyspark.sql.types import FloatType, IntegerType, StructType

    out = StructType([*rows.schema.fields]).add("cluster", IntegerType()).add("distance", FloatType())
    return rows.mapInPandas(lambda batches: _assign(shared.value, batches), out)


def describe(assigned: DataFrame, medoids: int) -> dict[str, pd.DataFrame]:
    """Small per-cluster aggregates computed on the executors: sizes per run, tag counts, mean
    profile per axis, and the ``medoids`` frames nearest each centre."""
    from pyspark.ml.functions import array_to_vector
    from pyspark.ml.stat import Summarizer

    sizes = assigned.groupBy("cluster", "run_id").count().toPandas()
    tag_counts = (assigned.select("cluster", F.explode("tag_names").alias("tag"))
                  .groupBy("cluster", "tag").count().toPandas())
    profiles = (assigned.filter(F.col("profile").isNotNull())
                .select("cluster", "profile_axis", array_to_vector("profile").alias("profile"))
                .groupBy("cluster", "profile_axis")
                .agg(Summarizer.mean(F.col("profile")).alias("mean"), F.count("*").alias("n")).toPandas())
    nearest = Window.partitionBy("cluster").orderBy("distance", "image_id")
    medoid_rows = (assigned.withColumn("rank", F.row_number().over(nearest)).filter(F.col("rank") <= medoids)
                   .select("cluster", "rank", "image_id", "run_id", "frame").toPandas())
    return {"sizes": sizes, "tags": tag_counts, "profiles": profiles, "medoids": medoid_rows}


def cluster_table(beamtime: str, model_id: str, centres: np.ndarray, criterion: str,
                  parts: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict[int, int]]:
    """The ``schema.CLUSTERS`` rows, clusters renumbered by size (0 the largest), and the
    renumbering {k-means index: cluster}."""
    sizes = parts["sizes"]
    totals = sizes.groupby("cluster")["count"].sum()
    order = sorted(totals.index, key=lambda c: (-totals[c], c))
    number = {int(c): i for i, c in enumerate(order)}
    rows = []
    for c in order:
        runs = sizes[sizes["cluster"] == c].sort_values("run_id")
        tags = parts["tags"][parts["tags"]["cluster"] == c].sort_values(["count", "tag"], ascending=[False, True])
        profiles = parts["profiles"][parts["profiles"]["cluster"] == c].sort_values(["n", "profile_axis"],
                                                                                   ascending=[False, True])
        medoid = parts["medoids"][parts["medoids"]["cluster"] == c].sort_values("rank")
        profile = profiles.iloc[0] if len(profiles) else None
        rows.append({
            "beamtime": beamtime, "model_id": model_id, "cluster": number[int(c)], "k": len(order),
            "criterion": criterion, "size": int(totals[c]), "centre": centres[int(c)].astype(np.float32),
            "medoid_ids": list(medoid["image_id"]), "medoid_runs": list(medoid["run_id"]),
            "medoid_frames": [int(f) for f in medoid["frame"]],
            "tags": list(tags["tag"]), "tag_fractions": (tags["count"].to_numpy() / totals[c]).astype(np.float32),
            "profile_axis": None if profile is None else profile["profile_axis"],
            "mean_profile": None if profile is None else profile["mean"].toArray().astype(np.float32),
            "runs": list(runs["run_id"]), "run_sizes": [int(n) for n in runs["count"]],
        })
    return pd.DataFrame(rows, columns=schema.CLUSTERS.names), number


def _renumber(number: dict[int, int]):
    mapping = F.create_map(*[F.lit(v) for pair in sorted(number.items()) for v in pair])
    return mapping[F.col("cluster")].cast("int")


def cluster_beamtime(spark, embeddings: DataFrame, beamtime: str, explore, *, model_id: str | None = None,
                     k: int | None = None, interval_s: float = 30.0) -> Clusters:
    """Cluster one beamtime's frames (``explore``: the configuration's ``explore`` section; ``k``
    overrides ``explore.clusters_k``)."""
    rows = beamtime_embeddings(embeddings, beamtime, model_id)
    model_id = rows.select("model_id").first().model_id
    k = explore.clusters_k if k is None else k
    k_values = [k] if k else list(range(explore.clusters_k_range[0], explore.clusters_k_range[1] + 1))
    with stage(spark, f"clusters of {beamtime}: sample", interval_s):
        picked = sample(rows, explore.clusters_sample, explore.clusters_seed)
    vectors = np.stack(picked["embedding"].to_numpy()).astype(np.float32)
    blocks = embedding_blocks(rows).cache()
    try:
        centres, criterion = fit_centres(spark, blocks, vectors, k_values, seed=explore.clusters_seed,
                                         max_iter=explore.clusters_max_iter, tol=explore.clusters_tol,
                                         interval_s=interval_s)
    finally:
        blocks.unpersist()
    assigned = assign(rows, centres).cache()
    with stage(spark, f"clusters of {beamtime}: describe", interval_s):
        table, number = cluster_table(beamtime, model_id, centres, criterion, describe(assigned, explore.clusters_medoids))
    renumbered = assigned.withColumn("cluster", _renumber(number))
    labels, _ = assign_words(vectors, centres)
    picked["cluster"] = [number.get(int(c), -1) for c in labels]
    order = sorted(number, key=number.get)
    return Clusters(table=table, assigned=renumbered, sample=picked, centres=centres[order])
