"""AdaBN adaptation (``cnn.adaptation``, `xray-spark adapt`) on real Spark with the shipped model and
the real fixture frames: the adapted batch-norm statistics are the target frames' own, computed
layer after layer, and the adapted directory is a model that ``predict`` loads."""
from pathlib import Path

import numpy as np
import pytest
from conftest import CLUSTER

from xray_spark import modeldir, schema
from xray_spark.cli import main
from xray_spark.cnn.adaptation import adapt, batch_norm_layers, layer_moments, set_statistics
from xray_spark.config import load_config
from xray_spark.ensemble import member_dirs
from xray_spark.io.ingestion import ingest
from xray_spark.labelling.scoring import predict
from xray_spark.paths import SHIPPED_MODEL, SHIPPED_MODELS

REAL = Path(__file__).parent / "fixtures" / "real"


@pytest.fixture(scope="module")
def real_images(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapt")
    config = load_config(None, [*CLUSTER, f"paths.root={root}"])
    ingest(spark, config, archive=str(REAL))
    return config, config.paths.url("images"), root


def test_adapted_statistics_are_the_target_frames_own_layer_after_layer(spark, real_images):
    config, images_url, root = real_images
    shipped = SHIPPED_MODELS / SHIPPED_MODEL
    source = member_dirs(shipped, modeldir.read_manifest(shipped))[0]        # one CNN of the shipped ensemble
    manifest = adapt(spark, source, images_url, root / "models" / "adapted", name="adapted")
    adapted = modeldir.load(root / "models" / "adapted")
    assert manifest["model_id"].startswith("adapted-") and adapted.tags == modeldir.load(source).tags
    assert manifest["adaptation"]["source_model_id"] == modeldir.read_manifest(source)["model_id"]
    assert manifest["adaptation"]["images"] == 12 and manifest["adaptation"]["layers"] == [f"bn{i}" for i in range(1, 6)]

    # the same statistics computed in one process, layer after layer, from the images themselves
    rows = spark.read.parquet(images_url).select("image", "height", "width").collect()  # 12 small test images
    images = schema.decode_images([r["image"] for r in rows], rows[0]["height"], rows[0]["width"])
    reference = modeldir.load(source).model
    original = {name: reference.get_layer(name).get_weights()[2:] for name in batch_norm_layers(reference)}
    for name in batch_norm_layers(reference):
        count, total, total_sq = layer_moments(reference, name, images, batch=5)
        mean = total / count
        set_statistics(reference, {name: (mean, total_sq / count - mean * mean)})
        got_mean, got_var = adapted.model.get_layer(name).get_weights()[2:]
        np.testing.assert_allclose(got_mean, mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got_var, total_sq / count - mean * mean, rtol=1e-3, atol=1e-5)
        assert not np.allclose(got_mean, original[name][0], atol=1e-3)           # they did change
        gamma, beta = adapted.model.get_layer(name).get_weights()[:2]           # learnt weights did not
        np.testing.assert_array_equal(gamma, reference.get_layer(name).get_weights()[0])

    result = predict(spark, root / "models" / "adapted", images_url, f"{images_url}-adapted-predictions")
    assert (result["rows"], result["errors"], result["model_id"]) == (12, 0, manifest["model_id"])


def test_adapt_job_says_what_is_wrong_before_spark_starts(tmp_path, capsys):
    assert main(["--set", f"paths.root={tmp_path}", "adapt", "--model", str(tmp_path / "nothing")]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    trained = tmp_path / "models" / "mine"
    trained.mkdir(parents=True)
    (trained / "manifest.json").write_text((SHIPPED_MODELS / SHIPPED_MODEL / "manifest.json").read_text())
    assert main(["--set", f"paths.root={tmp_path}", "adapt", "--model", "mine", "--output", "mine"]) == 2
    assert "is the model being adapted" in capsys.readouterr().err
    assert main(["--set", f"paths.root={tmp_path}", "adapt", "--model", "mine", "--method", "self-training"]) == 2
    assert "--method self-training needs --synthetic URL" in capsys.readouterr().err
    base = ["--set", f"paths.root={tmp_path}", "adapt", "--model", "mine", "--synthetic", "file:///generated"]
    assert main([*base, "--method", "tagged"]) == 2
    assert "--method tagged needs it" in capsys.readouterr().err
    assert main([*base, "--labels", str(tmp_path / "tags.csv")]) == 2                 # labels without the method
    assert "--labels CSV goes with --method tagged" in capsys.readouterr().err
    assert main([*base, "--method", "tagged", "--labels", str(tmp_path / "tags.csv")]) == 2
    assert "tags.csv: no such file" in capsys.readouterr().err
    (tmp_path / "tags.csv").write_text("file,frame_index,Ring\na.cbf,0,1\n")             # no tag of the vocabulary
    assert main([*base, "--method", "tagged", "--labels", str(tmp_path / "tags.csv")]) == 2
    assert "missing: every tag column" in capsys.readouterr().err
