"""Real detector frames (tests/fixtures/real, sources in its README) through the readers and ingest.

Each file was written by a beamline's own software: a Pilatus 1M TIFF (CeO2 powder rings), a
Pilatus 2M mini-CBF (in-situ GISAXS at PETRA III P03) and a Lambda NeXus file of 10 frames with its
pixel mask. They check what files written here cannot: the header conventions and units real
software uses, the value conventions of real frames (Pilatus gaps -1, excluded pixels -2) and that
the header or sidecar geometry puts physics where the frame shows it. MarCCD has no real file
small enough to commit; it is written in the detector's layout by ``marccd_files``.
"""
import functools
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from conftest import CLUSTER
from marccd_files import write_marccd

from xray_spark.config import load_config
from xray_spark.geometry import Geometry, pyfai_detector
from xray_spark.io.archive import discover
from xray_spark.io.ingestion import ingest, settings_of
from xray_spark.io.readers import open_detector_file
from xray_spark.io.rows import file_rows
from xray_spark.preprocess import log_scale, stored_shape
from xray_spark.simulate.grazing import horizon_row
from xray_spark.simulate.scene import sample_scene

ROOT = Path(__file__).parent / "fixtures" / "real"
CEO2 = "dioptas/ceo2_pilatus1m/CeO2_Pilatus1M.tif"
GISAXS = "gisaxs_gui/p03_insitu_gisaxs/jg_gisaxs_4nm_old_3ml_insitu_ds03_00001_00045.cbf"
LAMBDA = "dioptas/lambda_oscillation/testasapo1_1009_00002_m1_part00000.nxs"
DATASETS = load_config(None, []).ingest.hdf5_datasets
# path: (format, frames, shape, dtype, header geometry, pyFAI detector whose gaps the file marks -1)
EXPECTED = {
    CEO2: ("tiff", 1, (1043, 981), np.int32, {"distance_m": 0.21143, "beam_center_row_px": 515.77,
                                               "beam_center_col_px": 498.18, "pixel1_m": 172e-6, "pixel2_m": 172e-6},
           "Pilatus 1M"),
    GISAXS: ("cbf", 1, (1679, 1475), np.int32, {"detector": "PILATUS 2M", "pixel1_m": 172e-6, "pixel2_m": 172e-6},
             "Pilatus 2M"),
    LAMBDA: ("hdf5", 10, (516, 1554), np.int16, {"detector": "Lambda", "pixel1_m": 55e-6, "pixel2_m": 55e-6}, None),
}


@pytest.fixture(autouse=True, scope="module")
def quiet_pyfai():
    """pyFAI logs its whole detector list at ERROR for each name it does not know (here: Lambda)."""
    logger = logging.getLogger("pyFAI.detectors")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.mark.parametrize("path", list(EXPECTED))
def test_each_real_file_reads_with_its_shape_dtype_counts_and_header(path):
    fmt, n_frames, shape, dtype, header, gaps_of = EXPECTED[path]
    with open_detector_file(str(ROOT / path), DATASETS) as f:
        assert (f.format, f.n_frames) == (fmt, n_frames)
        frames = [f.frame(i) for i in range(f.n_frames)]
        assert set(f.header) == set(header)
        for key, value in header.items():
            assert f.header[key] == (value if isinstance(value, str) else pytest.approx(value)), key
        mask = f.pixel_mask
    for frame in frames:
        assert frame.shape == shape and frame.dtype == dtype
    raw = frames[0]
    if gaps_of:                     # Pilatus: module gaps are -1, excluded (bad) pixels -2, counts >= 0
        gaps = np.asarray(pyfai_detector(gaps_of).mask) != 0
        np.testing.assert_array_equal(raw == -1, gaps)
        assert set(np.unique(raw[raw < 0])) == {-1, -2}
    if path == CEO2:                # the header's "N_excluded_pixels = 27"; below its 1097223 count cutoff
        assert (raw == -2).sum() == 27 and 30 < np.median(raw[raw >= 0]) < 300 and raw.max() < 1097223
    if path == GISAXS:              # outside the flight tube's round exit window nothing arrives;
        valid = raw[raw >= 0]       # three defective pixels read 2^22, far above the count cutoff
        assert 0.4 < (valid == 0).mean() < 0.7 and (raw > 1382835).sum() == 3
    if path == LAMBDA:              # 12-bit counter; NeXus pixel_mask (1, rows, cols), non-zero = bad
        assert mask.shape == shape and 0.02 < mask.mean() < 0.08
        assert all(f.max() <= 4095 for f in frames)


