"""Fine-tuning a CNN on real target frames mixed with generated images: the step that self-training
(the model's own confident tags as labels) and tagged training (a scientist's tags) share.

The target frames (run ids prefixed ``target:``, so they never land in validation: ``cnn.data``)
are repeated so that they make about ``adapt.target_share`` of the mix; the generated images, with
exact tags, keep the network's tags anchored while it sees the target frames. ``cnn.training.train``
then fine-tunes the source model's weights on the mix (``init_model``) for ``adapt.epochs`` at
``adapt.learning_rate``; a tag unknown on a frame (-1) is left out of the loss, and the per-tag
thresholds are chosen again on generated validation runs.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from xray_spark import ensemble, modeldir, schema
from xray_spark import tags as tagmod
from xray_spark.cnn.data import TARGET_RUN
from xray_spark.cnn.model import settings_of
from xray_spark.cnn.training import train
from xray_spark.io import tables


def as_target(frames):
    """``frames`` (an images table with ``tags``) with ``labelled`` true and run ids prefixed
    ``target:``, in the images schema."""
    from pyspark.sql import functions as F

    return (frames.withColumn("labelled", F.lit(True)).withColumn("run_id", F.concat(F.lit(TARGET_RUN), "run_id"))
            .select(*schema.IMAGES.names))


def mix(spark, target, synthetic_url: str, target_share: float):
    """The target frames, repeated to about ``target_share`` of the mix, and the labelled generated
    images of ``synthetic_url``; returns (mix, generated rows, target rows, repeats)."""
    from pyspark.sql import functions as F

    synthetic = spark.read.parquet(synthetic_url).filter("labelled").select(*schema.IMAGES.names)
    n_synthetic, n_target = synthetic.count(), target.count()
    if not n_synthetic or not n_target:
        raise ValueError(f"fine-tuning needs labelled generated images ({synthetic_url}: {n_synthetic}) "
                         f"and target images ({n_target})")
    repeats = max(1, round(target_share * n_synthetic / ((1.0 - target_share) * n_target)))
    repeated = (target.withColumn("copy", F.explode(F.sequence(F.lit(1), F.lit(repeats))))
                .withColumn("image_id", F.concat("image_id", F.lit("#"), "copy")).drop("copy"))
    return synthetic.unionByName(repeated), n_synthetic, n_target, repeats


def label_counts(spark, target_url: str, model_tags: list[str]) -> dict:
    """Per model tag: [positives, negatives, unknown] over the target frames."""
    from pyspark.sql import functions as F

    index = [tagmod.names().index(t) for t in model_tags]
    table = spark.read.parquet(target_url)
    row = table.select(*[F.sum((F.col("tags")[i] == v).cast("int")).alias(f"t{i}_{v + 1}")
                         for i in index for v in (1, 0, -1)]).first()
    return {t: [int(row[f"t{i}_{v + 1}"] or 0) for v in (1, 0, -1)] for t, i in zip(model_tags, index)}


def tuned_cnn(spark, config, directory: Path, mixed_url: str, name: str) -> Path:
    """The CNN at ``directory`` fine-tuned on the mix as the model ``name`` (settings: ``config.adapt``)."""
    settings, source = config.adapt, modeldir.read_manifest(directory)
    cnn = dataclasses.replace(config.cnn, model_name=name, epochs=settings.epochs, learning_rate=settings.learning_rate,
                              warmup_epochs=0, tag_set=source["training"]["cnn"]["tag_set"],
                              preset=source["training"]["cnn"]["preset"], **settings_of(source["architecture"]))
    train(spark, dataclasses.replace(config, cnn=cnn), mixed_url, fresh=True, init_model=directory)
    return config.paths.local("models", name)


def fine_tune(spark, config, directory: str | Path, target, synthetic_url: str, *, name: str, work: Path,
              record: dict) -> dict:
    """Write the model ``name`` under ``paths.models``: the model at ``directory`` fine-tuned on the
    ``target`` frames (``as_target``) mixed with ``synthetic_url``'s generated images (settings:
    ``config.adapt``); ``work`` holds the intermediate tables. A CNN is fine-tuned; an ensemble has
    each member fine-tuned on the same mix and is built again from them, its thresholds chosen
    again on the generated validation runs. The manifest's ``adaptation`` is ``record`` plus the
    mix's facts and the label counts per tag. Returns the manifest."""
    settings, directory = config.adapt, Path(directory)
    source = modeldir.read_manifest(directory)
    kinds = [source["kind"]] if source["kind"] != "ensemble" else \
        [modeldir.read_manifest(m)["kind"] for m in ensemble.member_dirs(directory, source)]
    if set(kinds) != {"cnn"}:
        raise ValueError(f"{directory}: a {source['kind']} model; fine-tuning trains a CNN (kind cnn) or an ensemble "
                         "of CNNs")
    target_url = tables.write_table(target, (work / "target").resolve().as_uri(), config.tables.row_group_size_mb)
    mixed, n_synthetic, n_target, repeats = mix(spark, spark.read.parquet(target_url), synthetic_url,
                                               settings.target_share)
    mixed_url = tables.write_table(mixed, (work / "mix").resolve().as_uri(), config.tables.row_group_size_mb)
    output = config.paths.local("models", name)
    if source["kind"] == "ensemble":
        members = [tuned_cnn(spark, config, member, mixed_url, f"{name}.member{j}")
                   for j, member in enumerate(ensemble.member_dirs(directory, source))]
        manifest = ensemble.build(spark, members, (members[0] / "data" / "validation").resolve().as_uri(), output, name,
                                  predictions_url=(work / "validation_predictions").resolve().as_uri(),
                                  inference_batch=source["inference_batch"], interval_s=config.progress.interval_s)
        for member in members:                 # copied into the ensemble's members/
            shutil.rmtree(member)
    else:
        manifest = modeldir.read_manifest(tuned_cnn(spark, config, directory, mixed_url, name))
    manifest["adaptation"] = {
        **record, "source_model_id": source["model_id"], "source_metrics": source.get("metrics", {}),
        "images": n_target, "synthetic_url": synthetic_url, "synthetic_images": n_synthetic,
        "target_repeats": repeats, "epochs": settings.epochs, "learning_rate": settings.learning_rate,
        "labels": label_counts(spark, target_url, source["tags"]),
    }
    modeldir.write_manifest(output, manifest)
    return modeldir.read_manifest(output)
