"""Scoring an `images` table (synthetic or archive) with any model directory (the `predict` job).

The model (CNN or bag of features, see ``xray_spark.modeldir``) is loaded once per executor
Python worker (Spark reuses workers between tasks, and ``_scorer`` caches the loaded model), then
scores the Arrow batches of its partitions (``mapInArrow``): the driver never sees an image.
Every row of the input gets one row in the `predictions` table (``schema.PREDICTIONS``): per-tag
scores (a real file that states its detector gives the detector tags: ``detector_tags``), the tags
at or above the model's per-tag thresholds (chosen on validation when the model was trained), the
true labels when the image is labelled, or the reason it could not be scored.
The table is written with ``tables.write_table``: a rerun replaces it, never appends.

When the scored images are labelled, the job also prints AP per tag and mAP
(``metrics.results_table``) and can write them as JSON (``--evaluation``).
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa

from xray_spark import metrics, modeldir, schema
from xray_spark import tags as tagmod
from xray_spark.io import tables
from xray_spark.labelling import detector_tags
from xray_spark.spark import stage
from xray_spark.worker import freeze_imports

log = logging.getLogger(__name__)

INPUT_COLUMNS = ["image_id", "run_id", "height", "width", "image", "mask", "tags", "labelled", "detector", "provenance"]


@functools.lru_cache(maxsize=2)
def _scorer(directory: str, model_id: str):
    """The model of ``directory``, loaded once per Python worker (keyed by model id too, so a
    retrained model in the same directory is reloaded)."""
    return modeldir.load(directory)


def _row_error(image: bytes, mask: bytes, height: int, width: int) -> str | None:
    if height <= 0 or width <= 0:
        return f"image shape {height}x{width} is not positive"
    if len(image) != 4 * height * width:
        return f"image has {len(image)} bytes, expected {4 * height * width} (float32, {height}x{width})"
    if len(mask) != height * width:
        return f"mask has {len(mask)} bytes, expected {height * width} (uint8, {height}x{width})"
    return None


def score_batch(batch: pa.RecordBatch, scorer) -> pa.RecordBatch:
    """One Arrow batch of the `images` table -> the matching batch of the `predictions` table."""
    rows = batch.to_pydict()
    n = batch.num_rows
    errors = [_row_error(*r) for r in zip(rows["image"], rows["mask"], rows["height"], rows["width"])]
    scores: list = [None] * n
    shapes = {(rows["height"][i], rows["width"][i]) for i in range(n) if errors[i] is None}
    for h, w in shapes:  # one forward pass per stored image size in the batch
        members = [i for i in range(n) if errors[i] is None and (rows["height"][i], rows["width"][i]) == (h, w)]
        images = schema.decode_images([rows["image"][i] for i in members], h, w)
        masks = schema.decode_masks([rows["mask"][i] for i in members], h, w)
        for i, s in zip(members, scorer.score(images, masks)):
            scores[i] = np.asarray(s, np.float32)
    return predictions_of(rows, scorer, scores, errors)


def predictions_of(rows: dict, scorer, scores: list, errors: list | None = None) -> pa.RecordBatch:
    """The `predictions` batch of image rows (a dict of the `images` columns) whose ``scores`` by
    ``scorer`` are known (None for a row that has no valid image): tags at or above the thresholds,
    true labels, the reason a row was not scored. The stream passes the scores of its embedding's
    forward pass here, so a frame goes through the network once. ``errors``: each row's
    ``_row_error``, when the caller has them. The detector tags of a real file that states its
    detector are the file's (``detector_tags``), not the network's."""
    n = len(rows["image_id"])
    index = [tagmod.names().index(t) for t in scorer.tags]
    if errors is None:
        errors = [_row_error(*r) for r in zip(rows["image"], rows["mask"], rows["height"], rows["width"])]
    scores = [None if e is not None or s is None else
              detector_tags.with_stated_detector(np.asarray(s, np.float32), scorer.tags,
                                                 detector_tags.stated_detector(p, d))
              for s, e, p, d in zip(scores, errors, rows["provenance"], rows["detector"])]
    predicted = [None if s is None else modeldir.predicted_tags(s[None, :], scorer.thresholds, scorer.tags)[0]
                 for s in scores]
    labels = [np.asarray(t, np.int8)[index] if lab else None for t, lab in zip(rows["tags"], rows["labelled"])]
    return pa.RecordBatch.from_pydict({
        "image_id": rows["image_id"], "run_id": rows["run_id"],
        "model_id": [scorer.manifest["model_id"]] * n, "model_kind": [scorer.manifest["kind"]] * n,
        "scored_tags": [scorer.tags] * n, "scores": scores, "tag_names": predicted, "labels": labels,
        "error": errors,
    }, schema=schema.PREDICTIONS)


def score_batches(batches, directory: str, model_id: str):
    """mapInArrow function: load (or reuse) the model, score every batch."""
    freeze_imports()
    scorer = _scorer(directory, model_id)
    for batch in batches:
        yield score_batch(batch, scorer)


def predict(spark, directory: str | Path, images_url: str, output_url: str, *, row_group_size_mb: int = 32,
            interval_s: float = 30.0) -> dict:
    """Score ``images_url`` with the model directory ``directory``, write ``output_url``; returns
    counts and, when the images are labelled, the evaluation (``metrics.Results``)."""
    manifest = modeldir.read_manifest(directory)  # a bad model directory fails here, on the driver
    images = spark.read.parquet(images_url).select(*INPUT_COLUMNS)
    scored = images.mapInArrow(functools.partial(score_batches, directory=str(directory),
                                                 model_id=manifest["model_id"]),
                               schema.spark_schema(schema.PREDICTIONS))
    with stage(spark, f"predict: {manifest['model_id']}", interval_s):
        tables.write_table(scored, output_url, row_group_size_mb)
    table = spark.read.parquet(output_url)
    counts = table.selectExpr("count(*) AS rows", "count(error) AS errors",
                              "count_if(labels IS NOT NULL AND error IS NULL) AS labelled").first()
    result = {"model_id": manifest["model_id"], "rows": counts["rows"], "errors": counts["errors"],
              "labelled": counts["labelled"], "evaluation": None}
    if counts["labelled"]:
        # scores and labels of the labelled rows: n x n_tags numbers, a small aggregate
        pairs = table.filter("labels IS NOT NULL AND error IS NULL").select("scores", "labels").toPandas()
        result["evaluation"] = metrics.evaluate(
            np.stack(pairs["scores"].to_numpy()), np.stack(pairs["labels"].to_numpy()), manifest["tags"],
            method=manifest["kind"], label_set=f"{len(manifest['tags'])} tags of {manifest['model_id']}",
            n_train_images=manifest.get("training", {}).get("train_rows"))
    return result