LETTERBOX = load_config(None, []).preprocess.letterbox


def archive_rows(root: Path, image_size: int = 64) -> dict[str, list[dict]]:
    """Every row ``file_rows`` (the ingest executors' function) makes of each file under ``root``."""
    config = load_config(None, [f"tables.image_size={image_size}"])
    files, sidecars = discover(str(root), config.ingest.ignore, config.ingest.sidecar)
    settings = settings_of(config, str(root), {})
    return {f.path: list(file_rows({**asdict(f), "sidecar": json.dumps(sidecars.get((f.beamtime, f.run_id), {}))},
                                   settings)) for f in files}


def test_real_files_become_image_rows_with_geometry_sources_masks_and_sane_images():
    rows = fixture_rows()
    assert sorted(rows) == sorted(EXPECTED)
    full_scale = load_config(None, []).preprocess.full_scale_counts
    for path, (_, n_frames, shape, _, _, _) in EXPECTED.items():
        *images, file_row = rows[path]
        assert (file_row["kind"], file_row["status"], file_row["frames"]) == ("file", "ingested", n_frames)
        assert [r["frame"] for r in images] == list(range(n_frames))
        for r in images:
            image = np.frombuffer(r["image"], "<f4").reshape(64, 64)
            mask = np.frombuffer(r["mask"], "u1").reshape(64, 64).astype(bool)
            assert np.isfinite(image).all() and 0 <= image.min() and image.max() <= 1
            rows_in, cols_in = stored_shape(shape, 64, LETTERBOX)     # the frame's part of the stored square
            top, left = (64 - rows_in) // 2, (64 - cols_in) // 2
            inside = mask[top:top + rows_in, left:left + cols_in]
            assert (image[mask] == 0).all() and inside.mean() < 0.2
            assert mask.sum() - inside.sum() == 64 * 64 - rows_in * cols_in   # the margins are bad
            assert (r["raw_height"], r["raw_width"]) == shape
    ceo2 = json.loads(rows[CEO2][0]["provenance"])
    assert ceo2["geometry_source"]["distance_m"] == "header" and ceo2["geometry_source"]["wavelength_m"] == "sidecar"
    assert ceo2["masks"]["detector_gaps"] == "Pilatus 1M" and rows[CEO2][0]["wavelength_m"] == 4.066e-11
    # the stored log scale of the powder frame's typical pixel is that of its median raw count
    stored = np.frombuffer(rows[CEO2][0]["image"], "<f4")
    assert np.median(stored[stored > 0]) == pytest.approx(log_scale(np.array(65.0), full_scale), abs=0.03)
    gisaxs = rows[GISAXS][0]
    sources = json.loads(gisaxs["provenance"])["geometry_source"]
    assert (sources["detector"], sources["distance_m"], sources["incidence_angle_deg"]) == ("header", "sidecar", "sidecar")
    assert (gisaxs["detector"], gisaxs["incidence_angle_deg"]) == ("Pilatus 2M", 0.4)
    lambda_ = json.loads(rows[LAMBDA][0]["provenance"])
    assert lambda_["geometry_source"]["distance_m"] == "default" and lambda_["geometry_source"]["pixel1_m"] == "header"
    assert lambda_["masks"]["file_pixel_mask"] is True and lambda_["bad_pixels"] > 30000


