"""Embeddings (``explore.embeddings``, ``explore.profiles``, ``xray-spark embed``): the physics
descriptors find rings where they are, Spark and a single-process call give the same bytes whatever
the partitioning, frames without geometry fall back to image space, and bad input says why."""
import json
import math

import numpy as np
import pyarrow.dataset as ds
import pytest
from explore_tables import build

from xray_spark import modeldir, schema
from xray_spark.cli import main
from xray_spark.explore.embeddings import (
    EmbeddingSettings,
    PenultimateLayer,
    check_model,
    embed_images,
    embed_rows,
    embedding_dimension,
    read_embeddings,
    unit_parts,
)
from xray_spark.explore.profiles import ProfileGrid, describe
from xray_spark.geometry import Geometry

GRID = ProfileGrid(q_min_nm=0.03, q_max_nm=40.0, radius_min_px=2.0, radius_max_px=362.0, bins=48, sectors=16)
FULL_SCALE = 1048575.0
VECTORS = ["cnn", "profile", "anisotropy", "embedding", "scores"]


@pytest.fixture(scope="module")
def beamtime(spark, tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "explore"
    root.mkdir(exist_ok=True)
    return build(spark, root)


def stored(counts: np.ndarray) -> np.ndarray:
    """Counts on the stored log scale (preprocess.log_scale)."""
    return (np.log1p(counts) / np.log1p(FULL_SCALE)).astype(np.float32)


def ring_at(radius_px: np.ndarray, r0: float, sector: np.ndarray | None = None) -> np.ndarray:
    ring = 5000.0 * np.exp(-0.5 * ((radius_px - r0) / 2.0) ** 2)
    return 10.0 + (ring if sector is None else ring * sector)


def test_profile_peaks_at_the_ring_q_and_a_ring_is_isotropic():
    geometry = Geometry(distance_m=2.0, wavelength_m=1e-10, pixel1_m=172e-6, pixel2_m=172e-6,
                        beam_center_row_px=500.0, beam_center_col_px=480.0, shape=(1024, 1024))
    rows, cols = np.mgrid[:256, :256]
    beam = geometry.resampled((256, 256))
    radius = np.hypot(rows - beam.beam_center_row_px, cols - beam.beam_center_col_px)
    q_map = beam.integrator().qArray((256, 256))            # nm^-1, pyFAI's own q of each stored pixel
    r0 = 60.0
    q0 = float(np.median(q_map[np.abs(radius - r0) < 0.5]))
    mask = np.zeros((256, 256), bool)
    axis, profile, anisotropy = describe(stored(ring_at(radius, r0)), mask, geometry.columns(), GRID,
                                         full_scale_counts=FULL_SCALE, letterbox=False)
    assert axis == "q" and profile.shape == anisotropy.shape == (48,)
    peak = GRID.centres("q")[int(np.argmax(profile))]
    assert abs(math.log(peak / q0)) < math.log(40 / 0.03) / 48      # within one log-q bin
    assert anisotropy[int(np.argmax(profile))] < 0.05
    half = (np.arctan2(rows - beam.beam_center_row_px, cols - beam.beam_center_col_px) > 0).astype(float)
    _, _, one_sided = describe(stored(ring_at(radius, r0, half)), mask, geometry.columns(), GRID,
                               full_scale_counts=FULL_SCALE, letterbox=False)
    assert one_sided[int(np.argmax(profile))] > 0.5                  # a ring on one side only: anisotropic


def test_image_space_profile_without_geometry_peaks_at_the_ring_radius():
    rows, cols = np.mgrid[:256, :256]
    radius = np.hypot(rows - 127.5, cols - 127.5)                    # no geometry: about the image centre
    axis, profile, _ = describe(stored(ring_at(radius, 40.0)), np.zeros((256, 256), bool),
                                {c: None for c in ("distance_m", "beam_center_row_px")}, GRID,
                                full_scale_counts=FULL_SCALE, letterbox=False)
    assert axis == "radius"
    peak = GRID.centres("radius")[int(np.argmax(profile))]
    assert abs(math.log(peak / 40.0)) < math.log(362 / 2) / 48


def test_combined_embedding_is_unit_length_and_weighs_its_parts():
    rng = np.random.default_rng(0)
    parts = [rng.random((5, 7)), rng.random((5, 3)), rng.random((5, 2))]
    parts[2][4] = 0                                                  # a blank part stays blank
    e = unit_parts(parts, (1.0, 0.5, 0.25))
    assert e.dtype == np.float32 and np.allclose(np.linalg.norm(e[:4], axis=1), 1.0, atol=1e-6)
    assert np.linalg.norm(e[4]) == pytest.approx(math.sqrt(1.5 / 1.75), rel=1e-6)
    unit = [p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-300) for p in parts]
    for i, j in ((0, 1), (3, 4)):
        expected = sum(w * ((u[i] - u[j]) ** 2).sum() for w, u in zip((1.0, 0.5, 0.25), unit)) / 1.75
        assert ((e[i] - e[j]) ** 2).sum() == pytest.approx(expected, rel=1e-5)


