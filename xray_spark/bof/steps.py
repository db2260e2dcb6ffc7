"""The four steps of the bag-of-features baseline, each reading and writing its tables and models
under ``paths``: the dictionary, the spatial-pyramid features, the SVMs, their evaluation.

Each is what one job runs (``build_dictionary``, ``spm_features``, ``train_svm``, ``evaluate``)
and what the demo calls; the stages themselves are in ``stages`` and ``svm``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.sql import functions as F

from xray_spark import schema, tags
from xray_spark.bof import pipeline
from xray_spark.bof.scorer import write_model_dir
from xray_spark.bof.stages import VisualDictionaryModel
from xray_spark.bof.svm import ChiSquareSVMModel, label_spec
from xray_spark.config import to_dict
from xray_spark.io import tables
from xray_spark.metrics import Results, evaluate, results_table
from xray_spark.spark import stage


def build_dictionary(spark, config, images_url: str) -> tuple[str, int, int]:
    """k-means dictionary of the training runs' patch descriptors, saved under ``<models>/bof/dictionary``;
    returns (its URL, training images, words)."""
    train = pipeline.with_split(spark.read.parquet(images_url), config).filter(F.col("split") == "train")
    descriptors, dictionary, _, _ = pipeline.stages(config)
    model = dictionary.fit(descriptors.transform(train))
    url = config.paths.under("models", "bof", "dictionary")
    model.write().overwrite().save(url)
    return url, train.count(), len(model.centres)


def spm_features(spark, config, images_url: str) -> tuple[int, int]:
    """Spatial pyramids of every image into the features table, and the images that give no patch
    into ``bof_skipped`` with their reason; returns (images read, images skipped)."""
    images = pipeline.with_split(spark.read.parquet(images_url), config)
    descriptors, _, pyramid, _ = pipeline.stages(config)
    dictionary = VisualDictionaryModel.load(config.paths.under("models", "bof", "dictionary"))
    if len(dictionary.centres) != pyramid.getOrDefault(pyramid.numWords):
        raise ValueError(f"the saved dictionary has {len(dictionary.centres)} words but "
                         f"bof.words = {pyramid.getOrDefault(pyramid.numWords)}: rebuild it or set bof.words")
    features = PipelineModel([descriptors, dictionary, pyramid]).transform(images).select(*schema.FEATURE_COLUMNS)
    url, interval = config.paths.url("features"), config.progress.interval_s
    with stage(spark, "spm_features: descriptors, words, pyramids", interval):
        tables.write_table(features, url, config.tables.row_group_size_mb)
    written = spark.read.parquet(url)
    skipped = written.filter(F.col("skip_reason").isNotNull()).select("image_id", "run_id", "skip_reason")
    with stage(spark, "spm_features: skipped table", interval):
        tables.write_table(skipped.coalesce(1), config.paths.url("bof_skipped"), config.tables.row_group_size_mb)
    return written.count(), spark.read.parquet(config.paths.url("bof_skipped")).count()


def n_train_images(model) -> int:
    return int(model.arrays()["n_train"][0])


def train_svms(spark, config, features_url: str):
    """One chi-square SVM per label of ``bof.label_set`` on the training runs' features, saved as
    ``svm-<labels>``, the whole fitted ``PipelineModel`` as ``pipeline-<labels>``, and for vocabulary
    tags the model directory ``model-<labels>`` that predict and nightly load; returns (the SVMs,
    the model directory or None)."""
    features = spark.read.parquet(features_url)
    train = features.filter((F.col("split") == "train") & F.col("labelled") & F.col("features").isNotNull())
    descriptors, _, pyramid, svms = pipeline.stages(config)
    model = svms.fit(train)
    slug = pipeline.label_slug(config.bof.label_set)
    model.write().overwrite().save(config.paths.under("models", "bof", f"svm-{slug}"))
    dictionary = VisualDictionaryModel.load(config.paths.under("models", "bof", "dictionary"))
    fitted = PipelineModel([descriptors, dictionary, pyramid, model])
    fitted.write().overwrite().save(config.paths.under("models", "bof", f"pipeline-{slug}"))
    if config.bof.label_set == "attributes20":   # a model directory scores vocabulary tags
        return model, None
    manifest = write_model_dir(
        config.paths.under("models", "bof", f"model-{slug}"), fitted, model_id=f"bof-{slug}",
        image_size=config.tables.image_size, preprocessing=to_dict(config)["preprocess"],
        training={"features": features_url, "images": n_train_images(model), "bof": to_dict(config)["bof"]},
        metrics={"cv_ap": dict(zip(model.getOrDefault(model.labelNames), model.arrays()["cv_ap"].tolist()))})
    return model, manifest.parent


def evaluate_svms(spark, config, features_url: str, out: Path) -> tuple[Results, str]:
    """AP per label and mAP of the saved SVMs on the test runs, written to ``out`` as
    ``results-<labels>.json`` and ``.md`` (a table shaped like the paper's Table I)."""
    slug = pipeline.label_slug(config.bof.label_set)
    model = ChiSquareSVMModel.load(config.paths.under("models", "bof", f"svm-{slug}"))
    features = spark.read.parquet(features_url)
    test = features.filter((F.col("split") == "test") & F.col("labelled") & F.col("features").isNotNull())
    with stage(spark, f"evaluate: scoring the test runs ({slug})", config.progress.interval_s):
        rows = model.transform(test).select("tags", "scores").collect()   # n x labels scores
    if not rows:
        raise ValueError("no labelled test image with features: run spm_features first")
    names = model.getOrDefault(model.labelNames)
    labels, label_names = tags.labels(np.array([r["tags"] for r in rows], dtype=np.int8),
                                      label_spec(config.bof.label_set))
    if label_names != names:
        raise ValueError(f"the saved SVMs score {names}, bof.label_set gives {label_names}")
    results = evaluate(np.array([r["scores"] for r in rows]), labels, names, method="BoF (chi2 SVM)",
                       label_set=config.bof.label_set, n_train_images=n_train_images(model))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"results-{slug}.json").write_text(results.to_json() + "\n")
    table = results_table([results])
    (out / f"results-{slug}.md").write_text(table)
    return results, table
