"""Archive ingest on all cores against a plain single-process read loop, and the incremental cost.

Archive: Pilatus-1M-sized frames (1043 x 981, Poisson counts) in CBF, EDF, multi-page TIFF and
Eiger HDF5 (bitshuffle/LZ4), over 4 runs.

``ingest``: figure = frames/s of ``xray-spark ingest`` (executors read, checksum, preprocess and
write the images table, manifest and quarantine) into a fresh data root; baseline = frames/s of a
plain Python loop over the same files doing the same per-frame work (checksum, read, geometry,
masks, preprocess, encode) in one process, without Spark and without writing.
Target: at least 1.8x on 2 cores.

``ingest_incremental``: after a full ingest, 1% new files are added in a new run (tonight's);
figure = seconds of the incremental run, baseline = seconds of the full run (ratio = incremental /
full; target <= 0.05).
"""
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import record, timed_rate

FILES, RUNS, SHAPE = 96, 4, (1043, 981)
FORMATS = ("cbf", "edf", "tif", "eiger")
GEOMETRY = {"distance_m": 2.0, "wavelength_m": 1e-10, "pixel1_m": 172e-6, "pixel2_m": 172e-6,
            "beam_center_row_px": 500.0, "beam_center_col_px": 480.0}


def write_archive(root: Path, start: int, count: int, run_name: str | None = None) -> int:
    """Files ``start..start+count`` of the archive (in run ``run_name``, default spread over
    ``RUNS`` runs); returns the number of frames written."""
    from xray_spark.io import writers

    frames = 0
    for i in range(start, start + count):
        run = root / "bench" / (run_name or f"run{i % RUNS}")
        run.mkdir(parents=True, exist_ok=True)
        fmt = FORMATS[i % len(FORMATS)]
        n = 1 if fmt == "cbf" else 2
        data = np.random.default_rng(i).poisson(20, (n, *SHAPE)).astype(np.uint32)
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


def main():
    from xray_spark.config import load_config
    from xray_spark.ingest import ingest, settings_of
    from xray_spark.io.archive import discover
    from xray_spark.io.rows import file_rows
    from xray_spark.spark import build_session

    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        root = Path(tmp, "archive")
        frames = write_archive(root, 0, FILES)
        mb = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20
        base = ["spark.ui=false", "progress.console=never", f"ingest.archive={root}"]
        config = load_config(None, base)
        spark = build_session(config, "bench-ingest")
        attempt = iter(range(100))

        def with_spark():
            data = Path(tmp, f"data{next(attempt)}")
            result = ingest(spark, load_config(None, base + [f"paths.root={data}"]))
            assert result.written == frames, result
            return result.written

        def single_process():
            files, sidecars = discover(str(root), config.ingest.ignore, config.ingest.sidecar)
            settings = settings_of(config, str(root), {})
            written = 0
            for f in files:
                unit = {"path": f.path, "abspath": f.abspath, "beamtime": f.beamtime, "run_id": f.run_id,
                        "size": f.size, "mtime": f.mtime, "parts": f.parts, "sidecar": "{}"}
                written += sum(1 for r in file_rows(unit, settings) if r["kind"] == "image")
            return written

        with_spark()  # warm the executors' Python workers and imports once, outside the timing
        result = record("ingest", figure=timed_rate(with_spark), baseline=timed_rate(single_process),
                        unit="frames/s", repeats=3, target=">= 1.8x the single-process loop on 2 cores",
                        sizes={"files": FILES, "frames": frames, "frame_shape": list(SHAPE), "archive_mb": round(mb, 1),
                               "master": config.spark.master},
                        notes=f"MB/s = frames/s x {mb / frames:.2f} MB per frame; ingest includes writing the "
                              "images table, manifest and quarantine, the loop writes nothing")

        full_times, incremental_times = [], []
        for k in range(3):
            data = Path(tmp, f"incremental{k}")
            cfg = load_config(None, base + [f"paths.root={data}", f"ingest.archive={root}"])
            start = time.perf_counter()
            ingest(spark, cfg)
            full_times.append(time.perf_counter() - start)
            write_archive(root, FILES + k, 1, f"tonight{k}")   # 1% new files (1 of 96), in tonight's run
            start = time.perf_counter()
            ingest(spark, cfg)
            incremental_times.append(time.perf_counter() - start)
        incremental = iter(incremental_times)
        full = iter(full_times)
        record("ingest_incremental", figure=lambda: next(incremental), baseline=lambda: next(full),
               unit="s", repeats=3, target="incremental run with 1% new files <= 5% of the full run",
               sizes={"files": FILES, "new_files": 1, "frames": frames},
               notes="ratio = incremental seconds / full seconds (lower is better); the new file is in a new run "
                     "(tonight's), as beamlines write; the incremental run lists the archive, reads the manifest, "
                     "reads 1 file, writes 1 new run partition and rewrites the small manifest and quarantine. "
                     "A new file in an existing run rewrites that run's partition (worst case)")
        spark.stop()
        return result
