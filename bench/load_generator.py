"""A detector for the landing directory: Pilatus 1M frames (981 x 1043 int32 mini-CBF, Poisson counts
with the Pilatus header) written into ``<landing>/<beamtime>/<run>/`` at a given rate, the way
detector software does it: each file is written under a hidden temporary name and renamed when
closed (``--mode rename``), or written in place and closed (``--mode close``, which the stream's
settle rule, ``ingest.settle_s``, has to wait out).

A pool of distinct frames is encoded once before the clock starts, so that writing a file costs
the write and not the CBF compression, and the rate holds at tens of frames a second on one core.
Every written file is logged as a JSON line ``{"path", "closed_at"}`` (``--log``): the close time
from which ``bench stream`` measures the latency to the file's labelled row.

    python -m bench.load_generator LANDING --rate 10 --seconds 60 [--beamtime bt --run run1 --log FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPE = (1043, 981)                  # Pilatus 1M: rows x columns
GEOMETRY = {"distance_m": 2.0, "wavelength_m": 1e-10, "pixel1_m": 172e-6, "pixel2_m": 172e-6,
            "beam_center_row_px": 500.0, "beam_center_col_px": 480.0}


def encoded_frames(count: int, seed: int = 0) -> list[bytes]:
    """``count`` distinct Pilatus 1M mini-CBF files as bytes (Poisson counts, a few hot spots)."""
    from xray_spark.io import detector_writers

    rng = np.random.default_rng(seed)
    blobs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            frame = rng.poisson(20, SHAPE).astype(np.int32)
            frame[rng.integers(0, SHAPE[0], 8), rng.integers(0, SHAPE[1], 8)] = 50_000
            path = os.path.join(tmp, f"{i}.cbf")
            detector_writers.write_cbf(path, frame, GEOMETRY, detector="PILATUS 1M")
            blobs.append(Path(path).read_bytes())
    return blobs


def write_frame(directory: Path, name: str, blob: bytes, mode: str) -> float:
    """Write one file as a detector does; returns its close time (epoch seconds)."""
    target = directory / name
    path = directory / f".{name}.part" if mode == "rename" else target
    with open(path, "wb") as f:
        f.write(blob)
    closed = time.time()
    if mode == "rename":
        os.rename(path, target)
    return closed


def generate(landing: str, rate: float, seconds: float, *, beamtime: str = "bench", run: str = "run1",
             mode: str = "rename", pool: int = 8, start: int = 0, log_path: str | None = None,
             blobs: list[bytes] | None = None) -> dict:
    """Write ``rate * seconds`` frames at ``rate`` frames/s; returns what was written and how on time."""
    blobs = blobs or encoded_frames(pool)
    directory = Path(landing) / beamtime / run
    directory.mkdir(parents=True, exist_ok=True)
    count = int(round(rate * seconds))
    late = []
    log = open(log_path, "a") if log_path else None
    began = time.time()
    try:
        for i in range(count):
            due = began + i / rate
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            name = f"frame_{start + i:06d}.cbf"
            closed = write_frame(directory, name, blobs[(start + i) % len(blobs)], mode)
            late.append(closed - due)
            if log:
                log.write(json.dumps({"path": f"{beamtime}/{run}/{name}", "closed_at": closed}) + "\n")
                log.flush()
    finally:
        if log:
            log.close()
    return {"frames": count, "rate": rate, "seconds": time.time() - began,
            "late_median_s": float(np.median(late)) if late else 0.0, "late_max_s": float(max(late, default=0.0))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load_generator", description=__doc__.split("\n\n")[0])
    parser.add_argument("landing", help="landing directory (files go to <landing>/<beamtime>/<run>/)")
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second (default 10)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to write (default 60)")
    parser.add_argument("--beamtime", default="bench")
    parser.add_argument("--run", default="run1")
    parser.add_argument("--mode", choices=["rename", "close"], default="rename",
                        help="rename: write a hidden temporary file, rename it when closed; close: write in place")
    parser.add_argument("--pool", type=int, default=8, help="distinct frames encoded before the clock starts")
    parser.add_argument("--log", help="append a JSON line {path, closed_at} per file to this file")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.pool < 1:
        parser.error("--rate and --seconds must be > 0, --pool >= 1")
    if not os.path.isdir(args.landing):
        parser.error(f"landing directory {args.landing!r} does not exist")
    result = generate(args.landing, args.rate, args.seconds, beamtime=args.beamtime, run=args.run,
                      mode=args.mode, pool=args.pool, log_path=args.log)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