def test_spark_and_single_process_give_the_same_bytes_whatever_the_partitioning(spark, beamtime):
    config = beamtime["config"]
    table = read_embeddings(spark, beamtime["embeddings"]).orderBy("image_id").collect()
    assert len(table) == 24 and all(r["embedding"] is not None for r in table)
    images = spark.read.schema(schema.spark_schema()).parquet(beamtime["images"])
    settings = EmbeddingSettings.from_config(config)
    directory = config.paths.model_dir(config.explore.model)
    assert len(table[0]["embedding"]) == embedding_dimension(directory, settings) == 3 * 256 + 2 * 48 + 17
    other = embed_images(images.repartition(5), directory, settings).orderBy("image_id").collect()
    rows = ds.dataset(beamtime["images"][7:], partitioning="hive").to_table().sort_by("image_id").to_pydict()
    here = embed_rows(rows, PenultimateLayer(directory), settings).to_pylist()
    for spark_row, repartitioned, local in zip(table, other, here):
        assert spark_row["image_id"] == repartitioned["image_id"] == local["image_id"]
        for column in VECTORS:
            a = np.asarray(spark_row[column], np.float32)
            assert a.tobytes() == np.asarray(repartitioned[column], np.float32).tobytes(), column
            assert a.tobytes() == np.asarray(local[column], np.float32).tobytes(), column
        assert spark_row["tag_names"] == local["tag_names"] and spark_row["profile_axis"] == local["profile_axis"]


def test_frames_without_geometry_use_image_space(spark, beamtime):
    rows = read_embeddings(spark, beamtime["embeddings"]).select("frame_in_file", "profile_axis", "profile").collect()
    for r in rows:
        assert r["profile_axis"] == ("radius" if r["frame_in_file"] % 5 == 0 else "q")
        assert max(r["profile"]) > 0


def bof_model_dir(directory):
    directory.mkdir(parents=True)
    (directory / modeldir.MANIFEST).write_text(json.dumps({
        "format": modeldir.FORMAT, "kind": "bof", "model_id": "bof-test", "tags": ["Thin film"],
        "thresholds": [0.5], "input": {"height": 256, "width": 256}, "preprocessing": {}}))
    return directory


def test_a_model_without_penultimate_layer_is_refused_clearly(tmp_path, capsys):
    directory = bof_model_dir(tmp_path / "bof")
    with pytest.raises(modeldir.ModelDirError, match="kind 'bof', which has no penultimate layer"):
        check_model(directory)
    assert main(["--set", f"paths.root={tmp_path}", "embed", "--model", str(directory)]) == 2
    assert "no penultimate layer" in capsys.readouterr().err


def test_embed_job_writes_the_table_and_its_index(spark, beamtime, tmp_path, capsys):
    output = (tmp_path / "embedded").as_uri()
    settings = ["paths.root=" + str(tmp_path), "explore.index=ivf", "spark.ui=false", "progress.console=never"]
    assert main([*(a for s in settings for a in ("--set", s)), "embed", "--images", beamtime["images"],
                 "--output", output]) == 0
    out = capsys.readouterr().out
    assert f"{3 * 256 + 2 * 48 + 17} numbers each" in out and "faiss ivf index of 24 embeddings" in out
    written = read_embeddings(spark, output).orderBy("image_id").select("image_id", "embedding").collect()
    expected = read_embeddings(spark, beamtime["embeddings"]).orderBy("image_id").select("image_id", "embedding").collect()
    assert written == expected


def test_frames_are_numbered_in_the_runs_acquisition_order(spark):
    """An archive run of single-frame files has frame 0 in every file: the embeddings number its
    frames by file path, then frame within the file; synthetic runs (no path) keep their order."""
    from xray_spark import schema
    from xray_spark.explore.embeddings import in_run_order

    def row(image_id, run, path, frame_in_file):
        return {**{name: None for name in schema.EMBEDDINGS.names}, "image_id": image_id, "beamtime": "bt",
                "run_id": run, "frame": frame_in_file, "path": path, "frame_in_file": frame_in_file, "model_id": "m"}

    rows = [row("x1", "r1", "bt/r1/sample_00002.cbf", 0), row("x2", "r1", "bt/r1/sample_00001.h5", 1),
            row("x3", "r1", "bt/r1/sample_00001.h5", 0), row("x4", "r1", "bt/r1/sample_00010.cbf", 0),
            row("s9", "r2", None, 109), row("s8", "r2", None, 108)]
    table = spark.createDataFrame(rows, schema.spark_schema(schema.EMBEDDINGS)).repartition(3)
    order = {r["image_id"]: r["frame"] for r in in_run_order(table).collect()}
    assert order == {"x3": 0, "x2": 1, "x1": 2, "x4": 3, "s8": 0, "s9": 1}
