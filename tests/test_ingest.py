"""`ingest` on a real two-executor cluster: every file ends up as images or in quarantine,
incremental runs read only what changed, quarantined files are retried only once changed, labels
join, and a run killed before its commit is exactly-once when run again."""
import json
import os
import time

import numpy as np
import pytest
import tifffile
from conftest import CLUSTER

from xray_spark import schema, tags
from xray_spark.config import load_config
from xray_spark.io import detector_writers
from xray_spark.io import manifest as mf
from xray_spark.io.ingestion import ingest
from xray_spark.io.rows import image_id

GEOMETRY = {"distance_m": 2.5, "wavelength_m": 1.2e-10, "pixel1_m": 172e-6, "pixel2_m": 172e-6,
            "beam_center_row_px": 30.0, "beam_center_col_px": 20.5}


def frames(n, seed=0, shape=(48, 40)):
    return np.random.default_rng(seed).poisson(200, (n, *shape)).astype(np.uint32)


@pytest.fixture()
def setup(tmp_path):
    root = tmp_path / "archive"
    good, bad, side = root / "bt1" / "run1", root / "bt1" / "run2", root / "bt2" / "run3"
    for d in (good, bad, side):
        d.mkdir(parents=True)
    detector_writers.write_edf(str(good / "a.edf"), frames(2, 1), GEOMETRY)
    detector_writers.write_cbf(str(good / "b.cbf"), frames(1, 2)[0], GEOMETRY)
    detector_writers.write_tiff(str(good / "c.tif"), frames(3, 3))
    detector_writers.write_eiger(str(good / "scan_master.h5"), frames(3, 4), GEOMETRY, frames_per_file=2)
    (good / "notes.txt").write_text("sample: P3HT film")          # not an input file
    (bad / "zero.cbf").write_bytes(b"")
    detector_writers.write_edf(str(bad / "cut.edf"), frames(1, 6))
    blob = (bad / "cut.edf").read_bytes()
    (bad / "cut.edf").write_bytes(blob[: len(blob) // 2])
    tifffile.imwrite(bad / "wrong.cbf", frames(1)[0])
    outside = tmp_path / "private.tif"
    detector_writers.write_tiff(str(outside), frames(1))
    (bad / "link.tif").symlink_to(outside)
    import h5py
    with h5py.File(bad / "nodata.h5", "w") as h5:
        h5["entry/other"] = np.zeros(4)          # 1-D: no frame anywhere (a 2-D one would be found)
    detector_writers.write_edf(str(bad / "nan.edf"), [np.full((48, 40), np.nan, np.float32)])
    (side / "run.yaml").write_text("distance_m: far\n")
    detector_writers.write_tiff(str(side / "d.tif"), frames(1, 5))
    labels = tmp_path / "labels.csv"
    labels.write_text("path,tags\nbt1/run1/a.edf#1,GISAXS;Thin film\nbt1/run1/b.cbf,Ring: Isotropic\n"
                      "bt1/run1/gone.tif,Polymer\n")
    config = load_config(None, CLUSTER + [f"paths.root={tmp_path / 'data'}", f"ingest.archive={root}",
                                          "tables.image_size=32", "spark.arrow_batch_rows=4"])
    return config, root, labels


def images(spark, config):
    rows = (spark.read.schema(schema.spark_schema()).parquet(config.paths.url("images"))
            .select("image_id", "beamtime", "run_id", "frame", "tag_names", "labelled", "provenance",
                    "height", "distance_m").collect())
    return {r["image_id"]: r for r in rows}


def table_state(spark, config):
    return (images(spark, config), mf.read(config.paths.url("manifest"), schema.MANIFEST).set_index("path"),
            mf.read(config.paths.url("quarantine"), schema.QUARANTINE))


def test_every_file_is_imaged_or_quarantined_then_only_changes_are_read(spark, setup):
    config, root, labels = setup
    first = ingest(spark, config, labels_path=str(labels))
    imgs, manifest, quarantine = table_state(spark, config)
    assert (first.files, first.read, first.written) == (11, 9, 9)
    assert (first.quarantined_files, first.quarantined_frames, first.labels_unmatched) == (7, 1, 1)
    by_path = {json.loads(r["provenance"])["path"] for r in imgs.values()}
    assert by_path == {f"bt1/run1/{n}" for n in ("a.edf", "b.cbf", "c.tif", "scan_master.h5")}
    reasons = dict(zip(quarantine["path"], quarantine["reason"]))
    assert reasons == {"bt1/run2/zero.cbf": "empty_file", "bt1/run2/cut.edf": "truncated",
                       "bt1/run2/wrong.cbf": "wrong_extension", "bt1/run2/link.tif": "symlink_refused",
                       "bt1/run2/nodata.h5": "missing_dataset", "bt1/run2/nan.edf": "invalid_pixels",
                       "bt2/run3/d.tif": "bad_sidecar"}
    assert set(manifest.index) == by_path | set(reasons)          # nothing lost: every file is accounted for
    assert manifest.loc["bt1/run2/nan.edf", "status"] == "quarantined"
    a1 = imgs[image_id("bt1/run1/a.edf", 1)]
    assert a1["labelled"] and a1["tag_names"] == ["Thin film", "GISAXS"] and a1["height"] == 32
    assert not imgs[image_id("bt1/run1/a.edf", 0)]["labelled"]
    assert imgs[image_id("bt1/run1/b.cbf", 0)]["tag_names"] == ["Ring: Isotropic"]
    assert imgs[image_id("bt1/run1/scan_master.h5", 2)]["distance_m"] == 2.5
    prov = json.loads(imgs[image_id("bt1/run1/c.tif", 0)]["provenance"])
    assert prov["geometry_source"]["distance_m"] == "default" and len(prov["checksum"]) == 64
    assert os.path.isdir(config.paths.url("images")[7:] + "/beamtime=bt1/run_id=run1")

    again = ingest(spark, config)                                 # nothing changed: nothing read
    assert (again.read, again.unchanged, again.written) == (0, 11, 0)

    time.sleep(0.01)
    detector_writers.write_cbf(str(root / "bt1/run1/b.cbf"), frames(1, 9)[0] + 7, GEOMETRY)   # changed
    detector_writers.write_edf(str(root / "bt1/run2/e.edf"), frames(2, 8))                     # new
    os.remove(root / "bt1/run1/c.tif")                                                # deleted
    (root / "bt2/run3/run.yaml").write_text("distance_m: 3.0\n")                     # sidecar fixed
    third = ingest(spark, config)
    assert third.paths == ("bt1/run1/b.cbf", "bt1/run2/e.edf", "bt2/run3/d.tif")      # quarantined unchanged: not retried
    assert (third.deleted, third.written) == (1, 4)
    imgs3, manifest3, quarantine3 = table_state(spark, config)
    assert len(imgs3) == 9 + 2 + 1 == len(set(imgs3))            # b replaced, not duplicated; c's images kept
    assert manifest3.loc["bt1/run1/c.tif", "status"] == "deleted"
    assert manifest3.loc["bt1/run1/b.cbf", "checksum"] != manifest.loc["bt1/run1/b.cbf", "checksum"]
    assert imgs3[image_id("bt2/run3/d.tif", 0)]["distance_m"] == 3.0
    assert "bt2/run3/d.tif" not in set(quarantine3["path"]) and len(quarantine3) == 6
    assert imgs3[image_id("bt1/run1/b.cbf", 0)]["tag_names"] == []   # labels are joined when given


def test_a_run_killed_before_its_commit_is_exactly_once_when_run_again(spark, setup, killed_at_commit):
    config, root, _ = setup
    ingest(spark, config, only=["bt1/run1/a.edf"])
    detector_writers.write_tiff(str(root / "bt1/run1/new.tif"), frames(2, 11))
    with killed_at_commit():
        ingest(spark, config, only=["bt1/run1/a.edf", "bt1/run1/new.tif"])
    rerun = ingest(spark, config, only=["bt1/run1/a.edf", "bt1/run1/new.tif"])
    assert rerun.paths == ("bt1/run1/new.tif",)
    imgs = images(spark, config)
    assert sorted((json.loads(r["provenance"])["path"], r["frame"]) for r in imgs.values()) == [
        ("bt1/run1/a.edf", 0), ("bt1/run1/a.edf", 1), ("bt1/run1/new.tif", 0), ("bt1/run1/new.tif", 1)]
    assert tags.names()  # vocabulary loaded on the driver too


def test_the_demo_archive_is_ingested_with_header_geometry_masks_and_labels(spark, tmp_path):
    from xray_spark.io.demo_archive import build_archive

    root = tmp_path / "archive"
    config = load_config(None, CLUSTER + [f"paths.root={tmp_path / 'data'}", "tables.image_size=32",
                                          "simulate.render_size=64"])
    written = build_archive(spark, config, str(root), files=4, runs=2, seed=3)
    assert sorted(written["format"]) == ["cbf", "edf", "eiger", "tif"]
    result = ingest(spark, config, archive=str(root), labels_path=str(root / "labels.csv"))
    assert (result.files, result.written, result.quarantined_files) == (6, 8, 2)
    assert result.labels_unmatched == 0
    imgs = images(spark, config)
    sources = [json.loads(r["provenance"])["geometry_source"] for r in imgs.values()]
    assert all(s["distance_m"] == s["beam_center_row_px"] == "header" for s in sources)
    labelled = [r for r in imgs.values() if r["labelled"]]
    assert len(labelled) == 2 and all(r["frame"] == 0 and r["tag_names"] for r in labelled)
    eiger = [json.loads(r["provenance"]) for r in imgs.values() if r["frame"] == 2]
    assert eiger and eiger[0]["masks"]["file_pixel_mask"] is True