def test_the_gisaxs_frame_shows_its_horizon_where_the_sidecar_geometry_puts_it():
    """Above the sample horizon the film's diffuse scattering (Yoneda band); at the horizon it falls to
    the substrate's floor."""
    with open_detector_file(str(ROOT / GISAXS), DATASETS) as f:
        raw = f.frame(0).astype(float)
    raw[raw < 0] = np.nan
    profile = np.nanmean(raw[1150:1250, 850:1000], axis=1)      # beside the specular rod, between module gaps
    above, below = np.median(profile[10:40]), np.median(profile[60:])
    edge = 1150 + int(np.argmax(profile < below + 0.05 * (above - below)))   # the exit Fresnel factor reaches 0
    geometry = Geometry(distance_m=2.565, wavelength_m=1.0332e-10, pixel1_m=172e-6, pixel2_m=172e-6,
                        shape=raw.shape, beam_center_row_px=1311.0, beam_center_col_px=791.5)
    assert above > 10 * below
    assert abs(edge - horizon_row(geometry, np.radians(0.4))) < 8


GEOMETRY = {"distance_m": 0.25, "wavelength_m": 1.0332e-10, "beam_center_row_px": 40.5,
            "beam_center_col_px": 51.25, "pixel1_m": 79e-6, "pixel2_m": 79.5e-6}


def test_a_marccd_file_in_the_detector_layout_gives_its_pixels_and_header_geometry(tmp_path):
    import fabio

    frame = (np.random.default_rng(0).poisson(30, (80, 96)) + 10).astype(np.uint16)
    run = tmp_path / "bt" / "run"
    run.mkdir(parents=True)
    write_marccd(str(run / "x.mccd"), frame, GEOMETRY)
    assert (run / "x.mccd").stat().st_size == 4096 + frame.nbytes
    assert type(fabio.open(str(run / "x.mccd"))).__name__ == "MarccdImage"
    with open_detector_file(str(run / "x.mccd"), DATASETS) as f:
        assert (f.format, f.n_frames) == ("marccd", 1)
        np.testing.assert_array_equal(f.frame(0), frame)
        assert f.header == pytest.approx(GEOMETRY)
    image_row, file_row = archive_rows(tmp_path)["bt/run/x.mccd"]
    assert file_row["status"] == "ingested"
    assert set(json.loads(image_row["provenance"])["geometry_source"].values()) <= {"header", "none", "default"}
    assert image_row["distance_m"] == pytest.approx(0.25) and image_row["beam_center_col_px"] == pytest.approx(51.25)


def test_the_real_archive_ingests_on_the_cluster_with_nothing_quarantined(spark, tmp_path):
    config = load_config(None, CLUSTER + [f"paths.root={tmp_path / 'data'}", "tables.image_size=32"])
    result = ingest(spark, config, archive=str(ROOT))
    assert (result.files, result.written, result.quarantined_files) == (3, 12, 0)


