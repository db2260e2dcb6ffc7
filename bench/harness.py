"""The benchmark harness: a figure and its baseline measured in the same run, medians over
repeats, written with sizes and machine facts to ``bench/results/<name>.json``.

These machines are shared and noisy, so what a benchmark reports is the ratio of two medians
from one run, never an absolute time compared across runs.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results"
LIBRARIES = ("numpy", "pyarrow", "pandas", "pyspark", "petastorm", "tensorflow-cpu", "horovod",
             "scikit-learn", "scikit-image", "scipy", "fabio", "h5py", "pyFAI")


def machine() -> dict:
    """Cores, memory, CPU model, Python and library versions of this machine."""
    import psutil

    cpu = "unknown"
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    libs = {}
    for lib in LIBRARIES:
        try:
            libs[lib] = version(lib)
        except PackageNotFoundError:
            libs[lib] = None
    return {"cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "cpu": cpu, "python": platform.python_version(), "platform": platform.platform(),
            "libraries": libs}


def measure(fn: Callable[[], float], repeats: int) -> list[float]:
    """Call ``fn`` ``repeats`` times; each call returns its own figure (e.g. images/s)."""
    return [float(fn()) for _ in range(repeats)]


def timed_rate(fn: Callable[[], int]) -> Callable[[], float]:
    """Wrap ``fn`` (which returns how many items it processed) into one returning items/s."""
    def rate() -> float:
        start = time.perf_counter()
        n = fn()
        return n / (time.perf_counter() - start)
    return rate


def record(name: str, *, figure: Callable[[], float], baseline: Callable[[], float], unit: str,
           sizes: dict, repeats: int = 3, target: str = "", notes: str = "",
           results_dir: Path = RESULTS) -> dict:
    """Measure ``figure`` and ``baseline`` alternately ``repeats`` times, write and return the result.

    Alternating the two spreads the machine's noise over both. ``ratio`` = median figure /
    median baseline; for rates (higher is better) a ratio above 1 means the figure is ahead.
    """
    figures, baselines = [], []
    for _ in range(repeats):
        figures += measure(figure, 1)
        baselines += measure(baseline, 1)
    fig, base = statistics.median(figures), statistics.median(baselines)
    result = {
        "name": name, "unit": unit, "figure": fig, "baseline": base,
        "ratio": fig / base if base else None, "figures": figures, "baselines": baselines,
        "repeats": repeats, "sizes": sizes, "target": target, "notes": notes,
        "machine": machine(), "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{name}: {fig:.4g} {unit} vs baseline {base:.4g} {unit}: ratio {result['ratio']:.3f}"
          + (f" (target: {target})" if target else ""))
    return result


def _random_frames(size: int, runs: int, batches):
    """Executor side of ``random_images``: frame i is seeded by i, tagged by its parity."""
    import numpy as np

    from xray_spark import schema

    for batch in batches:
        yield schema.records_to_arrow([schema.image_record(
            image_id=f"bench-{i}", source="synthetic", beamtime="bench", run_id=f"run{i % runs}", frame=i,
            image=np.random.default_rng(i).random((size, size), dtype=np.float32),
            mask=np.zeros((size, size), bool), tag_names=["Thin film"] if i % 2 else ["GISAXS"], provenance={})
            for i in batch.column("id").to_pylist()])


def random_images(spark, n: int, size: int, *, runs: int = 4, partitions: int = 4):
    """``n`` random ``size`` x ``size`` frames in the images schema, built on the executors: the
    input of the benchmarks that measure feeding and training rather than the images' content."""
    from functools import partial

    from xray_spark import schema

    return spark.range(0, n, numPartitions=partitions).mapInArrow(
        partial(_random_frames, size, runs), schema.spark_schema())


def write_random_images(url: str, n: int, size: int, job: str):
    """Write ``random_images`` as an images table at ``url`` with local Spark, and stop Spark so
    that what the benchmark then measures has the machine to itself. Returns the configuration."""
    from xray_spark.config import load_config
    from xray_spark.io import tables
    from xray_spark.spark import build_session

    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])  # executors import bench.harness
    config = load_config(None, ["spark.ui=false", "progress.console=never"])
    spark = build_session(config, job)
    try:
        tables.write_table(random_images(spark, n, size), url, row_group_size_mb=config.tables.row_group_size_mb)
    finally:
        spark.stop()
    return config
