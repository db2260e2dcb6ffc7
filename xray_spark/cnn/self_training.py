"""Self-training on an unlabelled archive: the model's confident tags on the target frames become
their labels, and the model trains on from its own weights (pseudo-labels; Lee, "Pseudo-label",
ICML workshop 2013).

The source model scores the target images on the executors (``labelling.scoring.predict``). A tag
scored at or above ``adapt.positive_score`` is a pseudo-positive, at or below ``adapt.negative_score``
a pseudo-negative; in between it is unknown (-1) and left out of the loss (the ``partial`` loss of
``cnn.model``). Tags the model does not output are unknown too. The pseudo-labelled frames are then
mixed with generated images and the model fine-tuned on the mix (``cnn.fine_tuning``).

The adapted model directory's manifest records the source model, the images and the pseudo-label
counts per tag. No label of the target images is read.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from xray_spark import modeldir
from xray_spark import tags as tagmod
from xray_spark.cnn.fine_tuning import as_target, fine_tune
from xray_spark.labelling.scoring import predict

log = logging.getLogger(__name__)


def pseudo_labelled(spark, directory: str | Path, images_url: str, predictions_url: str, *,
                    positive: float, negative: float):
    """The target images with the source model's confident tags as labels (``tags``: 1, 0 or -1
    unknown over the vocabulary), as fine-tuning targets (``as_target``)."""
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
    return as_target(images.drop("tags", "tag_names", "labelled").join(scores, "image_id")
                     .withColumn("tags", F.array(*[label(t) for t in tagmod.names()]).cast("array<tinyint>"))
                     .withColumn("tag_names", confident))


def self_train(spark, config, directory: str | Path, images_url: str, synthetic_url: str, *, name: str) -> dict:
    """Write the model ``name`` under ``paths.models``: ``directory``'s CNN self-trained on the
    target images of ``images_url`` mixed with the generated images of ``synthetic_url``
    (settings: ``config.adapt``). Returns its manifest."""
    settings = config.adapt
    if not settings.negative_score < settings.positive_score:
        raise ValueError(f"adapt.negative_score = {settings.negative_score} must be below adapt.positive_score "
                         f"= {settings.positive_score}")
    work = config.paths.local("models", name) / "self_training"       # beside data/, which a fresh training empties
    pseudo = pseudo_labelled(spark, directory, images_url, (work / "predictions").resolve().as_uri(),
                             positive=settings.positive_score, negative=settings.negative_score)
    manifest = fine_tune(spark, config, directory, pseudo, synthetic_url, name=name, work=work, record={
        "method": "self-training: the source model's confident tags on the target images as labels, fine-tuned "
                  "from its weights on them mixed with generated images",
        "images_url": images_url, "positive_score": settings.positive_score, "negative_score": settings.negative_score})
    log.info("self-trained %s on %d target images: %s", manifest["adaptation"]["source_model_id"],
             manifest["adaptation"]["images"], json.dumps(manifest["adaptation"]["labels"]))
    return manifest
