"""Change points along runs (``explore.run_events``, on Spark ``local[2]``): precision and recall
within 2 frames on synthetic runs whose change points are known (``embedding_runs.changing_run``:
0-4 changes per run, steps of 0.2-1.0 against per-frame noise of norm 0.5, 352 dimensions; the
weakest steps are below what a window of 8 frames can tell from the noise).

Baseline, on the same runs: the naive detector, a change wherever a frame is farther from the one
before than ``JUMP`` times the run's median frame-to-frame distance.
"""
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench import embedding_runs
from bench.harness import RESULTS, machine

RUNS, FRAMES, D, TOLERANCE, JUMP = 60, 400, 352, 2, 2.0
NOISE, SHIFT = 0.5, (0.2, 1.0)


def match(found: list[int], truth: list[int]) -> int:
    """Detections matched one to one with true changes within TOLERANCE frames."""
    left, hits = sorted(truth), 0
    for f in sorted(found):
        near = [t for t in left if abs(t - f) <= TOLERANCE]
        if near:
            left.remove(min(near, key=lambda t: abs(t - f)))
            hits += 1
    return hits


def scores(found: dict, truth: dict) -> dict:
    hits = sum(match(found.get(r, []), t) for r, t in truth.items())
    n_found, n_true = sum(map(len, found.values())), sum(map(len, truth.values()))
    precision, recall = hits / max(n_found, 1), hits / max(n_true, 1)
    return {"precision": precision, "recall": recall, "f1": 2 * precision * recall / max(precision + recall, 1e-12),
            "detected": n_found, "true": n_true, "matched": hits}


def naive(vectors: np.ndarray) -> list[int]:
    jumps = np.linalg.norm(np.diff(vectors, axis=0), axis=1)
    return [int(t) + 1 for t in np.flatnonzero(jumps > JUMP * np.median(jumps))]


def main():
    import os

    from xray_spark.config import load_config
    from xray_spark.explore.run_events import run_events
    from xray_spark.spark import build_session

    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    rng = np.random.default_rng(0)
    truth = {f"run{i:03d}": embedding_runs.known_changes(FRAMES, int(rng.integers(0, 5)), 20, rng) for i in range(RUNS)}
    runs = [embedding_runs.changing_run("bench", r, FRAMES, c, d=D, noise=NOISE, shift=SHIFT, seed=i)
            for i, (r, c) in enumerate(truth.items())]
    config = load_config(None, ["spark.master=local[2]", "spark.ui=false", "progress.console=never"])
    spark = build_session(config, "bench-run-events")
    with tempfile.TemporaryDirectory() as tmp:
        url = embedding_runs.write(runs, Path(tmp) / "embeddings")
        started = time.perf_counter()
        events = run_events(spark.read.parquet(url), config.explore.change_window, config.explore.change_penalty).toPandas()
        seconds = time.perf_counter() - started
    spark.stop()
    found = {r: sorted(g["frame"]) for r, g in events.groupby("run_id")}
    baseline = {r["run_id"][0]: naive(np.stack(r["embedding"])) for r in runs}
    figure, base = scores(found, truth), scores(baseline, truth)
    out = {"name": "run_events", "unit": f"precision / recall within {TOLERANCE} frames",
           "figure": figure, "baseline": base, "ratio": figure["f1"] / base["f1"] if base["f1"] else None,
           "sizes": {"runs": RUNS, "frames_per_run": FRAMES, "dimensions": D, "noise": NOISE, "shift": SHIFT,
                     "window": config.explore.change_window, "penalty": config.explore.change_penalty},
           "seconds_on_spark": round(seconds, 1), "frames_per_second": RUNS * FRAMES / seconds,
           "target": "precision and recall >= 0.9",
           "notes": f"baseline: a change where a frame is > {JUMP} x the run's median distance from the one before",
           "machine": machine(), "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "run_events.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"run_events: precision {figure['precision']:.3f}, recall {figure['recall']:.3f} "
          f"(naive jump detector: {base['precision']:.3f}, {base['recall']:.3f}); {seconds:.1f} s on Spark")
    return out


if __name__ == "__main__":
    sys.exit(main() and 0)
