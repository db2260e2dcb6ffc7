"""CNN training with real Horovod on the two-executor cluster, resumed from its checkpoint, then
batch inference into the predictions table.

One tiny table (32x32 images, a bright ring => "Ring: Isotropic", a bright line => "Horizon")
feeds one training, stopped after its first epoch and resumed for the second; the tests below
share it (module fixture) because each Horovod start costs tens of seconds.
"""
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from cnn_tables import TAGS, ring_image, write_ring_table
from conftest import CLUSTER

from xray_spark import ensemble, modeldir, schema
from xray_spark import tags as tagmod
from xray_spark.cnn import training
from xray_spark.cnn.data import TARGET_RUN
from xray_spark.cnn.self_training import self_train
from xray_spark.cnn.tagged_training import train_on_tagged
from xray_spark.config import load_config
from xray_spark.io.rows import image_id
from xray_spark.labelling.scoring import predict

pytestmark = pytest.mark.horovod

TINY = ["cnn.input_size=32", "cnn.batch_size=8", "cnn.epochs=2", "cnn.warmup_epochs=1",
        "cnn.learning_rate=0.02", "cnn.validation_fraction=0.25", "cnn.shuffle_buffer=64"]


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("cnn")
    config = load_config(None, [*CLUSTER, f"paths.root={root}", *TINY])
    images = write_ring_table(spark, (root / "images").as_uri(), 192)
    first = training.train(spark, config, images, stop_after_epochs=1)
    second = training.train(spark, config, images)
    return config, images, first, second


def test_two_ranks_lower_the_loss_and_end_with_identical_weights(trained):
    config, _, first, second = trained
    assert [r["rank"] for r in first] == [0, 1] and all(r["ranks"] == 2 for r in first)
    loss = [first[0]["history"][0]["loss"], second[0]["history"][0]["loss"]]
    assert loss[1] < 0.7 * loss[0]
    assert first[0]["weights_digest"] == first[1]["weights_digest"]
    assert second[0]["weights_digest"] == second[1]["weights_digest"]
    manifest = second[0]["manifest"]
    assert manifest["metrics"]["validation"]["mAP"] > 0.7  # chance: about 0.4 (positive rates 1/2, 1/3)
    assert manifest["training"]["ranks"] == 2


def test_resume_continues_from_the_saved_step_without_lost_or_repeated_epochs(trained):
    config, _, first, second = trained
    steps = first[0]["steps_per_epoch"]
    assert steps == 144 // (8 * 2)  # 192 images, 2 of 8 runs held out: 144 train images
    assert [r["finished"] for r in first] == [False, False]
    assert [e["epoch"] for e in first[0]["history"]] == [0] and first[0]["iterations"] == steps
    assert second[0]["initial_epoch"] == 1 and [e["epoch"] for e in second[0]["history"]] == [1]
    assert second[0]["iterations"] == 2 * steps  # the optimizer step count was restored
    epochs = second[0]["manifest"]["training"]["epochs"]
    assert [e["epoch"] for e in epochs] == [0, 1]
    assert all(0.0 < e["val_mAP"] <= 1.0 for e in epochs)  # validation scored after every epoch


def test_training_split_is_by_run_and_frozen(trained):
    config, _, _, second = trained
    plan = json.loads((config.paths.local("models", config.cnn.model_name) / "data" / "plan.json").read_text())
    train_runs = set(pd.read_parquet(plan["train_url"][len("file://"):], columns=["run_id"]).run_id)
    assert len(plan["validation_runs"]) == 2 and not train_runs & set(plan["validation_runs"])
    files = list((config.paths.local("models", config.cnn.model_name) / "data" / "train").glob("*.parquet"))
    assert sum(pq.ParquetFile(f).num_row_groups for f in files) >= 2  # one shard per rank at least


