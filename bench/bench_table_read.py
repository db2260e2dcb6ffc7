"""Images table -> tf.data through Petastorm, against the same tensors from memory.

Figure: images/s delivered by ``schema.tf_dataset`` (batched 64) from a Parquet `images` table
written by Spark. Baseline: images/s of ``tf.data.Dataset.from_tensor_slices`` over the same
arrays already in memory: the ceiling any reader could reach.
"""
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.harness import random_images, record, timed_rate

N, SIZE = 1024, 256


def main():
    import tensorflow as tf

    from xray_spark import schema
    from xray_spark.config import load_config
    from xray_spark.spark import build_session

    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    config = load_config(None, ["spark.ui=false", "progress.console=never"])
    spark = build_session(config, "bench-table-read")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        url = Path(tmp, "images").as_uri()
        schema.write_table(random_images(spark, N, SIZE),
                           url, row_group_size_mb=config.tables.row_group_size_mb)
        spark.stop()

        def from_table():
            with schema.tf_dataset(url, ["Thin film"]) as ds:
                return sum(int(x.shape[0]) for x, _ in ds.batch(64).prefetch(2))

        arrays = np.random.default_rng(0).random((N, SIZE, SIZE, 1), dtype=np.float32)
        labels = np.ones((N, 1), np.float32)

        def from_memory():
            ds = tf.data.Dataset.from_tensor_slices((arrays, labels)).batch(64).prefetch(2)
            return sum(int(x.shape[0]) for x, _ in ds)

        record("table_read", figure=timed_rate(from_table), baseline=timed_rate(from_memory),
               unit="images/s", sizes={"images": N, "image_size": SIZE, "batch": 64}, repeats=3,
               notes="Petastorm make_batch_reader over the images table vs tf.data from memory")


if __name__ == "__main__":
    sys.exit(main())
