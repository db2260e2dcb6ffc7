"""Accuracy of the bag of features on synthetic data, the paper's two protocols.

Training and test images come from the generator with different seeds (2000 and 800 images by
default). The dictionary is built on the training images only; one exponential chi-square SVM
per label is cross-validated and trained on the training features; AP per label is measured on
the test images.

- ``bof_map_attributes20``: mAP over the 20 high-level attributes (``tags.ATTRIBUTES_20``;
  paper: 0.6705 on its synthetic data; target here >= 0.80);
- ``bof_map_top17``: mAP over the 17 most frequent tags.
Baseline: the mAP of random scores (the mean positive rate of the scored labels). The tables in
the paper's Table I shape go to ``bench/results/bof_map_<labels>.md``.

``python -m bench.bench_bof_accuracy [TRAIN_URL TEST_URL]`` reuses existing images tables.
"""
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.harness import RESULTS, record

N_TRAIN, N_TEST, SEED_TRAIN, SEED_TEST = 2000, 800, 11, 12
BOF = ["bof.patches_per_image=300", "bof.words=200", "bof.sample_size=200000"]


def main(train_url: str | None = None, test_url: str | None = None):
    from pyspark.ml import PipelineModel

    from xray_spark import tags
    from xray_spark.bof import pipeline
    from xray_spark.config import load_config
    from xray_spark.io import tables
    from xray_spark.metrics import evaluate, results_table
    from xray_spark.spark import build_session

    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    config = load_config(None, ["spark.ui=false", "progress.console=never", "simulate.images_per_run=25", *BOF])
    spark = build_session(config, "bench-bof-accuracy")
    with tempfile.TemporaryDirectory(prefix="bench-bof-accuracy-") as tmp:
        if train_url is None:
            from xray_spark.simulate import generate_images

            train_url, test_url = Path(tmp, "train").as_uri(), Path(tmp, "test").as_uri()
            tables.write_table(generate_images(spark, config, n_images=N_TRAIN, seed=SEED_TRAIN), train_url, 32)
            tables.write_table(generate_images(spark, config, n_images=N_TEST, seed=SEED_TEST), test_url, 32)
        train_images, test_images = spark.read.parquet(train_url), spark.read.parquet(test_url)
        descriptors, dictionary, pyramid, _ = pipeline.stages(config)
        dictionary = dictionary.fit(descriptors.transform(train_images))
        features = PipelineModel([descriptors, dictionary, pyramid])
        for name, images in (("train", train_images), ("test", test_images)):
            tables.write_table(features.transform(images).select("image_id", "run_id", "tags", "labelled", "features"),
                               Path(tmp, name + "_features").as_uri(), 32)
        train = spark.read.parquet(Path(tmp, "train_features").as_uri()).filter("features is not null")
        test = spark.read.parquet(Path(tmp, "test_features").as_uri()).filter("features is not null")
        n_train, n_test = train.count(), test.count()
        for label_set in ("attributes20", "top17"):
            svms = pipeline.stages(load_config(None, [f"bof.label_set={label_set}", *BOF]))[3].fit(train)
            rows = svms.transform(test).select("tags", "scores").collect()
            labels, names = tags.labels(np.array([r["tags"] for r in rows], np.int8), label_set)
            results = evaluate(np.array([r["scores"] for r in rows]), labels, names, method="BoF (chi2 SVM)",
                               label_set=label_set, n_train_images=n_train)
            (RESULTS / f"bof_map_{label_set}.md").write_text(results_table([results]))
            chance = float(np.mean([labels[:, j].mean() for j in range(len(names)) if labels[:, j].any()]))
            record(f"bof_map_{label_set}", figure=lambda: results.mean_ap, baseline=lambda: chance, unit="mAP",
                   repeats=1, target="mAP >= 0.80" if label_set == "attributes20" else "",
                   sizes={"train_images": n_train, "test_images": n_test, "labels_scored": results.n_scored,
                          "train_seed": SEED_TRAIN, "test_seed": SEED_TEST, "bof": BOF},
                   notes=f"AP per label: {dict(zip(names, np.round(results.ap, 4).tolist()))}; baseline = mAP of "
                         "random scores (mean positive rate); paper: 0.6705 (synthetic, 20 attributes)")
    spark.stop()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
