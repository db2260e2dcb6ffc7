"""Clusters of a beamtime's embeddings (explore.clusters): on real Spark, the same clusters however
the table is partitioned, k chosen by the silhouette, each cluster described by its medoids, tag
composition, mean profile and size per run."""
import dataclasses

import numpy as np
import pytest

from bench import embedding_runs
from xray_spark.explore import clusters


@pytest.fixture(scope="module")
def blob_table(spark, tmp_path_factory):
    """3 runs of 120 frames around 4 well-apart centres (64 dimensions), written as Parquet."""
    parts, truth = embedding_runs.blobs("bt1", runs=3, frames_per_run=120, k=4, d=64, spread=0.35, seed=3)
    url = embedding_runs.write(parts, tmp_path_factory.mktemp("clusters") / "embeddings")
    ids = [i for p in parts for i in p["image_id"]]
    return url, dict(zip(ids, truth))


def explore(cluster_config, **changes):
    return dataclasses.replace(cluster_config.explore, clusters_sample=200, clusters_k_range=[2, 6], **changes)


def members(result) -> dict:
    return dict(result.assigned.select("image_id", "cluster").toPandas().itertuples(index=False))


def test_same_clusters_on_one_or_four_partitions(spark, cluster_config, blob_table):
    url, _ = blob_table
    table = spark.read.parquet(url)
    one = clusters.cluster_beamtime(spark, table.coalesce(1), "bt1", explore(cluster_config), k=5)
    four = clusters.cluster_beamtime(spark, table.repartition(4, "image_id"), "bt1", explore(cluster_config), k=5)
    assert table.repartition(4, "image_id").rdd.getNumPartitions() == 4
    assert members(one) == members(four)
    columns = ["cluster", "size", "medoid_ids", "tags", "runs", "run_sizes"]
    assert one.table[columns].to_dict("records") == four.table[columns].to_dict("records")
    assert np.array_equal(one.centres, four.centres)


def test_silhouette_finds_the_four_blobs_and_describes_them(spark, cluster_config, blob_table):
    url, truth = blob_table
    result = clusters.cluster_beamtime(spark, spark.read.parquet(url), "bt1", explore(cluster_config))
    table = result.table
    assert list(table["k"].unique()) == [4] and table["criterion"][0].startswith("silhouette")
    assert "k=2..6" in table["criterion"][0]
    assigned = members(result)
    for c in range(4):  # each cluster is one true blob, whole
        blob = {truth[i] for i, got in assigned.items() if got == c}
        assert len(blob) == 1
    assert list(table["cluster"]) == [0, 1, 2, 3] and list(table["size"]) == sorted(table["size"], reverse=True)
    assert table["size"].sum() == 360 == sum(sum(s) for s in table["run_sizes"])
    for row in table.itertuples():
        assert row.runs == ["run0", "run1", "run2"]
        assert len(row.medoid_ids) == cluster_config.explore.clusters_medoids
        assert all(assigned[i] == row.cluster for i in row.medoid_ids)
        state = truth[row.medoid_ids[0]]
        assert sorted(t for t, f in zip(row.tags, row.tag_fractions) if f == 1.0) == \
            sorted(embedding_runs.TAG_STATES[state])  # every frame of a blob carries its state's tags
        expected = embedding_runs.profile(state, 1, np.random.default_rng(0))[0]
        assert row.profile_axis == "q" and np.abs(np.asarray(row.mean_profile) - expected).max() < 0.1
    assert set(result.sample["cluster"]) == {0, 1, 2, 3} and len(result.sample) == 200


def test_unknown_beamtime_or_model_fails_clearly(spark, cluster_config, blob_table):
    url, _ = blob_table
    table = spark.read.parquet(url)
    with pytest.raises(ValueError, match="beamtime 'nope': no rows in the embeddings table"):
        clusters.cluster_beamtime(spark, table, "nope", explore(cluster_config), k=3)
    with pytest.raises(ValueError, match=r"model 'cnn': beamtime 'bt1' is embedded by \['synthetic'\] only"):
        clusters.cluster_beamtime(spark, table, "bt1", explore(cluster_config), model_id="cnn", k=3)
