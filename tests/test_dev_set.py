"""The real-frame development set: its labels, the consensus of two tagging passes, and that every
one of its frames is an ingestible detector file with recorded source, commit and licence."""
import csv
import functools
from pathlib import Path

import numpy as np
import pytest

from xray_spark.labelling.dev_set import (
    agreement,
    consensus,
    read_dev_labels,
    score_dev_set,
    without_each_source,
    worst_cases,
)

DEV = Path(__file__).resolve().parents[1] / "datasets" / "real_dev"
TRAIN = DEV.parent / "real_train"


def test_consensus_keeps_agreement_and_settles_the_rest_by_a_third_look():
    assert consensus("1", "1") == "1" and consensus("0", "0") == "0"
    assert consensus("1", "0") == "" and consensus("?", "?") == ""
    assert consensus("1", "0", "0") == "0" and consensus("1", "?", "?") == ""
    assert agreement(["1", "0", "1", "?"], ["1", "0", "0", "1"]) == {"agreement": 0.667, "kappa": 0.4,
                                                                       "answered_by_both": 3}


def test_dev_scores_leave_unknown_frames_out_and_find_the_worst_cases(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("file,frame_index,A,B\n" + "".join(
        f"s/r/f{i}.cbf,0,{a},{b}\n" for i, (a, b) in enumerate([("1", "0"), ("1", ""), ("0", "1"), ("0", "1"),
                                                               ("1", "0"), ("0", "1"), ("1", "1"), ("0", "0")])))
    dev = read_dev_labels(str(labels), ["A", "B"])
    assert dev.labels[1, 1] == -1 and len(set(dev.image_ids)) == 8
    scores = np.array([[.9, .1], [.8, .99], [.2, .8], [.1, .7], [.7, .2], [.3, .6], [.6, .9], [.95, .05]])
    result = score_dev_set(scores, dev, min_positives=4)
    assert result["scored_tags"] == ["A", "B"] and result["tags"]["B"]["known"] == 7
    assert result["tags"]["B"]["ap"] == 1.0                 # the unknown frame's 0.99 does not count
    false_pos, false_neg = worst_cases(scores, dev, "A", n=1)
    assert false_pos == [7] and false_neg == [6]

    # frame 7, A's only badly ranked negative, is source "y"'s: without it A ranks perfectly
    left_out = without_each_source(scores, dev, ["x"] * 7 + ["y"], ["A", "B"])
    assert left_out["y"] == {"frames_left_out": 1, "mAP": 1.0}
    assert left_out["x"] == {"frames_left_out": 7, "mAP": None}                       # no positive left


@pytest.mark.parametrize("collection, frames, sources", [(DEV, 57, 10), (TRAIN, 50, 15)])
def test_every_real_frame_has_its_source_and_a_file(collection, frames, sources):
    with open(collection / "frames.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= frames and len({r["source_repo"] for r in rows}) >= sources
    for r in rows:
        assert (collection / r["file"]).is_file(), r["file"]
        assert len(r["commit"]) == 40 and r["licence"] and r["source_path"], r["frame_id"]
    if collection == TRAIN:                 # redistributed in a trained model: only licensed sources
        assert not [r["frame_id"] for r in rows if "no licence" in r["licence"]]


@functools.cache
def ingested_frames(collection: Path) -> dict:
    """(file, frame) -> the stored image of each frame of ``collection`` (ingest's executor function)."""
    import json
    from dataclasses import asdict

    from xray_spark.config import load_config
    from xray_spark.io.archive import discover
    from xray_spark.io.ingestion import settings_of
    from xray_spark.io.rows import file_rows

    config = load_config(None, ["tables.image_size=32"])
    files, sidecars = discover(str(collection), config.ingest.ignore, config.ingest.sidecar)
    settings = settings_of(config, str(collection), {})
    ingested = {}
    for f in files:
        unit = {**asdict(f), "sidecar": json.dumps(sidecars.get((f.beamtime, f.run_id), {}))}
        for r in file_rows(unit, settings):
            if r.get("kind") not in ("file", "quarantine"):
                ingested[(f.path, r["frame"])] = (r["image"], json.loads(r["provenance"])["rotate"])
    return ingested


def labelled(collection: Path) -> set:
    with open(collection / "labels.csv", newline="") as f:
        return {(r["file"], int(r["frame_index"])) for r in csv.DictReader(f)}


def test_every_dev_frame_ingests():
    """Each labelled frame of the development set becomes an image row (ingest's executor function)."""
    ingested, wanted = ingested_frames(DEV), labelled(DEV)
    assert len(wanted) >= 80 and wanted <= set(ingested), sorted(wanted - set(ingested))[:5]
    # the NSLS-II SMI WAXS frames, stored turned, are stored upright (their runs' rotate: 1), and only they
    turned = {path for (path, _), (_, rotate) in ingested.items() if rotate}
    assert len(turned) == 13 and all("smi" in p for p in turned)


def test_every_training_frame_ingests_and_none_is_a_development_frame():
    """The real training set (datasets/real_train) is ingested whole, and no frame of it is stored
    with the same pixels as a development frame: the development figure stays a measure."""
    ingested, wanted = ingested_frames(TRAIN), labelled(TRAIN)
    assert len(wanted) >= 50 and wanted <= set(ingested), sorted(wanted - set(ingested))[:5]
    turned = {path for (path, _), (_, rotate) in ingested.items() if rotate}
    assert turned and all(p.startswith("xrsp/") for p in turned)      # the lab GISAXS frames stored turned
    dev = {image for image, _ in ingested_frames(DEV).values()}
    assert not [key for key, (image, _) in ingested.items() if image in dev]


def test_dev_labels_narrow_to_the_scored_frames(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("file,frame_index,A\ns/r/a.cbf,0,1\ns/r/b.cbf,0,0\ns/r/c.cbf,0,\n")
    dev = read_dev_labels(str(labels), ["A"])
    some = dev.only({dev.image_ids[0], dev.image_ids[2]})
    assert some.files == ["s/r/a.cbf", "s/r/c.cbf"] and some.labels[:, 0].tolist() == [1, -1]
