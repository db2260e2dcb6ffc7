"""CNN inference speed per CPU core, for the `cpu` and `paper` presets, against the detector rate.

Figure: images per CPU-second of one core (TensorFlow limited to one thread; the process's CPU
time, so that other work on this shared machine does not count against it) with the network
the ``predict`` job loads, on stored 256x256 images (resizing to the input size included),
batches of ``cnn.inference_batch``. The wall-clock rate of the same passes is in ``notes``. Baseline: the rate a detector writes at 1 million images a day
(11.6 images/s sustained): a ratio above 1 means one core keeps up with the beamline.
"""
import sys
import time

import numpy as np

from bench.harness import record

STORED, BATCH, TAGS = 256, 64, 17
DETECTOR_RATE = 1_000_000 / 86_400  # images/s of a detector writing 1M images a day


def main():
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from xray_spark.cnn.model import PRESETS, build_model

    images = np.random.default_rng(0).random((BATCH, STORED, STORED, 1), dtype=np.float32)
    for preset, batches in (("cpu", 8), ("paper", 2)):
        model = build_model(PRESETS[preset], TAGS)
        model(images[:2], training=False)  # build and trace once

        wall_rates = []

        def rate(model=model, batches=batches):
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(batches):
                model(images, training=False).numpy()
            wall_rates.append(batches * BATCH / (time.perf_counter() - start))
            return batches * BATCH / (time.process_time() - cpu)

        measured = iter([rate() for _ in range(3)])  # measured first, so the notes carry the wall rates
        record(f"cnn_inference_{preset}", figure=lambda: next(measured), baseline=lambda: DETECTOR_RATE,
               unit="images/s per core", repeats=3, target="ratio >= 1: one core keeps up with 1M images/day",
               sizes={"preset": preset, "parameters": model.count_params(), "stored_size": STORED,
                      "input_size": PRESETS[preset].input_size, "batch": BATCH, "tags": TAGS, "threads": 1},
               notes="baseline = detector rate of 1M images/day (constant, not measured); figure = images "
                     "per CPU-second of forward passes of the model predict loads, one TensorFlow thread; "
                     f"wall-clock images/s of the same passes on this shared machine: {[round(w, 1) for w in wall_rates]}")


if __name__ == "__main__":
    sys.exit(main())
