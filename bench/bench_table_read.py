"""Images table -> tf.data through Petastorm, against the same tensors from memory.

Figure: images/s delivered by ``tf_dataset`` (batched 64) from a Parquet `images` table
written by Spark. Baseline: images/s of ``tf.data.Dataset.from_tensor_slices`` over the same
arrays already in memory: the ceiling any reader could reach.
"""
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.harness import record, timed_rate, write_random_images

N, SIZE = 1024, 256


def main():
    import tensorflow as tf

    from xray_spark.cnn.data import tf_dataset

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        url = Path(tmp, "images").as_uri()
        write_random_images(url, N, SIZE, "bench-table-read")

        def from_table():
            with tf_dataset(url, ["Thin film"]) as ds:
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
