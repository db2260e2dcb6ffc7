"""`nightly` on a real two-executor cluster with a real (small, untrained) CNN model directory:
new images are labelled once, a rerun of the night changes nothing, a run killed after ingest
is completed exactly once, and the HTML summary shows runs, tags, review images and quarantine."""
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import CLUSTER

from xray_spark import modeldir, schema
from xray_spark.config import load_config
from xray_spark.explore.embeddings import embed_new_images, read_embeddings
from xray_spark.explore.vector_index import load_index
from xray_spark.io import detector_writers
from xray_spark.labelling.night import nightly, score_night

NIGHT = datetime.now(timezone.utc).date().isoformat()   # the manifest's ingestion date of tonight's files
TAGS = ["Ring: Isotropic", "Horizon", "Thin film"]


def small_cnn(directory: Path) -> None:
    """A real CNN model directory (random weights) in the format train_cnn writes."""
    from xray_spark.cnn.model import WEIGHTS, Architecture, build_model

    arch = Architecture(input_size=16, width=0.05, dense_units=8, conv1_kernel=3, conv1_stride=1,
                        dropout=0.0, batch_norm=False)
    directory.mkdir(parents=True)
    build_model(arch, len(TAGS)).save_weights(str(directory / WEIGHTS), save_format="h5")
    modeldir.write_manifest(directory, {
        "kind": "cnn", "model_id": "cnn-test", "tags": TAGS, "thresholds": [0.5, 0.5, 0.5],
        "input": {"height": 32, "width": 32}, "preprocessing": {}, "architecture": arch.__dict__})


def frames(n, seed):
    return np.random.default_rng(seed).poisson(300, (n, 40, 40)).astype(np.uint32)


@pytest.fixture()
def night_setup(tmp_path):
    root = tmp_path / "archive"
    run = root / "bt1" / "run1"
    run.mkdir(parents=True)
    detector_writers.write_edf(str(run / "a.edf"), frames(2, 1))
    detector_writers.write_tiff(str(run / "b.tif"), frames(1, 2))
    (root / "bt1" / "run2").mkdir()
    (root / "bt1" / "run2" / "empty.cbf").write_bytes(b"")
    small_cnn(tmp_path / "data" / "models" / "cnn")
    config = load_config(None, CLUSTER + [f"paths.root={tmp_path / 'data'}", f"ingest.archive={root}",
                                          "tables.image_size=32", "nightly.models=[cnn]", "nightly.review_count=2",
                                          "explore.model=cnn"])
    return config, root


def predictions(spark, config):
    rows = spark.read.schema(schema.spark_schema(schema.NIGHTLY)).parquet(config.paths.nightly_predictions()).collect()
    return sorted((r["image_id"], r["model_id"], r["night"]) for r in rows), rows


def embedded(spark, config):
    return read_embeddings(spark, config.paths.url("embeddings")).collect()


def test_nightly_labels_new_images_once_and_reports(spark, night_setup):
    config, root = night_setup
    first = nightly(spark, config, NIGHT)
    assert first["labelled"] == {"cnn": 3} and first["embedded"] == 3
    assert sorted(r["image_id"] for r in embedded(spark, config)) == sorted(k[0] for k in predictions(spark, config)[0])
    model_id = embedded(spark, config)[0]["model_id"]
    index, why = load_index(config.paths.url("embeddings"), model_id, probe=4)   # rebuilt: current with the table
    assert index is not None and index.facts["rows"] == 3, why
    keys, rows = predictions(spark, config)
    assert len(keys) == len(set(keys)) == 3
    assert all(len(r["scores"]) == 3 and r["error"] is None for r in rows)
    report = Path(first["report"])
    page = report.read_text()
    assert "bt1/run1" in page and "empty_file" in page and "least confident images" in page
    pngs = sorted(p.name for p in report.parent.glob("*.png"))
    assert pngs == ["images_per_run.png", "review_cnn_test.png", "tags_cnn_test.png"]
    summary = json.loads((report.parent / "summary.json").read_text())
    assert summary["quarantined"] == 1 and summary["runs"][0]["frames"] == 3

    again = nightly(spark, config, NIGHT)                       # same night again: nothing new
    assert again["labelled"] == {"cnn": 0} and again["embedded"] == 0 and predictions(spark, config)[0] == keys
    assert report.read_text() == page

    detector_writers.write_tiff(str(root / "bt1" / "run1" / "c.tif"), frames(2, 3))
    from xray_spark.io.ingestion import ingest
    ingest(spark, config)                                       # killed after ingest, before labelling
    assert score_night(spark, config, "cnn", NIGHT) == 2       # the rerun finds exactly what is missing
    assert score_night(spark, config, "cnn", NIGHT) == 0
    assert embed_new_images(spark, config, []) == 2 and embed_new_images(spark, config, []) == 0
    assert len(embedded(spark, config)) == 5 and all(len(r["embedding"]) == 8 + 2 * 48 + 3 for r in embedded(spark, config))
    keys2, _ = predictions(spark, config)
    assert len(keys2) == len(set(keys2)) == 5 and set(keys) < set(keys2)
    assert os.path.isdir(config.paths.nightly_predictions()[7:] + f"/night={NIGHT}")


def test_tag_fractions_keep_runs_whose_images_got_no_tag(spark):
    from xray_spark.report.night_summary import tag_fractions

    rows = [("bt1", "run1", ["GISAXS"]), ("bt1", "run1", []), ("bt1", "run2", []), ("bt1", "run2", [])]
    frame = spark.createDataFrame(rows, "beamtime string, run_id string, tag_names array<string>")
    fractions = tag_fractions(frame)
    assert list(fractions.index) == ["bt1/run1", "bt1/run2"]
    assert fractions.loc["bt1/run1", "GISAXS"] == 0.5 and fractions.loc["bt1/run2", "GISAXS"] == 0.0
    nothing = tag_fractions(frame.filter("run_id = 'run2'"))       # a night on which no image got a tag
    assert list(nothing.index) == ["bt1/run2"] and nothing.shape[1] == 0
