"""Latency and throughput of ``xray-spark stream`` against the nightly job over the same frames.

One stream (a ``xray-spark stream`` process, local Spark on the machine's cores, the shipped
``cnn-top17`` CNN of the ``cpu`` preset, the live page on) labels Pilatus 1M mini-CBF frames that
``bench.load_generator`` writes into its landing directory the way a detector does (written, then
renamed when closed), one run per rate: 5, 10 and 20 frames/s for ``PHASE_S`` seconds each, then
(``--sustained``) ``SUSTAINED_S`` seconds at ``--sustained-rate``. Latency of a frame = the time
its batch was committed (the batch record's ``ended``: predictions in the nightly table, images
and manifest published) minus the time the generator closed its file. A rate is sustained when the
latency does not grow over the run: the slope of latency against close time stays below
``MAX_SLOPE`` and the last tenth of the frames are labelled as fast as the median.

Baseline, same frames: the nightly job (``xray-spark nightly``: ingest, label, report) started the
moment the 10 frames/s run's last file closed; its time to the last label is its run time.

    python -m bench stream                      # the three rates, the baseline
    python -m bench.bench_stream --sustained --sustained-rate 20
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench.harness import RESULTS, machine
from bench.load_generator import encoded_frames, generate

RATES = (5.0, 10.0, 20.0)
PHASE_S = 60.0
SUSTAINED_S = 300.0
MAX_SLOPE = 0.01           # seconds of latency gained per second of run: 3 s over 5 minutes
ROOT = Path(__file__).resolve().parents[1]


def settings(data: Path) -> list[str]:
    return ["--set", f"paths.root={data}", "--set", "spark.ui=false", "--set", "progress.console=never",
            "--set", "progress.interval_s=600"]


def labelled(checkpoint: Path) -> dict[str, float]:
    """path -> time its batch committed, from the stream's batch records."""
    out = {}
    for name in glob.glob(str(checkpoint / "labelled" / "*.json")):
        record = json.loads(Path(name).read_text())
        for frame in record["labelled"]:
            out.setdefault(frame["path"], record["ended"])
    return out


def wait_labelled(checkpoint: Path, paths: set[str], timeout_s: float) -> float:
    """Seconds waited until every path is labelled (or the timeout)."""
    began = time.time()
    while time.time() - began < timeout_s:
        if paths <= set(labelled(checkpoint)):
            break
        time.sleep(0.5)
    return time.time() - began