def test_predict_writes_the_table_idempotently_with_the_models_scores(spark, trained, tmp_path):
    config, _, _, second = trained
    test_images = write_ring_table(spark, (tmp_path / "test").as_uri(), 48, start=1000)
    output = (tmp_path / "predictions").as_uri()
    directory = str(config.paths.local("models", config.cnn.model_name))
    result = predict(spark, directory, test_images, output)
    assert result["rows"] == 48 and result["errors"] == 0
    first = pd.read_parquet(tmp_path / "predictions").sort_values("image_id").reset_index(drop=True)
    assert pq.read_schema(next((tmp_path / "predictions").glob("*.parquet"))).names == schema.PREDICTIONS.names
    assert first.model_id.unique().tolist() == [second[0]["manifest"]["model_id"]]

    predict(spark, directory, test_images, output)  # rerun: replaced, not appended
    again = pd.read_parquet(tmp_path / "predictions").sort_values("image_id").reset_index(drop=True)
    assert len(again) == 48 and again.image_id.is_unique
    np.testing.assert_allclose(np.stack(again.scores), np.stack(first.scores))

    # the executors' scores are the reloaded model's scores on the driver
    scorer = modeldir.load(directory)
    i = 1005  # ring (odd) and horizon (multiple of 3)
    _, names = ring_image(i)
    stored = pd.read_parquet(tmp_path / "test", filters=[("image_id", "==", f"ring-{i:05d}")])  # as the table holds it
    local = scorer.score(schema.decode_images(stored.image, 32, 32), np.zeros((1, 32, 32), bool))[0]
    row = first.set_index("image_id").loc[f"ring-{i:05d}"]
    np.testing.assert_allclose(row.scores, local, rtol=1e-5, atol=1e-6)
    assert set(TAGS) <= set(row.scored_tags) and sorted(names) == sorted(TAGS)
    columns = [list(row.scored_tags).index(t) for t in TAGS]
    assert list(row.labels[columns]) == [1, 1]
    assert result["evaluation"].mean_ap > 0.7


def cut_between(scores, quantile):
    """A score midway between two neighbouring scores at this quantile: no score sits on the cut."""
    ordered = np.unique(scores)
    i = int(quantile * len(ordered))
    return float((ordered[i - 1] + ordered[i]) / 2)


def test_self_training_fine_tunes_on_confident_pseudo_labels_of_the_target_frames(spark, trained, tmp_path):
    """The source model's confident tags on the target frames are their labels (unknown between the
    two scores); the target runs never validate; the model starts from the source's weights and is
    one that predict loads."""
    import dataclasses

    config, images, _, _ = trained
    source = config.paths.local("models", config.cnn.model_name)
    target = write_ring_table(spark, (tmp_path / "target").as_uri(), 48, start=5000)
    result = predict(spark, str(source), target, (tmp_path / "source-predictions").as_uri())
    scores = np.stack(pd.read_parquet(tmp_path / "source-predictions").scores)
    # cut scores between the source's own scores (a two-epoch model's scores are not calibrated), so that
    # there are pseudo-positives, pseudo-negatives and unknowns whatever the machine trained
    positive, negative = cut_between(scores, 0.9), cut_between(scores, 0.5)
    config = dataclasses.replace(config, adapt=dataclasses.replace(config.adapt, epochs=1, positive_score=positive,
                                                                   negative_score=negative))
    manifest = self_train(spark, config, source, target, images, name="self-trained")
    adaptation = manifest["adaptation"]
    assert adaptation["source_model_id"] == modeldir.read_manifest(source)["model_id"]
    assert (adaptation["images"], adaptation["synthetic_images"], adaptation["target_repeats"]) == (48, 192, 1)

    # the pseudo-label counts are the source model's scores on the target frames, cut at the two scores
    tags = modeldir.read_manifest(source)["tags"]
    for j, tag in enumerate(tags):
        s = scores[:, j]
        assert adaptation["labels"][tag] == [int((s >= positive).sum()), int((s <= negative).sum()),
                                                   int(((s > negative) & (s < positive)).sum())], tag
    assert sum(p for p, _, _ in adaptation["labels"].values()) > 0
    plan = json.loads((config.paths.local("models", "self-trained") / "data" / "plan.json").read_text())
    assert plan["partial_labels"] and plan["init_weights"].endswith("weights.h5")
    assert plan["validation_runs"] and not any(r.startswith(TARGET_RUN) for r in plan["validation_runs"])

    adapted = modeldir.load(config.paths.local("models", "self-trained"))
    before = modeldir.load(source).model.get_layer("fc7").get_weights()[0]
    after = adapted.model.get_layer("fc7").get_weights()[0]
    assert not np.array_equal(before, after) and np.corrcoef(before.ravel(), after.ravel())[0, 1] > 0.9
    again = predict(spark, str(config.paths.local("models", "self-trained")), target, (tmp_path / "p").as_uri())
    assert (again["rows"], again["errors"], again["model_id"]) == (48, 0, manifest["model_id"])
    assert result["rows"] == 48


