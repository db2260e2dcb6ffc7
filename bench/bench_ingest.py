"""Archive ingest on all cores against the same work in one process, and the incremental cost.

Archives: Pilatus-1M-sized frames (1043 x 981, Poisson counts) in CBF (1 frame a file), EDF,
multi-page TIFF and Eiger HDF5 with bitshuffle/LZ4 (2 frames a file), spread over 4 runs.

``ingest``: 96 files (168 frames). Figure = frames/s of ``xray-spark ingest`` (the executors' Python
workers read, checksum, preprocess and write the images table's Parquet files; then the manifest
and quarantine) into a fresh data root. Baseline = frames/s of the same work in one plain Python
process without Spark: the ingest task's own function (``io.staging.write_task``) over all the
files, writing the same Parquet files. Target: at least 1.8x on 2 cores. Also measured:
``read_only``, the per-frame work alone (checksum, read, geometry, masks, preprocess, encode:
``io.rows.file_rows``) in one process, writing nothing, and ingest's ratio to it; and
``two_processes_ratio``, the baseline's work split over two plain processes: what two cores give
with no framework at all (their shared caches and memory bandwidth make each process slower than
one alone). The JSON gives the CPU seconds per frame of both sides (this process and its children:
the Spark JVM and its Python workers), which the machine's other load does not change much: the
ratio two cores can reach is about 2 x one-process CPU / Spark CPU.

``ingest_large``: the same on 1200 files (2100 frames, 5.4 GB), a small night: a run's fixed cost
(JVM scheduling and JIT, the Python workers' task set-up, the manifest) weighs less on it.

``ingest_incremental``: a night of beamtime on a realistic archive, 800 files (1400 frames), in
which 1% new files (8) arrive in a new run (tonight's), as beamlines write. Figure = seconds of
the incremental run, baseline = seconds of the full run of the same archive into a fresh data
root (ratio = incremental / full; target <= 0.05). Same frame size as ``ingest``: a smaller frame
would make the full run, not the night's fixed cost, smaller.
"""
import contextlib
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from bench.harness import RESULTS, record, timed_rate

FILES, RUNS, SHAPE = 96, 4, (1043, 981)
LARGE_FILES = 1200                       # ingest_large: 12.5 times the archive, the same frames
NIGHT_FILES, NEW_FILES = 800, 8          # the incremental archive, and 1% of it arriving tonight
POOL = 8                                 # distinct Poisson frames the files are made of
FORMATS = ("cbf", "edf", "tif", "eiger")
GEOMETRY = {"distance_m": 2.0, "wavelength_m": 1e-10, "pixel1_m": 172e-6, "pixel2_m": 172e-6,
            "beam_center_row_px": 500.0, "beam_center_col_px": 480.0}


def write_archive(root: Path, start: int, count: int, run_name: str | None = None) -> int:
    """Files ``start..start+count`` of the archive (in run ``run_name``, default spread over
    ``RUNS`` runs); returns the number of frames written."""
    from xray_spark.io import detector_writers

    frames = 0
    pool = np.random.default_rng(0).poisson(20, (POOL, *SHAPE)).astype(np.uint32)
    for i in range(start, start + count):
        run = root / "bench" / (run_name or f"run{i % RUNS}")
        run.mkdir(parents=True, exist_ok=True)
        fmt = FORMATS[i % len(FORMATS)]
        n = 1 if fmt == "cbf" else 2
        data = pool[[(i + j) % POOL for j in range(n)]]
        data[:, 0, :8] = np.frombuffer(np.int64(i).tobytes(), np.uint8)   # every file distinct
        if fmt == "cbf":
            detector_writers.write_cbf(str(run / f"f{i:05d}.cbf"), data[0], GEOMETRY)
        elif fmt == "edf":
            detector_writers.write_edf(str(run / f"f{i:05d}.edf"), list(data), GEOMETRY)
        elif fmt == "tif":
            detector_writers.write_tiff(str(run / f"f{i:05d}.tif"), list(data), GEOMETRY)
        else:
            detector_writers.write_eiger(str(run / f"f{i:05d}_master.h5"), data, GEOMETRY)
        frames += n
    return frames


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and its children (the Spark JVM, its Python workers)."""
    me = psutil.Process()
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = process.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def archive_units(root: str, files: list) -> list[dict]:
    """The ingest job's units of ``files`` (as the driver builds them), in path order."""
    from xray_spark.io.partitions import partition_path

    return [{"path": f.path, "abspath": f.abspath, "beamtime": f.beamtime, "run_id": f.run_id, "size": f.size,
             "mtime": f.mtime, "parts": f.parts, "partition": partition_path((f.beamtime, f.run_id)), "sidecar": "{}"}
            for f in files]


