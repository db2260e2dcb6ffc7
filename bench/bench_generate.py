"""Synthetic image generation: images/s per core against a naive renderer, and end to end on Spark.

Per-core figures are images per CPU-second of the process (``time.process_time``), so that the
other jobs of a shared machine do not distort them; the Spark figure is wall-clock.

1. ``generate`` (256 x 256, one core): ``simulate.make_image`` (scene, render on the 256 x 256
   grid, visible labels, preprocess, table row) against the naive approach of the older
   generators, reimplemented here on the very same scenes: the detector's full frame
   (e.g. 1043 x 981 for a Pilatus 1M), pyFAI's q and chi maps of every image
   (``Geometry.qArray`` / ``center_array``), every feature evaluated on every pixel, numpy's
   exact Poisson sampler, labels from the sampled parameters (visible or not), then the same
   ``preprocess`` down to 256 x 256. Target: >= 250 images/s per core, ~100x the older
   generator's 2.4 images/s.
2. ``generate_1024``: the same two at 1024 x 1024 (render and store at 1024).
3. ``generate_spark``: generation written to Parquet by ``xray-spark generate``'s code path on
   local Spark with all cores, against the single-core ``make_image`` loop, both wall-clock:
   how long the 100,000-image paper training set takes on this machine (with its current load,
   recorded as ``load_average``), and the CPU time per image of the whole process tree (driver,
   Spark JVM, Python workers), from which the time on idle cores follows.
"""
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import record


def naive_image(config, seed, index):
    """The naive renderer: the detector's full frame with pyFAI's q/chi maps, every feature on every
    pixel, numpy's exact Poisson sampler, labels from the sampled parameters, then ``preprocess``."""
    from xray_spark.preprocess import preprocess
    from xray_spark.simulate import features as F
    from xray_spark.simulate.detectors import detector, inactive_fraction
    from xray_spark.simulate.render import RADIAL, radial_profile, scene_geometry
    from xray_spark.simulate.scene import sample_scene

    scene, rng = sample_scene(config.simulate, seed, index)
    shape = detector(scene["detector"]).shape
    g = scene_geometry(scene).integrator()
    q = g.qArray(shape) / 10.0
    chi = g.center_array(shape, unit="chi_rad") + np.pi / 2
    image = np.full(shape, scene["background"], np.float64)
    tags = set(scene["sample_tags"])
    for feature in scene["features"]:
        if feature["kind"] in RADIAL:
            part = radial_profile(feature, q.ravel()).reshape(shape)
            if feature.get("kappa"):
                part = part * F.orientation(chi, feature["chi0"], feature["kappa"], feature.get("fold", 2))
            image += part
        tags.update(feature["tags"])                         # labelled from parameters, visible or not
    counts = rng.poisson(image * g.solidAngleArray(shape) * scene["exposure"]).astype(np.float32)
    stored, mask = preprocess(counts, inactive_fraction(scene["detector"], shape) > 0.5, config.tables.image_size,
                              full_scale_counts=config.preprocess.full_scale_counts)
    return stored, mask, sorted(tags)


def tree_cpu_seconds() -> float:
    """CPU seconds used so far by this process and all its children (the Spark JVM, Python workers)."""
    import psutil

    total = 0.0
    for process in [psutil.Process()] + psutil.Process().children(recursive=True):
        try:
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.Error:
            pass
    return total


def per_core(config, images, fn):
    """images per second of this process's CPU time: a per-core figure that other jobs on a
    shared machine do not inflate (threads, e.g. pyFAI's OpenMP, count with their CPU time)."""
    def rate():
        start = time.process_time()
        for i in range(images):
            fn(config, 0, i)
        return images / (time.process_time() - start)
    return rate


