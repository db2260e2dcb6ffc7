"""What the live page costs the stream (``xray_spark/report/live_page.py``).

- ``live_page_facts``: ``frame_facts`` (alert numbers + 64 x 64 PNG thumbnail of a stored 256 x
  256 image, on the executors) in frames/s, against the baseline of preprocessing a Pilatus 1M
  frame (what every frame costs already): the ratio says how many times faster the facts are.
- ``live_page_publish``: ``publish`` of a 10-frame micro-batch onto a full page (4 runs x 200
  frames kept: state, alerts, timelines, HTML, atomic writes) in batches/s, against the baseline of
  writing the batch's 10 thumbnails as files (the least any page must write).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from bench.harness import record, timed_rate

FRAMES = 32
BATCH = 10


def _stored(i: int):
    rng = np.random.default_rng(i)
    yy, xx = np.mgrid[:256, :256]
    ring = np.exp(-((np.hypot(yy - 128, xx - 128) - 60) / 4.0) ** 2)
    image = np.clip(0.2 + 0.5 * ring + 0.05 * rng.random((256, 256)), 0, 1).astype(np.float32)
    mask = np.zeros((256, 256), np.uint8)
    mask[120:136, :128] = 1
    return image, mask


def _frame(i: int, facts: dict) -> dict:
    tags = ["GISAXS", "Thin film"] if i % 3 else ["GIWAXS", "Beam off image"]
    names = ["GISAXS", "GIWAXS", "Thin film", "Beam off image"]
    return {"image_id": f"bench/{i:06d}", "run_id": f"run{i // 200 % 4}", "frame": 0,
            "path": f"/landing/bt/f{i:06d}.cbf", "mtime": 1.8e9 + i, "labelled_at": 1.8e9 + i + 2, "tag_names": tags,
            "scores": [0.9 if n in tags else 0.1 for n in names], "scored_tags": names, "facts": facts}


def main() -> None:
    from xray_spark.preprocess import preprocess
    from xray_spark.report import live_page

    stored = [_stored(i) for i in range(FRAMES)]
    raw = np.random.default_rng(0).poisson(50, (1043, 981)).astype(np.int32)   # Pilatus 1M

    def facts() -> int:
        for image, mask in stored:
            live_page.frame_facts(image, mask)
        return len(stored)

    def preprocessing() -> int:
        for _ in range(8):
            preprocess(raw, None, 256, full_scale_counts=1048575.0)
        return 8

    record("live_page_facts", figure=timed_rate(facts), baseline=timed_rate(preprocessing), unit="frames/s",
           sizes={"stored_image": 256, "thumbnail": live_page.THUMB_SIZE, "raw_frame": list(raw.shape)},
           repeats=5, notes="baseline: preprocess of one Pilatus 1M frame to 256 x 256 (already paid per frame)")

    facts_of = live_page.frame_facts(*stored[0])
    with tempfile.TemporaryDirectory() as tmp:
        page_dir = Path(tmp) / "live"
        history = [_frame(i, facts_of) for i in range(800)]   # 4 runs x 200 frames: a full page
        live_page.publish(page_dir, "bt", {"batch_id": 0, "frames": len(history)}, history)
        state = {"next": 800, "batch": 1}

        def publish() -> int:
            frames = [_frame(state["next"] + k, facts_of) for k in range(BATCH)]
            state["next"] += BATCH
            live_page.publish(page_dir, "bt", {"batch_id": state["batch"], "frames": BATCH, "lag_s": 2.0,
                                               "rate_fps": 5.0, "started": 1.8e9, "ended": 1.8e9 + 1}, frames)
            state["batch"] += 1
            return 1

        plain = Path(tmp) / "plain"
        plain.mkdir()

        def thumbnails_only() -> int:
            for k in range(BATCH):
                (plain / f"{k}.png").write_bytes(facts_of["thumbnail_png"])
            return 1

        record("live_page_publish", figure=timed_rate(publish), baseline=timed_rate(thumbnails_only),
               unit="batches/s", repeats=7,
               sizes={"batch_frames": BATCH, "runs": 4, "frames_kept_per_run": 200},
               notes="baseline: writing the batch's thumbnails only; figure: the whole publish (state, alerts, "
                     "timelines, HTML, atomic replace) onto a full page")
