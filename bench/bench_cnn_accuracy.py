"""Accuracy of the `cpu` CNN on synthetic data: mAP over the 17 most frequent tags on a test set
generated with another seed, the paper's protocol for its CNN (paper: mAP 0.771).

Training and test images come from the generator with seeds 11 and 12 (the test set of
``bench_bof_accuracy``: same seed, size and runs, so the two mAPs compare on the same images).
``train_cnn`` trains with Horovod (2 ranks on a two-executor local-cluster) on a split by run of
the training images; ``predict`` scores the test set on the executors; AP per tag comes from
``metrics.evaluate``. Baseline: the mAP of random scores (the mean positive rate of the tags).
The table in the paper's Table I shape goes to ``bench/results/cnn_map_top17.md``.

``python -m bench.bench_cnn_accuracy [TRAIN_URL TEST_URL]`` reuses existing images tables.
"""
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import RESULTS, record

N_TRAIN, N_TEST, SEED_TRAIN, SEED_TEST = 50000, 800, 11, 12
CNN = ["cnn.preset=cpu", "cnn.epochs=30", "cnn.learning_rate=0.02", "cnn.tag_set=top17"]


def main(train_url: str | None = None, test_url: str | None = None):
    from xray_spark import metrics
    from xray_spark.cnn import training
    from xray_spark.config import load_config
    from xray_spark.io import tables
    from xray_spark.labelling.scoring import predict
    from xray_spark.spark import build_session

    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory(prefix="bench-cnn-accuracy-") as tmp:
        config = load_config(None, ["spark.master=local-cluster[2,1,1024]", "spark.executor_memory=768m",
                                    "spark.ui=false", "progress.console=never", "simulate.images_per_run=25",
                                    f"paths.root={tmp}", *CNN])
        spark = build_session(config, "bench-cnn-accuracy")
        if train_url is None:
            from xray_spark.simulate import generate_images

            train_url, test_url = Path(tmp, "train").as_uri(), Path(tmp, "test").as_uri()
            tables.write_table(generate_images(spark, config, n_images=N_TRAIN, seed=SEED_TRAIN), train_url, 32)
            tables.write_table(generate_images(spark, config, n_images=N_TEST, seed=SEED_TEST), test_url, 32)
        started = time.monotonic()
        ranks = training.train(spark, config, train_url, fresh=True)
        wall = time.monotonic() - started
        manifest = ranks[0]["manifest"]
        result = predict(spark, str(config.paths.local("models", config.cnn.model_name)), test_url, Path(tmp, "predictions").as_uri())
        spark.stop()
    results: metrics.Results = result["evaluation"]
    results = metrics.Results(**{**results.__dict__, "method": "CNN (cpu preset)", "label_set": "top17"})
    (RESULTS / "cnn_map_top17.md").write_text(metrics.results_table([results]))
    chance = float(np.mean([p / results.n_images for p in results.positives if p]))
    training = manifest["training"]
    record("cnn_map_top17", figure=lambda: results.mean_ap, baseline=lambda: chance, unit="mAP", repeats=1,
           target="mAP >= 0.90 (paper CNN: 0.771) and above the bag of features on the same test set",
           sizes={"train_images": training["train_rows"], "validation_images": training["validation_rows"],
                  "test_images": results.n_images, "train_seed": SEED_TRAIN, "test_seed": SEED_TEST,
                  "epochs": len(training["epochs"]), "ranks": training["ranks"],
                  "training_wall_s": round(wall, 1),
                  "epoch_seconds_sum": round(training["wall_time_s"], 1), "cnn": CNN,
                  "input_size": manifest["architecture"]["input_size"],
                  "validation_mAP": manifest["metrics"]["validation"]["mAP"],
                  "validation_mAP_per_epoch": [round(e["val_mAP"], 4) for e in training["epochs"]]},
           notes=f"AP per tag: {dict(zip(results.labels, np.round(results.ap, 4).tolist()))}; baseline = mAP "
                 "of random scores (mean positive rate); paper CNN: 0.771 (synthetic, 17 tags)")


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
