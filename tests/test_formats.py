"""The real-file format corpus (tests/fixtures/formats, its README and expected.csv) through the ingest's
executor function, plus content sniffing, settling and the per-file time limit."""
from __future__ import annotations

import collections
import csv
import functools
import gzip
import lzma
import os
import time
from pathlib import Path

import numpy as np
import pytest

from xray_spark.config import load_config
from xray_spark.io import detector_writers
from xray_spark.io.archive import discover
from xray_spark.io.ingestion import settings_of
from xray_spark.io.readers import UnreadableFile, open_detector_file, sniff
from xray_spark.io.rows import Budget, FileTimeout, file_rows

ROOT = Path(__file__).parent / "fixtures" / "formats"
EXPECTED = list(csv.DictReader(open(ROOT / "expected.csv")))
GEOMETRY = ["pixel_size_m", "distance_m", "wavelength_m", "beam_center_row_px", "beam_center_col_px"]


def unit(path: Path, rel: str) -> dict:
    st = path.stat()
    return {"path": rel, "abspath": str(path), "beamtime": "b", "run_id": "r", "size": st.st_size,
            "mtime": st.st_mtime, "parts": [], "sidecar": "{}"}


@functools.lru_cache(maxsize=1)
def corpus_rows() -> dict[str, list[dict]]:
    settings = settings_of(load_config(None, ["tables.image_size=32"]), str(ROOT), {})
    return {r["file"]: list(file_rows(unit(ROOT / r["file"], r["file"]), settings)) for r in EXPECTED}


def corpus_figures() -> tuple[list[str], list[str], collections.Counter]:
    """(readable files ingested wrong, broken files not quarantined, quarantine reasons of the broken)."""
    wrong, missed, reasons = [], [], collections.Counter()
    for r in EXPECTED:
        rows = corpus_rows()[r["file"]]
        images = [x for x in rows if x["kind"] == "image"]
        quarantined = [x for x in rows if x["kind"] == "quarantine"]
        if r["readable"] == "yes":
            shape = (int(r["rows"]), int(r["cols"]))
            if len(images) != int(r["nframes"]) or any((x["raw_height"], x["raw_width"]) != shape for x in images):
                wrong.append(f"{r['file']}: {len(images)} frames; " + "; ".join(q["error"] for q in quarantined[:1]))
        else:
            if images or not quarantined or not all(q["reason"] for q in quarantined):
                missed.append(r["file"])
            reasons.update({q["reason"] for q in quarantined})
    return wrong, missed, reasons


def test_the_corpus_is_ingested_with_its_frame_counts_and_shapes_and_every_broken_file_quarantined():
    wrong, missed, reasons = corpus_figures()
    readable = sum(r["readable"] == "yes" for r in EXPECTED)
    print(f"\ncorpus: {readable - len(wrong)}/{readable} readable files ingested right; "
          f"{sum(r['readable'] != 'yes' for r in EXPECTED) - len(missed)} broken quarantined; {dict(reasons)}")
    assert missed == []
    assert (readable - len(wrong)) / readable >= 0.95, wrong
    # the only misses: DECTRIS' artificial 13x11 test pattern, below ingest.min_side = 16 (a policy)
    assert all("artificial_small" in w and "min_side" in w for w in wrong), wrong


def test_header_geometry_matches_the_corpus_where_the_format_carries_it():
    checked, mismatched = 0, []
    for r in EXPECTED:
        images = [x for x in corpus_rows()[r["file"]] if x["kind"] == "image"]
        if not images:
            continue
        sources = __import__("json").loads(images[0]["provenance"])["geometry_source"]
        for key in GEOMETRY:
            if not r[key]:
                continue
            column = "pixel2_m" if key == "pixel_size_m" else key
            if sources.get(column) != "header":
                mismatched.append(f"{r['file']} {key}: not from the header")
                continue
            checked += 1
            if images[0][column] != pytest.approx(float(r[key]), rel=2e-3, abs=0.05 if "px" in key else 0):
                mismatched.append(f"{r['file']} {key}: {images[0][column]} != {r[key]}")
    assert checked >= 60
    # known: pilatus300k.edf states no pixel size (the corpus took it from the detector); GI2's header beam
    # centre (0, 0) is "not set" (io.geometry); i22's unitless beam_center is read as pixels (corpus: blank)
    assert len(mismatched) <= 4, mismatched