def phase(landing: Path, checkpoint: Path, log: Path, blobs, rate: float, seconds: float, run: str) -> dict:
    """Write ``rate * seconds`` frames into run ``run``, wait for their labels; their latency figures."""
    log.unlink(missing_ok=True)
    written = generate(str(landing), rate, seconds, run=run, log_path=str(log), blobs=blobs)
    closes = {r["path"]: r["closed_at"] for r in map(json.loads, log.read_text().splitlines())}
    drained = wait_labelled(checkpoint, set(closes), timeout_s=max(120.0, seconds))
    done = labelled(checkpoint)
    order = sorted(closes, key=closes.get)
    latency = np.array([done[p] - closes[p] for p in order if p in done])
    closed = np.array([closes[p] for p in order if p in done])
    slope = float(np.polyfit(closed - closed[0], latency, 1)[0]) if len(latency) > 2 else None
    tail = latency[-max(1, len(latency) // 10):]
    median = float(np.median(latency)) if len(latency) else None
    sustained = (len(latency) == len(order) and slope is not None and slope < MAX_SLOPE
                 and float(np.median(tail)) <= 2 * median)
    return {"rate_fps": rate, "seconds": seconds, "frames": len(order), "labelled": int(len(latency)),
            "generator": written, "latency_median_s": median,
            "latency_p95_s": float(np.percentile(latency, 95)) if len(latency) else None,
            "latency_max_s": float(latency.max()) if len(latency) else None,
            "latency_slope_s_per_s": slope, "tail_median_s": float(np.median(tail)) if len(latency) else None,
            "sustained": bool(sustained), "drain_s": drained,
            "last_label_after_last_close_s": float(max(done[p] for p in order if p in done) - max(closes.values()))}


def nightly_baseline(landing: Path, run: str, work: Path) -> dict:
    """The nightly job over the frames of ``run``, in a fresh data root: seconds to its last label."""
    archive = work / "nightly_archive"
    shutil.copytree(landing / "bench" / run, archive / "bench" / run)
    began = time.time()
    done = subprocess.run([sys.executable, "-m", "xray_spark.cli", *settings(work / "nightly_data"), "nightly",
                           "--archive", str(archive)], cwd=ROOT, capture_output=True, text=True)
    seconds = time.time() - began
    if done.returncode:
        raise RuntimeError(f"nightly failed: {done.stderr[-2000:]}")
    frames = len(list((archive / "bench" / run).glob("*.cbf")))
    return {"frames": frames, "seconds_to_last_label": seconds,
            "summary": [line for line in done.stderr.splitlines() if "nightly done" in line][-1:]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_stream")
    parser.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    parser.add_argument("--seconds", type=float, default=PHASE_S)
    parser.add_argument("--sustained", action="store_true", help=f"also {SUSTAINED_S:.0f} s at --sustained-rate")
    parser.add_argument("--sustained-rate", type=float, default=20.0)
    parser.add_argument("--output", default=str(RESULTS / "stream.json"))
    args = parser.parse_args(argv if argv is not None else sys.argv[2:] if sys.argv[1:2] == ["stream"] else None)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    work = Path(tempfile.mkdtemp(prefix="bench_stream_"))
    landing, data = work / "landing", work / "data"
    landing.mkdir()
    checkpoint = data / "checkpoints" / "stream"
    blobs = encoded_frames(8)
    stream_log = open(work / "stream.log", "w")
    stream = subprocess.Popen([sys.executable, "-m", "xray_spark.cli", *settings(data), "stream",
                               "--landing", str(landing)], cwd=ROOT, stdout=stream_log, stderr=subprocess.STDOUT)
    result = {"name": "stream", "unit": "s", "phases": [], "work": str(work)}
    try:
        began = time.time()
        generate(str(landing), 2.0, 2.0, run="warmup", blobs=blobs)        # start-up: JVM, workers, model
        result["warmup_s"] = wait_labelled(checkpoint, {f"bench/warmup/frame_{i:06d}.cbf" for i in range(4)}, 600)
        result["warmup_s"] += 2.0
        print(f"stream up and warm after {time.time() - began:.0f} s", flush=True)
        plan = [(rate, args.seconds, f"rate{rate:g}") for rate in args.rates]
        if args.sustained:
            plan.append((args.sustained_rate, SUSTAINED_S, f"sustained{args.sustained_rate:g}"))
        for rate, seconds, run in plan:
            figures = phase(landing, checkpoint, work / f"{run}.log", blobs, rate, seconds, run)
            result["phases"].append({"run": run, **figures})
            print(json.dumps({"run": run, **{k: v for k, v in figures.items() if k != "generator"}}), flush=True)
    finally:
        stream.send_signal(signal.SIGTERM)
        stream.wait(timeout=120)
        stream_log.close()
    if 10.0 in args.rates:
        result["baseline_nightly"] = nightly_baseline(landing, "rate10", work)
        ten = next(p for p in result["phases"] if p["run"] == "rate10")
        result["baseline_nightly"]["stream_last_label_after_last_close_s"] = ten["last_label_after_last_close_s"]
        print(json.dumps({"baseline_nightly": result["baseline_nightly"]}), flush=True)
    result.update({"target": "median <= 2 s and p95 <= 5 s at 10 frames/s; sustained >= 20 frames/s for 5 min",
                   "sizes": {"frame": "Pilatus 1M 981x1043 int32 mini-CBF", "model": "cnn-top17 (cpu preset)",
                             "master": "local[*]", "cores": os.cpu_count()},
                   "machine": machine(), "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    for p in result["phases"]:
        print(f"stream {p['run']}: latency median {p['latency_median_s']} s, p95 {p['latency_p95_s']} s, "
              f"sustained {p['sustained']}")
    shutil.rmtree(work / "landing", ignore_errors=True)


if __name__ == "__main__":
    main()
