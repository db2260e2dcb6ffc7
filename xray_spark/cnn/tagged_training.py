"""Training on frames a scientist tagged: a few real frames of one's own beamline, tagged by eye in
a labels CSV (``datasets/real_dev/labels.csv``'s format: ``file``, ``frame_index``, one column per
tag holding 1, 0 or nothing), teach the CNN what generated images cannot.

The tagged frames of an ingested images table take the CSV's tags (a tag the CSV has no column for,
or leaves empty, is unknown and left out of the loss) and are mixed with generated images; the model
is fine-tuned on the mix from its own weights (``cnn.fine_tuning``). The manifest records the labels
file, the frames found and the label counts per tag.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

from xray_spark import tags as tagmod
from xray_spark.cnn.fine_tuning import as_target, fine_tune
from xray_spark.labelling.dev_set import read_dev_labels

log = logging.getLogger(__name__)


def csv_tags(labels_path: str | Path) -> list[str]:
    """The vocabulary tags the labels CSV has a column for (its other columns are notes); an error
    naming the file when it has no ``file``/``frame_index`` column or no tag column."""
    with open(labels_path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), [])
    missing = [c for c in ("file", "frame_index") if c not in header]
    present = [t for t in tagmod.names() if t in header]
    if missing or not present:
        raise ValueError(f"{labels_path}: a labels CSV needs the columns file, frame_index and at least one tag of "
                         f"the vocabulary (xray_spark/data/tags.csv); missing: {missing or 'every tag column'}")
    return present


def tagged_frames(spark, images_url: str, labels_path: str | Path):
    """The frames of ``images_url`` that the labels CSV tags, with its tags (-1 where unknown) as
    fine-tuning targets, and the CSV rows whose frame the table does not hold."""
    from pyspark.sql import functions as F

    tags = csv_tags(labels_path)
    labels = read_dev_labels(str(labels_path), tags)
    column = {t: j for j, t in enumerate(tags)}
    rows = [(i, [int(labels.labels[k, column[t]]) if t in column else -1 for t in tagmod.names()],
             [t for t in tags if labels.labels[k, column[t]] == 1]) for k, i in enumerate(labels.image_ids)]
    table = spark.createDataFrame(rows, "image_id string, tags array<tinyint>, tag_names array<string>")
    images = spark.read.parquet(images_url).drop("tags", "tag_names", "labelled")
    absent = {r.image_id for r in table.select("image_id").join(images.select("image_id"), "image_id", "left_anti")
              .collect()}     # only the CSV rows the table lacks: usually none
    missing = [f"{f} (image id {i})" for i, f in zip(labels.image_ids, labels.files) if i in absent]
    return as_target(images.join(F.broadcast(table), "image_id")), missing


def train_on_tagged(spark, config, directory: str | Path, images_url: str, labels_path: str | Path,
                    synthetic_url: str, *, name: str) -> dict:
    """Write the model ``name`` under ``paths.models``: ``directory``'s CNN fine-tuned on the frames
    of ``images_url`` tagged in ``labels_path``, mixed with the generated images of
    ``synthetic_url`` (settings: ``config.adapt``). Returns its manifest."""
    frames, missing = tagged_frames(spark, images_url, labels_path)
    if missing:
        log.warning("%d tagged frame(s) of %s are not in %s, left out: %s", len(missing), labels_path, images_url,
                    "; ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    work = config.paths.local("models", name) / "tagged_training"
    manifest = fine_tune(spark, config, directory, frames, synthetic_url, name=name, work=work, record={
        "method": "tagged frames: a scientist's tags of real frames as labels, fine-tuned from the model's weights "
                  "on them mixed with generated images",
        "images_url": images_url, "labels_file": str(labels_path), "tagged_frames_not_found": missing})
    log.info("trained %s on %d tagged frames of %s", manifest["adaptation"]["source_model_id"],
             manifest["adaptation"]["images"], labels_path)
    return manifest
