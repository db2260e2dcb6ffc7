"""Ensembles (``xray_spark.ensemble``, `xray-spark ensemble`) on real Spark with the shipped CNNs:
the scores are the members' mean, the thresholds are chosen on the labelled images for those
scores, predict, embeddings and AdaBN take an ensemble like a CNN, and bad members are refused."""
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from explore_tables import build

from xray_spark import ensemble, modeldir, schema
from xray_spark.cli import main
from xray_spark.cnn.adaptation import adapt
from xray_spark.cnn.fine_tuning import fine_tune
from xray_spark.config import load_config
from xray_spark.explore.embeddings import EmbeddingSettings, PenultimateLayer, embed_rows, embedding_dimension
from xray_spark.labelling.scoring import predict, predictions_of, score_batch
from xray_spark.paths import SHIPPED_MODEL, SHIPPED_MODELS

SHIPPED = SHIPPED_MODELS / SHIPPED_MODEL


def shipped_members():
    return ensemble.member_dirs(SHIPPED, modeldir.read_manifest(SHIPPED))


@pytest.fixture(scope="module")
def beamtime(spark, tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "explore"
    root.mkdir(exist_ok=True)
    return build(spark, root)


@pytest.fixture(scope="module")
def images(beamtime):
    table = ds.dataset(beamtime["images"][len("file://"):], partitioning="hive").to_table().sort_by("image_id")
    rows = table.to_pydict()
    pixels = schema.decode_images(rows["image"], rows["height"][0], rows["width"][0])
    return rows, pixels


@pytest.fixture(scope="module")
def two(spark, beamtime, tmp_path_factory):
    """An ensemble of the shipped model's first two members, thresholds chosen on the 24 images."""
    root = tmp_path_factory.mktemp("ensemble")
    members = shipped_members()[:2]
    manifest = ensemble.build(spark, members, beamtime["images"], root / "two", "two",
                              predictions_url=(root / "thresholds").as_uri())
    return root, members, manifest


def test_the_shipped_model_is_an_ensemble_of_cnns_and_scores_the_members_mean(images):
    rows, pixels = images
    scorer = modeldir.load(SHIPPED)
    assert scorer.manifest["kind"] == "ensemble" and len(scorer.members) >= 2
    assert all(m.manifest["kind"] == "cnn" for m in scorer.members)
    alone = [modeldir.load(d) for d in shipped_members()]
    expected = np.mean([m.score(pixels)[:, [m.tags.index(t) for t in scorer.tags]] for m in alone], axis=0)
    np.testing.assert_allclose(scorer.score(pixels), expected, rtol=1e-6, atol=1e-7)
    assert not np.allclose(alone[0].score(pixels), alone[1].score(pixels), atol=1e-3)   # members differ


def test_thresholds_are_chosen_for_the_mean_scores_and_predict_loads_the_ensemble(spark, beamtime, images, two):
    root, members, manifest = two
    rows, pixels = images
    scorer = modeldir.load(root / "two")
    scores = scorer.score(pixels)
    labels = np.asarray([[1 if t in set(names) else 0 for t in scorer.tags] for names in rows["tag_names"]])
    np.testing.assert_allclose(manifest["thresholds"], modeldir.choose_thresholds(labels, scores), rtol=1e-6)
    mean_thresholds = np.mean([modeldir.read_manifest(m)["thresholds"] for m in members], axis=0)
    assert not np.allclose(manifest["thresholds"], mean_thresholds)           # chosen again, not averaged
    assert manifest["metrics"]["validation"]["images"] == 24 and manifest["inference_batch"] == 32
    assert [m["model_id"] for m in manifest["training"]["members"]] == [modeldir.read_manifest(m)["model_id"]
                                                                         for m in members]
    assert sorted(p.name for p in (root / "two" / "members").iterdir()) == sorted(
        f"{i}-{modeldir.read_manifest(m)['model_id']}" for i, m in enumerate(members))   # self-contained copies

    result = predict(spark, root / "two", beamtime["images"], (root / "predicted").as_uri())
    assert (result["rows"], result["errors"], result["model_id"]) == (24, 0, manifest["model_id"])
    table = spark.read.parquet((root / "predicted").as_uri()).select("image_id", "scores").collect()
    by_id = {r["image_id"]: np.asarray(r["scores"], np.float32) for r in table}
    np.testing.assert_allclose(np.stack([by_id[i] for i in rows["image_id"]]), scores, rtol=1e-5, atol=1e-6)


def test_an_ensemble_embeds_with_its_members_penultimate_layers(images, two):
    root, members, _ = two
    rows, pixels = images
    hidden, scores = PenultimateLayer(root / "two")(pixels)
    parts = [PenultimateLayer(m)(pixels) for m in members]
    np.testing.assert_allclose(hidden, np.concatenate([h for h, _ in parts], axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores, modeldir.load(root / "two").score(pixels), rtol=1e-5, atol=1e-6)
    settings = EmbeddingSettings.from_config(load_config(None, []))
    assert embedding_dimension(root / "two", settings) == 2 * 256 + 2 * settings.grid.bins + 17
    embedded = embed_rows(rows, PenultimateLayer(root / "two"), settings).to_pydict()
    assert {len(e) for e in embedded["embedding"]} == {embedding_dimension(root / "two", settings)}


def test_adabn_adapts_every_member_and_keeps_the_thresholds(spark, beamtime, two):
    root, members, manifest = two
    adapted = adapt(spark, root / "two", beamtime["images"], root / "two-adapted", name="two-adapted")
    assert adapted["kind"] == "ensemble" and adapted["adaptation"]["source_model_id"] == manifest["model_id"]
    assert adapted["thresholds"] == manifest["thresholds"] and adapted["adaptation"]["images"] == 24
    for source, relative in zip(ensemble.member_dirs(root / "two", manifest), adapted["members"]):
        member = modeldir.read_manifest(root / "two-adapted" / relative)
        assert member["adaptation"]["source_model_id"] == modeldir.read_manifest(source)["model_id"]
    result = predict(spark, root / "two-adapted", beamtime["images"], (root / "adapted-predicted").as_uri())
    assert (result["rows"], result["errors"], result["model_id"]) == (24, 0, adapted["model_id"])


def test_members_that_do_not_fit_together_are_refused(tmp_path, capsys):
    first, second = shipped_members()[:2]
    other = tmp_path / "other"
    shutil.copytree(second, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["tags"][0] = "Polymer" if manifest["tags"][0] != "Polymer" else "Thin film"
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(modeldir.ModelDirError, match="scores other tags"):
        ensemble.assemble([first, other], tmp_path / "bad", "bad")
    assert main(["--set", f"paths.root={tmp_path}", "ensemble", "--members", str(first), str(other),
                 "--images", "x", "--output", "bad"]) == 2
    assert "must score the same tags" in capsys.readouterr().err
    assert main(["--set", f"paths.root={tmp_path}", "ensemble", "--members", str(first), "--images", "x",
                 "--output", "bad"]) == 2
    assert "two or more" in capsys.readouterr().err

    escaping = tmp_path / "escaping"
    escaping.mkdir()
    shipped = json.loads((SHIPPED / "manifest.json").read_text())
    (escaping / "manifest.json").write_text(json.dumps({**shipped, "members": ["../other", "members/x"]}))
    with pytest.raises(modeldir.ModelDirError, match="not a directory inside the ensemble"):
        modeldir.load(escaping)


def test_fine_tuning_refuses_a_model_that_is_not_a_cnn_before_it_starts(tmp_path):
    config = load_config(None, [f"paths.root={tmp_path}"])
    bof = tmp_path / "bof"
    bof.mkdir()
    modeldir.write_manifest(bof, {**{k: v for k, v in modeldir.read_manifest(SHIPPED).items()
                                     if k not in ("members", "created", "versions", "format")}, "kind": "bof"})
    with pytest.raises(ValueError, match="a bof model; fine-tuning trains a CNN"):
        fine_tune(None, config, bof, None, "unused", name="tuned", work=tmp_path, record={})


def test_the_stream_labels_with_the_scores_of_its_embedding_pass(images):
    """The stream embeds each frame and takes the labels of the same model from that forward pass
    (``scoring.predictions_of``): they are predict's labels."""
    rows, _ = images
    network = PenultimateLayer(SHIPPED)
    embedded = embed_rows(rows, network, EmbeddingSettings.from_config(load_config(None, [])))
    reused = predictions_of(rows, network, embedded.column("scores").to_pylist()).to_pydict()
    direct = score_batch(pa.RecordBatch.from_pydict(rows), modeldir.load(SHIPPED)).to_pydict()
    np.testing.assert_allclose(np.stack(reused["scores"]), np.stack(direct["scores"]), rtol=1e-5, atol=1e-5)
    for key in ("image_id", "model_id", "model_kind", "tag_names", "labels", "error"):
        assert reused[key] == direct[key], key
