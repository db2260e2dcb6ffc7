"""Archive ingest on all cores against a plain single-process read loop, and the incremental cost.

Archives: Pilatus-1M-sized frames (1043 x 981, Poisson counts) in CBF (1 frame a file), EDF,
multi-page TIFF and Eiger HDF5 with bitshuffle/LZ4 (2 frames a file), spread over 4 runs.

``ingest``: 96 files (168 frames). Figure = frames/s of ``xray-spark ingest`` (the executors' Python
workers read, checksum, preprocess and write the images table's Parquet files; then the manifest
and quarantine) into a fresh data root;
baseline = frames/s of a plain Python loop over the same files doing the same per-frame work
(checksum, read, geometry, masks, preprocess, encode: ``io.rows.file_rows``, the function the
executors run) in one process, without Spark and without writing. Target: at least 1.8x on 2 cores.
The JSON also gives the CPU seconds per frame of both (this process and its children: the Spark
JVM and its Python workers), which the machine's other load does not change much: the ratio two
cores can reach is about 2 x loop CPU / Spark CPU. ``two_loops_ratio`` is the loop split over two
processes without Spark: what two cores give with no framework at all (their shared caches and
memory bandwidth make each process slower than one alone).

``ingest_large``: the same on 480 files (840 frames), a still small night: a run's fixed cost (JVM
scheduling and JIT, the Python workers' task set-up, the manifest) weighs less on it.

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
LARGE_FILES = 480                        # ingest_large: five times the archive, the same files
NIGHT_FILES, NEW_FILES = 800, 8          # the incremental archive, and 1% of it arriving tonight
POOL = 8                                 # distinct Poisson frames the files are made of
FORMATS = ("cbf", "edf", "tif", "eiger")
GEOMETRY = {"distance_m": 2.0, "wavelength_m": 1e-10, "pixel1_m": 172e-6, "pixel2_m": 172e-6,
            "beam_center_row_px": 500.0, "beam_center_col_px": 480.0}


def write_archive(root: Path, start: int, count: int, run_name: str | None = None) -> int:
    """Files ``start..start+count`` of the archive (in run ``run_name``, default spread over
    ``RUNS`` runs); returns the number of frames written."""
    from xray_spark.io import writers

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
            writers.write_cbf(str(run / f"f{i:05d}.cbf"), data[0], GEOMETRY)
        elif fmt == "edf":
            writers.write_edf(str(run / f"f{i:05d}.edf"), list(data), GEOMETRY)
        elif fmt == "tif":
            writers.write_tiff(str(run / f"f{i:05d}.tif"), list(data), GEOMETRY)
        else:
            writers.write_eiger(str(run / f"f{i:05d}_master.h5"), data, GEOMETRY)
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


def loop_frames(root: str, files: list, config) -> int:
    """The baseline's per-frame work (``io.rows.file_rows``) over ``files`` in this process."""
    from xray_spark.ingest import settings_of
    from xray_spark.io.rows import file_rows

    settings = settings_of(config, root, {})
    written = 0
    for f in files:
        unit = {"path": f.path, "abspath": f.abspath, "beamtime": f.beamtime, "run_id": f.run_id,
                "size": f.size, "mtime": f.mtime, "parts": f.parts, "sidecar": "{}"}
        written += sum(1 for r in file_rows(unit, settings) if r["kind"] == "image")
    return written


def _import_readers():
    """Pool initializer: the readers' imports, outside the timing (the Spark side is warmed too)."""
    import xray_spark.ingest  # noqa: F401
    import xray_spark.io.rows  # noqa: F401


def throughput(spark, tmp: str, name: str, n_files: int) -> dict:
    """``ingest`` against the single-process loop on an archive of ``n_files`` files (see docstring)."""
    from xray_spark.config import load_config
    from xray_spark.ingest import ingest
    from xray_spark.io.archive import discover

    root = Path(tmp, name)
    frames = write_archive(root, 0, n_files)
    mb = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20
    base = ["spark.ui=false", "progress.console=never", f"ingest.archive={root}"]
    config = load_config(None, base)
    files, _ = discover(str(root), config.ingest.ignore, config.ingest.sidecar)
    attempt = iter(range(100))
    cpu = {"spark": [], "loop": []}

    def with_spark():
        used = cpu_seconds()
        result = ingest(spark, load_config(None, base + [f"paths.root={Path(tmp, f'{name}-data{next(attempt)}')}"]))
        cpu["spark"].append((cpu_seconds() - used) / frames)
        assert result.written == frames, result
        return result.written

    def single_process():
        used = cpu_seconds()
        written = loop_frames(str(root), files, config)
        cpu["loop"].append((cpu_seconds() - used) / frames)
        return written

    def two_loops():
        with multiprocessing.get_context("spawn").Pool(2, initializer=_import_readers) as pool:
            pool.map(time.sleep, [0.5, 0.5], chunksize=1)  # both processes started, their imports done
            start = time.perf_counter()
            written = sum(pool.starmap(loop_frames, [(str(root), files[i::2], config) for i in range(2)]))
            return written / (time.perf_counter() - start)

    with_spark()  # warm the executors' Python workers and imports once, outside the timing
    result = record(name, figure=timed_rate(with_spark), baseline=timed_rate(single_process),
                    unit="frames/s", repeats=3, target=">= 1.8x the single-process loop on 2 cores",
                    sizes={"files": n_files, "frames": frames, "frame_shape": list(SHAPE), "archive_mb": round(mb, 1),
                           "master": config.spark.master},
                    notes=f"MB/s = frames/s x {mb / frames:.2f} MB per frame; ingest includes writing the "
                          "images table and the manifest (and the quarantine when it has rows), the loop writes "
                          "nothing; cpu_s_per_frame: medians of the measured runs, all processes of each side; "
                          "two_loops_ratio: the loop split over two processes without Spark (what 2 cores "
                          "give with no framework at all), over the one-process loop")
    cpu["spark"] = cpu["spark"][1:]  # the warm-up run
    result["cpu_s_per_frame"] = {side: statistics.median(v) for side, v in cpu.items()}
    result["two_loops_ratio"] = statistics.median(two_loops() for _ in range(3)) / result["baseline"]
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{name} CPU seconds per frame: spark {result['cpu_s_per_frame']['spark']:.4f}, loop "
          f"{result['cpu_s_per_frame']['loop']:.4f}; two loops without Spark: {result['two_loops_ratio']:.3f}x")
    return result


def main():
    from xray_spark.config import load_config
    from xray_spark.ingest import ingest
    from xray_spark.spark import build_session

    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        base = ["spark.ui=false", "progress.console=never"]
        config = load_config(None, base)
        spark = build_session(config, "bench-ingest")
        throughput(spark, tmp, "ingest", FILES)
        throughput(spark, tmp, "ingest_large", LARGE_FILES)

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
