"""Is the Petastorm feed ever the bottleneck of CNN training? Step rate fed from the table vs from memory.

Figure: training images/s of the `cpu` preset (one process, TensorFlow's default threads) on
batches from ``cnn.data.training_batches`` (Petastorm ``make_batch_reader`` over an `images`
table written by Spark, shuffled, batched). Baseline: the same training steps on the same
tensors held in memory (``tf.data.Dataset.from_tensor_slices``). Target: ratio >= 0.9.
"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import record, write_random_images

N, SIZE, BATCH, STEPS, WARMUP = 512, 256, 32, 24, 4
TAG_SET = ["Thin film", "GISAXS"]


def _step_rate(model, iterator) -> float:
    for _ in range(WARMUP):
        model.train_on_batch(*next(iterator))
    start = time.perf_counter()
    for _ in range(STEPS):
        model.train_on_batch(*next(iterator))
    return STEPS * BATCH / (time.perf_counter() - start)


def main():
    import tensorflow as tf

    from xray_spark.cnn.data import training_batches
    from xray_spark.cnn.model import PRESETS, build_model

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        url = Path(tmp, "images").as_uri()
        config = write_random_images(url, N, SIZE, "bench-cnn-input")
        model = build_model(PRESETS["cpu"], len(TAG_SET))
        model.compile(tf.keras.optimizers.legacy.SGD(0.01, momentum=0.9), "binary_crossentropy")

        def from_table():
            with training_batches(url, TAG_SET, rank=0, ranks=1, batch_size=BATCH, shuffle_buffer=256,
                                  seed=0, workers=config.cnn.reader_workers) as ds:
                return _step_rate(model, iter(ds))

        arrays = np.random.default_rng(0).random((N, SIZE, SIZE, 1), dtype=np.float32)
        labels = np.tile(np.eye(2, dtype=np.float32), (N // 2, 1))

        def from_memory():
            ds = (tf.data.Dataset.from_tensor_slices((arrays, labels)).repeat().shuffle(256, seed=0)
                  .batch(BATCH, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
            return _step_rate(model, iter(ds))

        record("cnn_input", figure=from_table, baseline=from_memory, unit="training images/s",
               sizes={"images": N, "stored_size": SIZE, "preset": "cpu", "batch": BATCH, "steps": STEPS,
                      "reader_workers": config.cnn.reader_workers},
               repeats=3, target="ratio >= 0.9: the Petastorm feed is not the bottleneck",
               notes="cpu-preset train_on_batch steps fed by Petastorm->tf.data vs from memory, same process")


if __name__ == "__main__":
    sys.exit(main())
