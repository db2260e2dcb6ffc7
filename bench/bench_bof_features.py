"""Bag-of-features feature extraction at paper sizes: 1000 patches at 3 scales, 2000 words, 3 levels.

- ``bof_features``: images/s of PatchDescriptors -> VisualDictionaryModel -> SpatialPyramid on
  Spark ``local[*]`` (all cores), 256x256 images read from Parquet. Baseline: the same NumPy
  functions image by image in one process with one BLAS thread (one core).
- ``bof_word_assignment``: GFLOP/s of ``pyramid.assign_words`` (2 n d k flops for n descriptors,
  d dimensions, k words) against the machine's float32 GEMM rate (a 4096^3 ``np.matmul``),
  measured alternately in the same run; the ratio is the fraction of the GEMM rate reached
  (target >= 0.5).
"""
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import record, timed_rate

N, SIZE, PATCHES, SCALES, DESCRIPTOR, K, LEVELS = 128, 256, 1000, [8, 16, 32], 8, 2000, 3


def _image(i: int) -> tuple[np.ndarray, np.ndarray]:
    """A log-scaled-looking 256x256 image: background, a ring, a horizon; a beamstop bar masked."""
    rng = np.random.default_rng(i)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    image = 0.1 + 0.05 * rng.random((SIZE, SIZE))
    image += 0.5 * np.exp(-((np.hypot(rows - 0.5, cols - 0.5) - rng.uniform(0.2, 0.4)) / 0.02) ** 2)
    image += 0.3 * np.exp(-((rows - rng.uniform(0.3, 0.7)) / 0.03) ** 2)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[: SIZE // 2, SIZE // 2 - 6: SIZE // 2 + 6] = True
    return image.astype(np.float32), mask


def _images(batches):
    from xray_spark import schema

    for batch in batches:
        yield schema.records_to_arrow([schema.image_record(
            image_id=f"b{i}", source="synthetic", beamtime="bench", run_id="bench", frame=i, image=_image(i)[0],
            mask=_image(i)[1], tag_names=[], provenance={}) for i in batch.column("id").to_pylist()])


def gemm_rate(n: int = 4096) -> float:
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    start = time.perf_counter()
    np.matmul(a, b)
    return 2 * n ** 3 / (time.perf_counter() - start) / 1e9


def main():
    from pyspark.ml import PipelineModel
    from threadpoolctl import threadpool_limits

    from xray_spark import schema
    from xray_spark.bof import descriptors as desc
    from xray_spark.bof.pyramid import assign_words, spatial_pyramid
    from xray_spark.bof.stages import PatchDescriptors, SpatialPyramid, VisualDictionaryModel
    from xray_spark.config import load_config
    from xray_spark.io import tables
    from xray_spark.spark import build_session

    rng = np.random.default_rng(1)
    centres = rng.random((K, desc.descriptor_length(DESCRIPTOR)), dtype=np.float32)
    descriptors = rng.random((64_000, centres.shape[1]), dtype=np.float32)
    flops = 2 * len(descriptors) * centres.shape[1] * K

    def assignment_rate() -> float:
        start = time.perf_counter()
        assign_words(descriptors, centres)
        return flops / (time.perf_counter() - start) / 1e9

    gemm_rate()
    record("bof_word_assignment", figure=assignment_rate, baseline=gemm_rate, unit="GFLOP/s", repeats=5,
           sizes={"descriptors": len(descriptors), "dimensions": centres.shape[1], "words": K, "chunk_rows": 2048,
                  "gemm": "4096^3 float32"},
           target="ratio >= 0.5 of the machine's measured float32 GEMM rate",
           notes="flops counted as 2 n d k; time includes the argmin and the distances of the winners")

    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    config = load_config(None, ["spark.ui=false", "progress.console=never"])
    spark = build_session(config, "bench-bof-features")
    with tempfile.TemporaryDirectory(prefix="bench-bof-") as tmp:
        url = Path(tmp, "images").as_uri()
        tables.write_table(spark.range(0, N, numPartitions=8).mapInArrow(_images, schema.spark_schema()), url, 8)
        dictionary = VisualDictionaryModel()
        dictionary.set_arrays({"centres": centres})
        model = PipelineModel([PatchDescriptors(patchesPerImage=PATCHES, scales=SCALES, descriptorSize=DESCRIPTOR),
                               dictionary, SpatialPyramid(numWords=K, levels=LEVELS)])

        def on_spark() -> int:
            model.transform(spark.read.parquet(url)).select("features").write.format("noop").mode("overwrite").save()
            return N

        def one_core() -> int:
            with threadpool_limits(1):
                for i in range(N // 4):
                    image, mask = _image(i)
                    d, c = desc.patch_descriptors(image, mask, n_patches=PATCHES, scales=SCALES, size=DESCRIPTOR,
                                                  seed=desc.image_seed(0, f"b{i}"))
                    spatial_pyramid(assign_words(d, centres)[0], c, K, LEVELS)
            return N // 4

        record("bof_features", figure=timed_rate(on_spark), baseline=timed_rate(one_core), unit="images/s",
               repeats=3, sizes={"images": N, "image_size": SIZE, "patches": PATCHES, "scales": SCALES,
                                 "words": K, "levels": LEVELS, "cores": os.cpu_count(), "master": config.spark.master},
               notes="descriptors + word assignment + 3-level pyramid; figure on all cores through Spark "
                     "(Parquet read, Arrow batches), baseline the same NumPy in one process on one core")
    spark.stop()


if __name__ == "__main__":
    sys.exit(main())
