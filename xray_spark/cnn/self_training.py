"""Self-training on an unlabelled archive: the model's confident tags on the target frames become
their labels, and the model trains on from its own weights (pseudo-labels; Lee, "Pseudo-label",
ICML workshop 2013).

1. The source model scores the target images on the executors (``labelling.scoring.predict``).
   A tag scored at or above ``positive_score`` is a pseudo-positive, at or below ``negative_score``
   a pseudo-negative; in between it is unknown (-1) and left out of the loss (the ``partial`` loss of
   ``cnn.model``). Tags the model does not output are unknown too.
2. The pseudo-labelled frames (run ids prefixed ``target:``, so they never land in validation) are
   mixed with generated images of exact tags, repeated so that they make about ``target_share`` of
   the mix: the generated images keep the network's tags anchored while it sees the target frames.
3. ``cnn.training.train`` fine-tunes the source model's weights on the mix (``init_model``) for
   ``epochs`` at ``learning_rate``, with per-tag thresholds chosen again on generated validation runs.

The adapted model directory's manifest records the source model, the images and the pseudo-label
counts per tag. No label of the target images is read.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from xray_spark import modeldir, schema
from xray_spark import tags as tagmod
from xray_spark.cnn.model import settings_of
from xray_spark.cnn.training import train
from xray_spark.io import tables
from xray_spark.labelling.scoring import predict

log = logging.getLogger(__name__)

TARGET_RUN = "target:"


def pseudo_labelled(spark, directory: str | Path, images_url: str, predictions_url: str, *,
                    positive: float, negative: float):
    """The target images with the source model's confident tags as labels (``tags``: 1, 0 or -1
    unknown over the vocabulary), ``labelled`` true and run ids prefixed ``target:``."""
    from pyspark.sql import functions as F

    manifest = modeldir.read_manifest(directory)
    predict(spark, directory, images_url, predictions_url)
    scores = spark.read.parquet(predictions_url).filter("error IS NULL").select("image_id", "scores")
    model_tags = manifest["tags"]

    def label(name: str):
        if name not in model_tags:
            return F.lit(-1)
        score = F.col("scores")[model_tags.index(name)]
        return F.when(score >= positive, 1).when(score <= negative, 0).otherwise(-1)

    confident = F.filter(F.array(*[F.when(F.col("scores")[j] >= positive, F.lit(t)) for j, t in enumerate(model_tags)]),
                         lambda t: t.isNotNull())
    images = spark.read.parquet(images_url)
    return (images.drop("tags", "tag_names", "labelled").join(scores, "image_id")
            .withColumn("tags", F.array(*[label(t) for t in tagmod.names()]).cast("array<tinyint>"))
            .withColumn("tag_names", confident).withColumn("labelled", F.lit(True))
            .withColumn("run_id", F.concat(F.lit(TARGET_RUN), "run_id"))
            .select(*schema.IMAGES.names))


def mix(spark, pseudo, synthetic_url: str, target_share: float):
    """The pseudo-labelled frames, repeated to about ``target_share`` of the mix, and the labelled
    generated images of ``synthetic_url``; returns (mix, generated rows, target rows, repeats)."""
    from pyspark.sql import functions as F

    synthetic = spark.read.parquet(synthetic_url).filter("labelled").select(*schema.IMAGES.names)
    n_synthetic, n_target = synthetic.count(), pseudo.count()
    if not n_synthetic or not n_target:
        raise ValueError(f"self-training needs labelled generated images ({synthetic_url}: {n_synthetic}) "
                         f"and target images ({n_target})")
    repeats = max(1, round(target_share * n_synthetic / ((1.0 - target_share) * n_target)))
    repeated = (pseudo.withColumn("copy", F.explode(F.sequence(F.lit(1), F.lit(repeats))))
                .withColumn("image_id", F.concat("image_id", F.lit("#"), "copy")).drop("copy"))
    return synthetic.unionByName(repeated), n_synthetic, n_target, repeats


def pseudo_label_counts(spark, pseudo_url: str, model_tags: list[str]) -> dict:
    """Per model tag: [pseudo-positives, pseudo-negatives, unknown] over the target frames."""
    from pyspark.sql import functions as F

    index = [tagmod.names().index(t) for t in model_tags]
    table = spark.read.parquet(pseudo_url)
    row = table.select(*[F.sum((F.col("tags")[i] == v).cast("int")).alias(f"t{i}_{v + 1}")
                         for i in index for v in (1, 0, -1)]).first()
    return {t: [int(row[f"t{i}_{v + 1}"] or 0) for v in (1, 0, -1)] for t, i in zip(model_tags, index)}


def self_train(spark, config, directory: str | Path, images_url: str, synthetic_url: str, *, name: str) -> dict:
    """Write the model ``name`` under ``paths.models``: ``directory``'s CNN self-trained on the
    target images of ``images_url`` mixed with the generated images of ``synthetic_url``
    (settings: ``config.adapt``). Returns its manifest."""
    settings = config.adapt
    if not settings.negative_score < settings.positive_score:
        raise ValueError(f"adapt.negative_score = {settings.negative_score} must be below adapt.positive_score "
                         f"= {settings.positive_score}")
    source = modeldir.read_manifest(directory)
    if source["kind"] != "cnn":
        raise ValueError(f"{directory}: a {source['kind']} model; self-training trains a CNN (kind cnn) on"
                         + ("; self-train a member (under members/) and build the ensemble again"
                            if source["kind"] == "ensemble" else ""))
    output = config.paths.local("models", name)
    work = output / "self_training"       # beside data/, which a fresh training empties
    pseudo = pseudo_labelled(spark, directory, images_url, (work / "predictions").resolve().as_uri(),
                             positive=settings.positive_score, negative=settings.negative_score)
    pseudo_url = tables.write_table(pseudo, (work / "pseudo_labelled").resolve().as_uri(),
                                    config.tables.row_group_size_mb)
    mixed, n_synthetic, n_target, repeats = mix(spark, spark.read.parquet(pseudo_url), synthetic_url,
                                               settings.target_share)
    mixed_url = tables.write_table(mixed, (work / "mix").resolve().as_uri(), config.tables.row_group_size_mb)
    cnn = dataclasses.replace(config.cnn, model_name=name, epochs=settings.epochs, learning_rate=settings.learning_rate,
                              warmup_epochs=0, tag_set=source["training"]["cnn"]["tag_set"],
                              preset=source["training"]["cnn"]["preset"], **settings_of(source["architecture"]))
    results = train(spark, dataclasses.replace(config, cnn=cnn), mixed_url, fresh=True, init_model=Path(directory))
    manifest = results[0]["manifest"]
    manifest["adaptation"] = {
        "method": "self-training: the source model's confident tags on the target images as labels, fine-tuned "
                  "from its weights on them mixed with generated images",
        "source_model_id": source["model_id"], "source_metrics": source.get("metrics", {}),
        "images_url": images_url, "images": n_target, "synthetic_url": synthetic_url, "synthetic_images": n_synthetic,
        "target_repeats": repeats, "positive_score": settings.positive_score, "negative_score": settings.negative_score,
        "epochs": settings.epochs, "learning_rate": settings.learning_rate,
        "pseudo_labels": pseudo_label_counts(spark, pseudo_url, source["tags"]),
    }
    modeldir.write_manifest(output, manifest)
    log.info("self-trained %s on %d target images: %s", source["model_id"], n_target,
             json.dumps(manifest["adaptation"]["pseudo_labels"]))
    return modeldir.read_manifest(output)
