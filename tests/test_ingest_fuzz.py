"""Fuzz: over 1000 damaged files derived from real fixtures of every format, one ingest on the cluster.

Every input ends up ingested with the pixels of its original (or, when the mutation changed what the
file says its pixels are, at least with the original's frame shape; ``CONTENT_CHANGED``) or
quarantined with a reason; the
job has no failed task (no retry storm), no file runs past its time limit unnoticed, and no stored
image is all zero. The counts by reason are printed (``pytest -s``).
"""
from __future__ import annotations

import collections
import json
import logging
import time

import numpy as np
import pandas as pd
from conftest import CLUSTER
from fuzz_files import write_mutants

from xray_spark import schema
from xray_spark.config import load_config
from xray_spark.io.ingestion import ingest

SIZE = 32
# Mutations that change what the file says its pixels are (pixel bytes flipped or zeroed; header
# values such as offsets, gains or overflow tables): formats without a checksum cannot tell such a
# file from a valid one, so it may be ingested with other pixels, but with the original's shape.
# Everything else (truncation, a broken compression stream, a renamed file, garbage) is ingested
# with exactly the original's pixels or quarantined.
CONTENT_CHANGED = {"data_flip", "zero_block", "header_flip", "header_size"}


def check(made: dict[str, str], images: pd.DataFrame, manifest: pd.DataFrame, quarantine: pd.DataFrame) -> dict:
    """Violations of the fuzz contract, and the counts by outcome; see module docstring."""
    stored = {(r.path, r.frame): np.frombuffer(r.image, "<f4") for r in images.itertuples()}
    shapes = {(r.path, r.frame): (r.raw_height, r.raw_width) for r in images.itertuples()}
    status = dict(zip(manifest["path"], manifest["status"]))
    reasons = quarantine.groupby("path")["reason"].agg(lambda s: sorted(set(s)))
    originals = {p.split("/")[0]: p for p, kind in made.items() if kind == "original"}
    problems, counts = [], collections.Counter()
    for rel, kind in made.items():
        path = f"fuzz/{rel}"
        if path not in status:
            problems.append(f"{path}: neither ingested nor quarantined")
            continue
        frames = sorted(f for p, f in stored if p == path)
        for f in frames:
            if not stored[(path, f)].any():
                problems.append(f"{path} frame {f}: an all-zero image was ingested")
        if status[path] != "ingested":
            if not reasons.get(path):
                problems.append(f"{path}: {status[path]} without a reason")
            for reason in reasons.get(path, []):
                counts[reason] += 1
        if status[path] == "ingested":
            counts["ingested"] += 1
        if kind == "original" or not frames:
            continue
        original = f"fuzz/{originals[rel.split('/')[0]]}" if rel.split("/")[0] in originals else None
        for f in frames:
            ref = stored.get((original, f))
            if ref is None or shapes[(original, f)] != shapes[(path, f)]:
                problems.append(f"{path} ({kind}) frame {f}: ingested, but its original has no such frame or shape")
                continue
            differ = int((ref != stored[(path, f)]).sum())
            if kind not in CONTENT_CHANGED and differ:
                problems.append(f"{path} ({kind}) frame {f}: ingested with {differ} stored pixels unlike the original")
    return {"problems": problems, "counts": dict(counts)}


def test_damaged_files_are_ingested_right_or_quarantined_with_a_reason(spark, tmp_path, capsys):
    logging.getLogger("fabio").setLevel(logging.CRITICAL)
    archive = tmp_path / "archive"
    made = write_mutants(str(archive / "fuzz"), seed=7)
    assert len(made) >= 1000
    config = load_config(None, CLUSTER + [f"paths.root={tmp_path / 'data'}", f"tables.image_size={SIZE}",
                                          "ingest.file_timeout_s=30", "ingest.max_decompressed_mb=256"])
    tracker = spark.sparkContext.statusTracker()
    jobs_before = set(tracker.getJobIdsForGroup(None))
    started = time.monotonic()
    result = ingest(spark, config, archive=str(archive))
    seconds = time.monotonic() - started
    failed_tasks = sum(tracker.getStageInfo(s).numFailedTasks for j in set(tracker.getJobIdsForGroup(None)) - jobs_before
                       for s in (tracker.getJobInfo(j).stageIds if tracker.getJobInfo(j) else [])
                       if tracker.getStageInfo(s))
    images = pd.read_parquet(config.paths.url("images").removeprefix("file://"), columns=[
        "provenance", "frame", "image", "raw_height", "raw_width"])
    images["path"] = [json.loads(p)["path"] for p in images["provenance"]]
    manifest = pd.read_parquet(config.paths.url("manifest").removeprefix("file://"))
    quarantine = pd.read_parquet(config.paths.url("quarantine").removeprefix("file://"))
    outcome = check(made, images, manifest, quarantine)
    with capsys.disabled():
        print(f"\nfuzz: {len(made)} files, {result.written} frames ingested, {result.quarantined_files} files "
              f"quarantined, {seconds:.0f} s, failed tasks {failed_tasks}; by outcome: "
              + ", ".join(f"{k} {v}" for k, v in sorted(outcome["counts"].items(), key=lambda kv: -kv[1])))
    assert outcome["problems"] == [], "\n".join(outcome["problems"][:30])
    assert failed_tasks == 0
    assert result.files == len(made) and "timeout" not in outcome["counts"]
    assert set(schema.QUARANTINE.names) <= set(quarantine.columns)
