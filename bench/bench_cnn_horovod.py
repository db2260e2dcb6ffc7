"""Horovod scaling of CNN training on this machine: 2 ranks against 1 rank.

Figure: training images/s of ``train_cnn`` (`cpu` preset, Petastorm feed, one TensorFlow
thread per rank) with 2 Horovod ranks started by ``horovod.spark.run`` on a two-executor
``local-cluster``. Baseline: the same with 1 rank. ``scaling_efficiency`` = ratio / 2. Each
figure is the median over the epochs after the first (the first includes tracing and reader
start-up).
"""
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench.harness import RESULTS, random_images, record

N, SIZE, EPOCHS = 3072, 256, 3


def main():
    from xray_spark.cnn import training
    from xray_spark.config import load_config
    from xray_spark.io import tables
    from xray_spark.spark import build_session

    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    base = ["spark.master=local-cluster[2,1,1024]", "spark.executor_memory=768m", "spark.ui=false",
            "progress.console=never", f"cnn.epochs={EPOCHS}", "cnn.warmup_epochs=0", "cnn.threads_per_rank=1",
            "cnn.validation_fraction=0.125"]
    spark = build_session(load_config(None, base), "bench-cnn-horovod")
    with tempfile.TemporaryDirectory(prefix="bench-cnn-horovod-") as tmp:
        url = Path(tmp, "images").as_uri()
        tables.write_table(random_images(spark, N, SIZE, runs=8), url, 32)

        def rate(ranks: int):
            config = load_config(None, [*base, f"paths.root={tmp}/r{ranks}", f"horovod.num_proc={ranks}"])
            history = training.train(spark, config, url, fresh=True)[0]["history"]
            return statistics.median(e["images_per_s"] for e in history[1:])

        result = record("cnn_horovod_scaling", figure=lambda: rate(2), baseline=lambda: rate(1),
                        unit="training images/s", repeats=1,
                        target="scaling_efficiency = ratio / 2 (1.0 = linear)",
                        sizes={"images": N, "stored_size": SIZE, "preset": "cpu", "batch_per_rank": 32,
                               "epochs": EPOCHS, "threads_per_rank": 1, "ranks": [2, 1]},
                        notes="horovod.spark.run on local-cluster[2,1,1024], Gloo over lo; 2 cores shared "
                              "with the Petastorm readers and Spark")
    spark.stop()
    result["scaling_efficiency"] = result["ratio"] / 2
    (RESULTS / "cnn_horovod_scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"cnn_horovod_scaling: efficiency {result['scaling_efficiency']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