def main():
    from xray_spark.config import load_config
    from xray_spark.io import tables
    from xray_spark.simulate import generate_images, make_image
    from xray_spark.simulate.synthetic_images import config_fingerprint
    from xray_spark.spark import build_session

    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    config = load_config(None, ["spark.ui=false", "progress.console=never"])
    fingerprint = config_fingerprint(config)

    def fast(c, seed, i):
        return make_image(c, seed, i, fingerprint if c is config else None)

    for i in range(5):                                        # warm the per-process caches of both
        fast(config, 0, i), naive_image(config, 0, i)
    record("generate", figure=per_core(config, 400, fast), baseline=per_core(config, 8, naive_image),
           unit="images/s", repeats=3, sizes={"image_size": 256, "render_size": 256, "cores": 1},
           target=">= 250 images/s per core (~100x the older generator's 2.4 images/s)",
           notes="images per CPU-second, one process. figure: simulate.make_image (scene, render on the stored "
                 "grid, visible labels, preprocess, row); baseline: naive renderer of the same scenes on the "
                 "detector's full frame (pyFAI q/chi maps per image, every feature on every pixel, numpy "
                 "Poisson, labels from parameters, same preprocess to 256); no Spark")

    big = load_config(None, ["spark.ui=false", "progress.console=never", "tables.image_size=1024",
                             "simulate.render_size=1024"])
    fast(big, 0, 0), naive_image(big, 0, 0)
    record("generate_1024", figure=per_core(big, 30, fast), baseline=per_core(big, 4, naive_image),
           unit="images/s", repeats=3, sizes={"image_size": 1024, "render_size": 1024, "cores": 1},
           notes="as generate, rendered (figure) and stored (both) at 1024 x 1024")

    n_spark = 2000
    spark = build_session(config, "bench-generate")
    cores = spark.sparkContext.defaultParallelism
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        url = Path(tmp, "images").as_uri()

        cpu_ms = []

        def end_to_end():
            start, cpu_start = time.perf_counter(), tree_cpu_seconds()
            tables.write_table(generate_images(spark, config, n_images=n_spark, seed=1), url,
                               row_group_size_mb=config.tables.row_group_size_mb)
            cpu_ms.append(1e3 * (tree_cpu_seconds() - cpu_start) / n_spark)
            return n_spark / (time.perf_counter() - start)

        end_to_end()                                          # warm the executors' Python workers
        def single_core_wall():
            start = time.perf_counter()
            for i in range(300):
                fast(config, 1, i)
            return 300 / (time.perf_counter() - start)

        result = record("generate_spark", figure=end_to_end, baseline=single_core_wall,
                        unit="images/s", repeats=3,
                        sizes={"images": n_spark, "image_size": 256, "cores": cores},
                        target="100,000 images in < 10 min on 2 cores (>= 167 images/s)",
                        notes="wall-clock, both: generate_images + tables.write_table (zstd Parquet) on local Spark "
                              "with all cores, against the single-core make_image loop in the driver (no Spark, no "
                              "writing); the ratio is the parallel speed-up net of Spark's overheads")
        size = sum(f.stat().st_size for f in Path(tmp, "images").rglob("*.parquet"))
    spark.stop()
    minutes = 100_000 / result["figure"] / 60
    print(f"generate_spark: {size / n_spark / 1024:.1f} KiB per stored image; "
          f"100,000 images would take {minutes:.1f} min on this machine")
    import json

    from bench.harness import RESULTS
    path = RESULTS / "generate_spark.json"
    data = json.loads(path.read_text())
    cpu = statistics.median(cpu_ms)
    idle_minutes = 100_000 * cpu / 1e3 / cores / 60
    print(f"generate_spark: {cpu:.1f} ms of CPU per image (driver, JVM and Python workers): 100,000 images "
          f"need {idle_minutes:.1f} min of {cores} idle cores")
    data.update(bytes_per_image=size / n_spark, minutes_per_100k=minutes, load_average=os.getloadavg(),
                cpu_ms_per_image=cpu, minutes_per_100k_idle_cores=idle_minutes)
    path.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