def test_training_on_tagged_frames_takes_the_csv_tags_and_leaves_blank_cells_out(spark, trained, tmp_path):
    """The frames a labels CSV tags take its tags (a blank cell, or a tag it has no column for, is
    unknown); rows whose frame is not in the table are reported; target runs never validate. An
    ensemble has each member fine-tuned from its weights and is built again: a model predict loads."""
    import dataclasses

    from pyspark.sql import functions as F

    config, images, _, _ = trained
    config = dataclasses.replace(config, adapt=dataclasses.replace(config.adapt, epochs=1))
    source = config.paths.local("models", config.cnn.model_name)
    pair = ensemble.assemble([source, source], tmp_path / "pair", "pair")
    # an "archive" of 48 frames: frame i is the file ring/i.tif, so its image id is image_id(file, 0)
    rings = spark.read.parquet(write_ring_table(spark, (tmp_path / "rings").as_uri(), 48, start=7000))
    archive = (tmp_path / "archive").as_uri()
    rings.withColumn("image_id", F.substring(F.sha1(F.concat(F.lit("archive:ring/"), "frame", F.lit(".tif#0"))), 1, 20)) \
        .write.parquet(archive)
    csv = ["file,frame_index,Ring: Isotropic,Horizon,notes"]
    for i in range(7000, 7048):
        horizon = "" if i % 4 == 1 else int(i % 3 == 0)       # blank: the taggers did not settle it
        csv.append(f"ring/{i}.tif,0,{i % 2},{horizon},seen twice")
    csv += ["ring/elsewhere.tif,0,1,0,not ingested", "ring/7000.tif,3,1,0,no such frame"]
    (tmp_path / "tags.csv").write_text("\n".join(csv) + "\n")

    manifest = train_on_tagged(spark, config, tmp_path / "pair", archive, tmp_path / "tags.csv", images, name="tagged")
    adaptation = manifest["adaptation"]
    assert (adaptation["images"], adaptation["synthetic_images"]) == (48, 192)
    assert adaptation["source_model_id"] == pair["model_id"]
    assert adaptation["tagged_frames_not_found"] == [f"ring/elsewhere.tif (image id {image_id('ring/elsewhere.tif', 0)})",
                                                     f"ring/7000.tif (image id {image_id('ring/7000.tif', 3)})"]
    blank = sum(i % 4 == 1 for i in range(7000, 7048))
    horizons = sum(i % 3 == 0 and i % 4 != 1 for i in range(7000, 7048))
    assert adaptation["labels"]["Ring: Isotropic"] == [24, 24, 0]
    assert adaptation["labels"]["Horizon"] == [horizons, 48 - blank - horizons, blank]
    assert adaptation["labels"]["Ordered"] == [0, 0, 48]                   # no column: unknown on every frame
    output = config.paths.local("models", "tagged")
    target = pd.read_parquet(output / "tagged_training" / "target")
    frame = target.set_index("frame").loc[7005]               # 7005: a ring, its Horizon cell blank
    names = ["Ring: Isotropic", "Horizon"]
    assert [frame.tags[tagmod.names().index(t)] for t in names] == [1, -1] and list(frame.tag_names) == names[:1]
    assert frame.run_id.startswith(TARGET_RUN) and frame.labelled
    assert all(v == -1 for t, v in zip(tagmod.names(), frame.tags) if t not in names)

    # each member trained on from the source's weights, without validating on the target runs; the
    # members' training directories are gone once copied into the ensemble, which chose its thresholds
    assert manifest["kind"] == "ensemble" and len(manifest["members"]) == 2
    assert manifest["metrics"]["validation"]["images"] > 0
    assert not any(p.name.startswith("tagged.member") for p in output.parent.iterdir())
    before = modeldir.load(source).model.get_layer("fc7").get_weights()[0]
    for member in ensemble.member_dirs(output, manifest):
        tuned = modeldir.read_manifest(member)
        runs = tuned["training"]["validation_runs"]
        assert runs and not any(r.startswith(TARGET_RUN) for r in runs)
        assert tuned["training"]["train_rows"] > 192 * 0.75              # generated and target frames
        after = modeldir.load(member).model.get_layer("fc7").get_weights()[0]
        assert not np.array_equal(before, after) and np.corrcoef(before.ravel(), after.ravel())[0, 1] > 0.9
    again = predict(spark, str(output), archive, (tmp_path / "p").as_uri())
    assert (again["rows"], again["errors"], again["model_id"]) == (48, 0, manifest["model_id"])
