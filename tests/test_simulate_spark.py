"""Generation on Spark executors: same bytes whatever the partitioning, the job's table read back
through Petastorm into tf.data, and the default tag prevalence on a few thousand images."""
import numpy as np
from pyspark.sql import functions as F

from xray_spark import tags as tagmod
from xray_spark.simulate import generate_images, tag_prevalence


def _fingerprints(df):
    """(image_id -> sha256 of image, mask and tags) computed on the executors."""
    digest = F.sha2(F.concat(F.col("image"), F.col("mask"), F.encode(F.concat_ws(",", "tag_names"), "utf-8")), 256)
    return {r["image_id"]: r["digest"] for r in df.select("image_id", digest.alias("digest")).collect()}


def test_same_bytes_whatever_the_partitioning(spark, cluster_config):
    two = _fingerprints(generate_images(spark, cluster_config, n_images=15, seed=11, partitions=2))
    five = _fingerprints(generate_images(spark, cluster_config, n_images=15, seed=11, partitions=5))
    assert len(two) == 15 and len(set(two.values())) == 15 and two == five


def test_generate_job_writes_a_table_tf_data_reads(spark, tmp_path):
    from xray_spark.cli import main
    from xray_spark.cnn.data import tf_dataset

    url = (tmp_path / "images").as_uri()
    assert main(["--set", "spark.ui=false", "--set", "progress.console=never", "--set", "tables.row_group_size_mb=1",
                 "generate", "--n", "24", "--seed", "3", "--output", url, "--partitions", "3"]) == 0
    table = spark.read.parquet(url)
    assert table.count() == 24 and table.select("source").distinct().collect()[0][0] == "synthetic"
    top17 = tagmod.subset("top17")
    images, labels = [], []
    with tf_dataset(url, top17, shard_count=1, cur_shard=0) as ds:
        for image, label in ds:
            images.append(image.numpy())
            labels.append(label.numpy())
    assert len(images) == 24 and images[0].shape == (256, 256, 1)
    assert all(0.0 <= im.min() and im.max() <= 1.0 for im in images) and np.stack(images).std() > 0
    assert np.stack(labels).shape == (24, 17) and np.stack(labels).sum() > 24
    png = tmp_path / "gallery.png"
    assert main(["gallery", "--input", url, "--tags", "Thin film,TSAXS", "--per-tag", "2", "--output", str(png)]) == 0
    from matplotlib.image import imread

    picture = imread(png)
    assert picture.shape[0] > 300 and picture[..., :3].std() > 0.05        # two rows of real images, not blank


def test_generate_job_rejects_bad_arguments(capsys):
    from xray_spark.cli import main

    assert main(["generate", "--n", "0"]) == 2
    assert "xray-spark generate: --n = 0: must be >= 1" in capsys.readouterr().err
    assert main(["--set", "simulate.materials={Polyethylene: 1}", "generate", "--n", "4"]) == 2
    assert "unknown tag name" in capsys.readouterr().err


def test_default_prevalence_of_the_top17_tags(spark, cluster_config):
    prevalence = tag_prevalence(generate_images(spark, cluster_config, n_images=2000, seed=2024))
    low = {t: round(p, 3) for t, p in prevalence.items() if t in tagmod.subset("top17") and not 0.05 <= p <= 0.8}
    assert not low, f"top-17 tags outside [5%, 80%]: {low}"
    assert sum(p > 0 for p in prevalence.values()) >= 60          # most of the vocabulary occurs