def test_real_frames_are_drawn_beside_synthetic_frames_of_their_kind(tmp_path):
    from xray_spark.report import real_vs_synthetic as compare

    config = load_config(None, ["tables.image_size=64"])
    path, pairs = compare.compare(config, str(ROOT / "compare.yaml"), tmp_path / "real_vs_synthetic.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in pairs] == [Path(CEO2).name, Path(GISAXS).name]
    for pair, real_rows in zip(pairs, (rows_of(CEO2), rows_of(GISAXS))):
        np.testing.assert_array_equal(pair.real, np.frombuffer(real_rows[0]["image"], "<f4").reshape(64, 64))
        # same detector layout: the synthetic frames mask the real frame's module gaps
        assert abs((pair.native == 0).mean() - (pair.real == 0).mean()) < 0.03
        assert 0.8 < pair.stats["dispersion"][0] < 1.3 and 0.8 < pair.stats["dispersion"][1] < 1.3   # Poisson
    entry = compare.read_spec(str(ROOT / "compare.yaml"))[0]
    row = rows_of(CEO2)[0]
    matched = compare.matching_config(config, entry, row)
    index = compare.nearest_scene(matched, row, ["Powder"])
    scene, _ = sample_scene(matched.simulate, matched.simulate.seed, index)
    assert (scene["geometry"], scene["detector"], scene["distance_m"]) == ("TWAXS", "Pilatus1M", row["distance_m"])
    assert "Powder" in scene["sample_tags"] and abs(scene["beam_center_row_px"] - row["beam_center_row_px"]) < 60


@functools.lru_cache(maxsize=1)
def fixture_rows() -> dict[str, list[dict]]:
    return archive_rows(ROOT)


def rows_of(path):
    return fixture_rows()[path]


def test_a_comparison_spec_error_names_the_entry_and_the_field(tmp_path):
    from xray_spark.config import ConfigError
    from xray_spark.report.real_vs_synthetic import read_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text(f"frames:\n  - file: {ROOT / CEO2}\n    geometry: GISAXS\n    detector: Pilatus1M\n"
                    "    material: LaB6\n")
    with pytest.raises(ConfigError, match=r"frames\[0\]: material 'LaB6' is not generated in GISAXS"):
        read_spec(str(spec))
    spec.write_text(f"frames:\n  - file: {ROOT / CEO2}\n    geometry: TWAXS\n    detector: Pilatus9M\n"
                    "    material: LaB6\n")
    with pytest.raises(ConfigError, match=r"frames\[0\]: detector = 'Pilatus9M'; allowed: Pilatus1M"):
        read_spec(str(spec))


# The shipped model's scores of the three fixture frames (in its tag order), stored when it was committed.
SHIPPED_SCORES = {
    CEO2: [0.0, 0.0, 0.0, 0.3327, 0.9999, 0.0, 0.0001, 0.0, 0.6235, 0.0, 0.0, 0.0002, 0.0103, 0.0, 0.9986, 0.0292,
           0.0913],
    GISAXS: [0.9947, 0.5476, 0.0069, 0.0041, 0.3219, 0.0116, 0.0031, 0.686, 0.574, 0.3838, 0.8054, 0.0132, 0.1012,
             0.0051, 0.0714, 0.0251, 0.2725],
    LAMBDA: [0.6092, 0.0135, 0.982, 0.0007, 0.3916, 0.4404, 0.0014, 0.1349, 0.1425, 0.1494, 0.1268, 0.0448, 0.2784,
             0.0047, 0.0748, 0.1173, 0.084],
}


def test_the_shipped_model_loads_and_scores_real_frames_as_stored():
    from xray_spark import modeldir, schema
    from xray_spark.paths import SHIPPED_MODEL, SHIPPED_MODELS

    directory = load_config(None, []).paths.model_dir(SHIPPED_MODEL)
    assert directory == SHIPPED_MODELS / SHIPPED_MODEL                    # a name resolves to the package's copy
    scorer = modeldir.load(directory)
    rows = archive_rows(ROOT, image_size=256)
    for path, expected in SHIPPED_SCORES.items():
        row = rows[path][0]
        image, mask = (schema.decode_images([row["image"]], 256, 256), schema.decode_masks([row["mask"]], 256, 256))
        np.testing.assert_allclose(scorer.score(image, mask)[0], expected, atol=2e-3)
    tagged = {path: set(modeldir.predicted_tags(np.array([scores]), scorer.thresholds, scorer.tags)[0])
              for path, scores in SHIPPED_SCORES.items()}
    assert {"Ordered", "Ring: Isotropic"} <= tagged[CEO2]                           # the calibrant's powder rings
    assert {"GISAXS", "Thin film", "Horizon"} <= tagged[GISAXS]                     # the P03 film
    assert "Beam off image" in tagged[LAMBDA]                                       # a Lambda module beside the beam