class Facts:
    """Collects what an ingest task reports (the file and quarantine rows), as the accumulator does."""

    def __init__(self):
        self.value = {}

    def add(self, more: dict) -> None:
        self.value.update(more)


def one_process(root: str, units: list[dict], config, table: str | None) -> int:
    """The executors' work on ``units`` in this process, without Spark: with ``table``, the ingest
    task itself (``io.staging.write_task``: read, checksum, preprocess, write the Parquet files of
    the images table); without, only the per-frame work (``io.rows.file_rows``), writing nothing.
    Returns the number of frames that became images."""
    from types import SimpleNamespace

    from xray_spark.io.ingestion import settings_of
    from xray_spark.io.rows import file_rows
    from xray_spark.io.staging import write_task

    settings = {**settings_of(config, root, {}), "table": table, "staging": table}
    if table is None:
        return sum(1 for u in units for r in file_rows(u, settings) if r["kind"] == "image")
    facts = Facts()
    write_task(0, tasks=SimpleNamespace(value=[units]), settings=settings, facts=facts)
    return sum(rows[-1]["frames"] for rows in facts.value.values())


def _import_readers():
    """Pool initializer: the readers' imports, outside the timing (the Spark side is warmed too)."""
    import xray_spark.io.ingestion  # noqa: F401
    import xray_spark.io.rows  # noqa: F401


def throughput(spark, tmp: str, name: str, n_files: int, repeats: int) -> dict:
    """``ingest`` against the same work in one process on an archive of ``n_files`` files (see docstring)."""
    from xray_spark.config import load_config
    from xray_spark.io.archive import discover
    from xray_spark.io.ingestion import ingest

    root = Path(tmp, name)
    frames = write_archive(root, 0, n_files)
    mb = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20
    base = ["spark.ui=false", "progress.console=never", f"ingest.archive={root}"]
    config = load_config(None, base)
    files, _ = discover(str(root), config.ingest.ignore, config.ingest.sidecar)
    units = archive_units(str(root), files)
    attempt = iter(range(1000))
    cpu = {"spark": [], "one_process": []}

    def output() -> str:
        return str(Path(tmp, f"{name}-out{next(attempt)}"))

    def with_spark():
        used = cpu_seconds()
        result = ingest(spark, load_config(None, base + [f"paths.root={output()}"]))
        cpu["spark"].append((cpu_seconds() - used) / frames)
        assert result.written == frames, result
        return result.written

    def single_process():
        used = cpu_seconds()
        written = one_process(str(root), units, config, output())
        cpu["one_process"].append((cpu_seconds() - used) / frames)
        assert written == frames, written
        return written

    def in_processes(n: int, table: bool) -> float:
        """frames/s of the work split over ``n`` plain processes (no Spark)."""
        with multiprocessing.get_context("spawn").Pool(n, initializer=_import_readers) as pool:
            pool.map(time.sleep, [0.5] * n, chunksize=1)  # all processes started, their imports done
            start = time.perf_counter()
            written = sum(pool.starmap(one_process, [(str(root), units[i::n], config, output() if table else None)
                                                     for i in range(n)]))
            return written / (time.perf_counter() - start)

    with_spark()  # warm the executors' Python workers and imports once, outside the timing
    result = record(name, figure=timed_rate(with_spark), baseline=timed_rate(single_process),
                    unit="frames/s", repeats=repeats, target=">= 1.8x the same work in one process on 2 cores",
                    sizes={"files": n_files, "frames": frames, "frame_shape": list(SHAPE), "archive_mb": round(mb, 1),
                           "master": config.spark.master},
                    notes=f"MB/s = frames/s x {mb / frames:.2f} MB per frame; both sides write the images table's "
                          "Parquet files (ingest also the manifest, and the quarantine when it has rows); "
                          "cpu_s_per_frame: medians of the measured runs, all processes of each side; "
                          "read_only: frames/s of the per-frame work alone in one process (no writing) and "
                          "ingest's ratio to it; two_processes_ratio: the same work split over two plain "
                          "processes without Spark (what 2 cores give with no framework at all)")
    cpu["spark"] = cpu["spark"][1:]  # the warm-up run
    result["cpu_s_per_frame"] = {side: statistics.median(v) for side, v in cpu.items()}
    read_only = statistics.median(in_processes(1, table=False) for _ in range(3))
    result["read_only"] = {"frames_per_s": read_only, "ratio": result["figure"] / read_only}
    result["two_processes_ratio"] = statistics.median(in_processes(2, table=True) for _ in range(3)) / result["baseline"]
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{name} CPU seconds per frame: spark {result['cpu_s_per_frame']['spark']:.4f}, one process "
          f"{result['cpu_s_per_frame']['one_process']:.4f}; read only {read_only:.1f} frames/s "
          f"(ingest {result['read_only']['ratio']:.3f}x); two processes without Spark: "
          f"{result['two_processes_ratio']:.3f}x")
    return result


