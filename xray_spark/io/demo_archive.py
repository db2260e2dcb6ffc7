"""A small beamtime archive in the real formats, rendered by the physics generator, for the demo.

Each file holds raw detector counts from ``xray_spark.simulate`` (scene, physics, detector noise)
on the generator's render grid, written in the format a beamline would use, with the geometry in
that format's own header: EDF (2 frames, ESRF keys), Pilatus CBF (bad pixels -1), multi-page TIFF,
and Eiger NeXus master + bitshuffle/LZ4 data files (bad pixels in ``pixel_mask``). A few damaged
files (empty, truncated) show the quarantine, and ``labels.csv`` gives expert tags (the
generator's visible tags) for the first file of every run.

Files are written by executor tasks (one per file), so the archive root must be a directory every
executor can write (any local directory on a local master).
"""
from __future__ import annotations

import csv
import os

import pandas as pd

FORMATS = ("edf", "cbf", "tif", "eiger")
FRAMES = {"edf": 2, "cbf": 1, "tif": 2, "eiger": 3}


def _frame(config, seed: int, index: int):
    """(raw counts with bad pixels marked, bad mask, header ``Geometry``, visible tags) of one frame."""
    import numpy as np

    from xray_spark.simulate.detectors import detector
    from xray_spark.simulate.render import render, scene_geometry
    from xray_spark.simulate.scene import sample_scene
    from xray_spark.simulate.visibility import visible_tags

    sim = config.simulate
    scene, rng = sample_scene(sim, seed, index)
    det = detector(scene["detector"])
    grid = (sim.render_size, sim.render_size)
    rendered = render(scene, grid, rng)
    geometry = scene_geometry(scene).resampled(grid)    # the written frame is the render grid
    counts = np.rint(np.clip(rendered.counts, 0, 2**31 - 2))
    return counts, rendered.bad, geometry, visible_tags(scene, rendered, det, sim)


def write_file(config, root: str, seed: int, number: int, runs: int) -> dict:
    """Write archive file ``number`` (its format cycles through ``FORMATS``); returns its facts."""
    import numpy as np

    from xray_spark.io import detector_writers

    fmt = FORMATS[number % len(FORMATS)]
    run = f"run{number % runs + 1:02d}"
    directory = os.path.join(root, "demo-beamtime", run)
    os.makedirs(directory, exist_ok=True)
    # files of one archive run are frames of one generated run (same sample and set-up)
    first = (number % runs) * config.simulate.images_per_run + (number // runs) * max(FRAMES.values())
    frames = [_frame(config, seed, first + k) for k in range(FRAMES[fmt])]
    stack = np.stack([c for c, _, _, _ in frames])
    bad = frames[0][1]
    geometry = frames[0][2]
    name = f"scan{number:04d}"
    if fmt == "edf":
        path = os.path.join(directory, f"{name}.edf")
        detector_writers.write_edf(path, [np.where(b, np.nan, c) for c, b, _, _ in frames], geometry)
    elif fmt == "cbf":
        path = os.path.join(directory, f"{name}.cbf")
        detector_writers.write_cbf(path, np.where(bad, -1, stack[0]), geometry)
    elif fmt == "tif":
        path = os.path.join(directory, f"{name}.tif")
        detector_writers.write_tiff(path, [np.where(b, 0, c) for c, b, _, _ in frames], geometry)
    else:
        path = os.path.join(directory, f"{name}_master.h5")
        detector_writers.write_eiger(path, stack, geometry, frames_per_file=2, pixel_mask=bad)
    return {"path": os.path.relpath(path, root), "format": fmt, "frames": len(frames),
            "tags": ";".join(frames[0][3])}


def _write_partition(config, root: str, seed: int, runs: int):
    def write(batches):
        for batch in batches:
            yield pd.DataFrame([write_file(config, root, seed, int(i), runs) for i in batch["id"]])
    return write


def build_archive(spark, config, root: str, files: int, runs: int, seed: int) -> pd.DataFrame:
    """Write ``files`` detector files over ``runs`` runs under ``root`` (on executors), plus two
    damaged files and ``labels.csv``; returns one row per file written (path, format, frames, tags)."""
    root = os.path.abspath(root)
    os.makedirs(root, exist_ok=True)
    written = (spark.range(0, files, numPartitions=min(files, spark.sparkContext.defaultParallelism * 2))
               .mapInPandas(_write_partition(config, root, seed, runs),
                            "path string, format string, frames long, tags string")
               .toPandas().sort_values("path", ignore_index=True))
    damaged = os.path.join(root, "demo-beamtime", "run01")
    open(os.path.join(damaged, "empty0001.cbf"), "wb").close()
    with open(os.path.join(root, written["path"][0]), "rb") as f:
        blob = f.read()
    with open(os.path.join(damaged, "truncated0001" + os.path.splitext(written["path"][0])[1]), "wb") as f:
        f.write(blob[: len(blob) // 3])
    first_of_run = written.groupby(written["path"].str.split("/").str[1]).head(1)
    with open(os.path.join(root, "labels.csv"), "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["path", "tags"])
        for row in first_of_run.itertuples():
            out.writerow([f"{row.path}#0", row.tags])
    return written