def test_compression_is_found_by_content_and_a_contradicting_extension_is_refused(tmp_path):
    frame = np.random.default_rng(0).poisson(100, (40, 48)).astype(np.uint32)
    detector_writers.write_edf(str(tmp_path / "f.edf"), [frame])
    blob = (tmp_path / "f.edf").read_bytes()
    (tmp_path / "a.edf.xz").write_bytes(lzma.compress(blob))
    (tmp_path / "b.edf").write_bytes(gzip.compress(blob))                 # gzip without saying so
    (tmp_path / "c.edf.gz").write_bytes(blob)                             # says gzip, is not
    (tmp_path / "d.cbf.gz").write_bytes(gzip.compress(blob))              # an EDF called CBF
    (tmp_path / "e.edf.gz").write_bytes(gzip.compress(blob)[:-30])         # stream cut short
    for name in ("a.edf.xz", "b.edf"):
        with open_detector_file(str(tmp_path / name), []) as f:
            np.testing.assert_array_equal(f.frame(0), frame)
            assert f.compression in ("xz", "gz") and f.format == "edf"
    for name, reason in (("c.edf.gz", "wrong_extension"), ("d.cbf.gz", "wrong_extension"), ("e.edf.gz", "truncated")):
        with pytest.raises(UnreadableFile) as err:
            sniff(str(tmp_path / name))
        assert err.value.reason == reason and name in str(err.value)


def test_files_still_being_written_wait_for_the_next_run(tmp_path):
    run = tmp_path / "bt" / "run"
    run.mkdir(parents=True)
    detector_writers.write_tiff(str(run / "old.tif"), np.ones((1, 20, 20), np.uint16))
    detector_writers.write_tiff(str(run / "new.tif"), np.ones((1, 20, 20), np.uint16))
    os.utime(run / "old.tif", (time.time() - 3600, time.time() - 3600))
    files, _ = discover(str(tmp_path), [], "run.yaml", settle_s=60)
    assert {f.path: f.refused for f in files} == {"bt/run/new.tif": "unsettled", "bt/run/old.tif": ""}
    files, _ = discover(str(tmp_path), [], "run.yaml")
    assert all(not f.refused for f in files)


@pytest.mark.parametrize("isolate", [True, False])
def test_a_file_past_its_time_limit_is_quarantined_as_timeout(monkeypatch, tmp_path, isolate):
    from xray_spark.io import rows

    detector_writers.write_tiff(str(tmp_path / "slow.tif"), np.ones((3, 20, 20), np.uint16))

    def hang(*args, **kwargs):
        while True:
            time.sleep(0.01)

    if rows._Reader.current is not None:        # a reader child forked before the patch would not hang
        rows._Reader.current.stop()
    monkeypatch.setattr(rows, "_frame_row", hang)
    settings = settings_of(load_config(None, ["ingest.file_timeout_s=0.5", f"ingest.isolate_reads={isolate}"]),
                           str(tmp_path), {})
    started = time.monotonic()
    out = list(file_rows(unit(tmp_path / "slow.tif", "b/r/slow.tif"), settings))
    assert time.monotonic() - started < 5 and rows._Reader.current is None     # the hung child is gone
    assert out[0]["reason"] == "timeout" and "ingest.file_timeout_s = 0.5" in out[0]["error"]
    assert out[-1]["status"] == "quarantined"


def test_a_reader_that_crashes_costs_its_file_only(monkeypatch, tmp_path):
    from xray_spark.io import rows

    detector_writers.write_tiff(str(tmp_path / "ok.tif"), np.full((1, 20, 20), 7, np.uint16) + np.eye(20, dtype=np.uint16))
    if rows._Reader.current is not None:
        rows._Reader.current.stop()
    monkeypatch.setattr(rows, "_frame_row", lambda *a: os.kill(os.getpid(), 11))       # a segfault in a reader
    settings = settings_of(load_config(None, []), str(tmp_path), {})
    crashed = list(file_rows(unit(tmp_path / "ok.tif", "b/r/ok.tif"), settings))
    assert crashed[0]["reason"] == "reader_crashed" and "SIGSEGV" in crashed[0]["error"]
    monkeypatch.undo()
    again = list(file_rows(unit(tmp_path / "ok.tif", "b/r/ok.tif"), settings))     # a new child reads on
    assert [r["kind"] for r in again] == ["image", "file"]
    with pytest.raises(FileTimeout), Budget(0.05):                   # the in-process limit alone
        while True:
            time.sleep(0.01)