def main():
    from xray_spark.config import load_config
    from xray_spark.io.ingestion import ingest
    from xray_spark.spark import build_session

    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        base = ["spark.ui=false", "progress.console=never"]
        config = load_config(None, base)
        spark = build_session(config, "bench-ingest")
        throughput(spark, tmp, "ingest", FILES, repeats=5)          # a run of ~3 s: more repeats
        throughput(spark, tmp, "ingest_large", LARGE_FILES, repeats=3)

        night_root = Path(tmp, "night-archive")
        night_frames = write_archive(night_root, 0, NIGHT_FILES)
        night_mb = sum(f.stat().st_size for f in night_root.rglob("*") if f.is_file()) / 2**20
        full_times, incremental_times = [], []
        for k in range(3):
            cfg = load_config(None, base + [f"paths.root={Path(tmp, f'incremental{k}')}", f"ingest.archive={night_root}"])
            start = time.perf_counter()
            ingest(spark, cfg)
            full_times.append(time.perf_counter() - start)
            # tonight's 1% new files, in a new run; the next full run includes them (1% more files)
            write_archive(night_root, NIGHT_FILES + k * NEW_FILES, NEW_FILES, f"tonight{k}")
            start = time.perf_counter()
            result = ingest(spark, cfg)
            incremental_times.append(time.perf_counter() - start)
            assert result.read == NEW_FILES, result
        incremental = iter(incremental_times)
        full = iter(full_times)
        record("ingest_incremental", figure=lambda: next(incremental), baseline=lambda: next(full),
               unit="s", repeats=3, target="incremental run with 1% new files <= 5% of the full run",
               sizes={"files": NIGHT_FILES, "new_files": NEW_FILES, "frames": night_frames,
                      "frame_shape": list(SHAPE), "archive_mb": round(night_mb, 1), "runs": RUNS,
                      "master": config.spark.master},
               notes="ratio = incremental seconds / full seconds (lower is better); the new files are in a new "
                     "run (tonight's), as beamlines write; the incremental run lists the archive, reads the "
                     "manifest, reads the 8 new files and writes them into the new run partition in one Spark "
                     "job, then rewrites the small manifest (the quarantine is rewritten only when it changes). "
                     "New files in an existing run are added beside its files the same way")
        spark.stop()
        return result
