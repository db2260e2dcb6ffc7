"""The images table on a real two-executor cluster: written by executors, published atomically,
rerun without duplicates, read back into tf.data with the same values."""
import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from xray_spark import schema, tags
from xray_spark.cnn.data import tf_dataset
from xray_spark.io import tables

N = 24


def _images(batches):
    """Runs on executors: one deterministic 48x40 image per id, tagged by its parity."""
    for batch in batches:
        records = []
        for i in batch.column("id").to_pylist():
            rng = np.random.default_rng(i)
            records.append(schema.image_record(
                image_id=f"img-{i:04d}", source="synthetic", beamtime="bt1", run_id=f"run{i % 3}", frame=i,
                image=rng.random((48, 40), dtype=np.float32), mask=rng.random((48, 40)) < 0.1,
                tag_names=["GISAXS", "Thin film"] if i % 2 else ["TSAXS"],
                provenance={"executor_pid": os.getpid(), "i": i}))
        yield schema.records_to_arrow(records)


def _frame(spark):
    return spark.range(0, N, numPartitions=4).mapInArrow(_images, schema.spark_schema())


def test_write_on_two_executors_rerun_replaces_and_tf_reads_back(spark, tmp_path):
    url = (tmp_path / "images").as_uri()
    tables.write_table(_frame(spark), url, row_group_size_mb=1)
    first = pd.read_parquet(tmp_path / "images").sort_values("image_id").reset_index(drop=True)
    assert len(first) == N
    pids = {int(p.split('"executor_pid": ')[1].split(",")[0]) for p in first.provenance}
    assert len(pids) == 2, "rows must come from both executor processes"

    tables.write_table(_frame(spark), url, row_group_size_mb=1)  # rerun: replace, never append
    second = pd.read_parquet(tmp_path / "images").sort_values("image_id").reset_index(drop=True)
    assert len(second) == N and second.image_id.is_unique
    pd.testing.assert_frame_equal(first.drop(columns="provenance"), second.drop(columns="provenance"))
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]

    # Spark and pandas read it as plain Parquet; images decode to what was written.
    assert spark.read.parquet(url).filter("array_contains(tag_names, 'GISAXS')").count() == N // 2
    images = schema.decode_images(list(first.image), 48, 40)
    np.testing.assert_array_equal(images[5], np.random.default_rng(5).random((48, 40), dtype=np.float32))
    assert list(first.tags[1]) == list(tags.encode(["GISAXS", "Thin film"]))

    with tf_dataset(url, ["GISAXS", "TSAXS"], extra_fields=["frame"]) as ds:
        seen = {}
        for image, labels, extra in ds:
            seen[int(extra["frame"])] = (image.numpy(), labels.numpy())
    assert sorted(seen) == list(range(N))
    image5, labels5 = seen[5]
    assert image5.shape == (48, 40, 1)
    np.testing.assert_array_equal(image5[..., 0], images[5])
    np.testing.assert_array_equal(labels5, [1.0, 0.0])
    np.testing.assert_array_equal(seen[4][1], [0.0, 1.0])


def test_row_groups_are_bounded_and_shards_split_them(spark, tmp_path):
    url = (tmp_path / "images").as_uri()
    big = spark.range(0, 160, numPartitions=1).mapInArrow(_images, schema.spark_schema())
    tables.write_table(big, url, row_group_size_mb=1)
    files = sorted((tmp_path / "images").glob("*.parquet"))
    row_groups = sum(pq.ParquetFile(f).num_row_groups for f in files)
    assert row_groups >= 2, "a 1 MB bound must split 160 rows of ~9.6 kB (1.5 MB) into several row groups"
    frames = []
    for shard in range(2):
        with tf_dataset(url, cur_shard=shard, shard_count=2, extra_fields=["frame"]) as ds:
            frames.append({int(extra["frame"]) for _, _, extra in ds})
    assert frames[0] and frames[1] and not frames[0] & frames[1]
    assert frames[0] | frames[1] == set(range(160))


def test_interrupted_write_leftover_is_removed(spark, tmp_path):
    leftover = tmp_path / "images.tmp-deadbeef"
    leftover.mkdir()
    (leftover / "part-0.parquet").write_bytes(b"half")
    tables.write_table(_frame(spark), (tmp_path / "images").as_uri())
    assert not leftover.exists()
    assert len(pd.read_parquet(tmp_path / "images")) == N
