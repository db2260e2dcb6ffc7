"""The bag-of-features Pipeline from the configuration, and what its four jobs share.

``bof_pipeline(config)`` is the whole method as one ``pyspark.ml.Pipeline``: fit it on training
images, save the ``PipelineModel``, and ``transform`` scores any images table. The jobs run the
same stages one at a time so that each step's output (dictionary, features, SVMs) is kept:

    build_dictionary  images (training runs)  -> models/bof/dictionary
    spm_features      images + dictionary     -> features table (+ bof_skipped table)
    train_svm         features (training runs) -> models/bof/svm-<labels>, models/bof/pipeline-<labels>
    evaluate          features (test runs) + SVMs -> reports/bof/results-<labels>.json / .md
"""
from __future__ import annotations

import re

from pyspark.ml import Pipeline
from pyspark.sql import functions as F

from xray_spark.bof.stages import PatchDescriptors, SpatialPyramid, VisualDictionary
from xray_spark.bof.svm import ChiSquareSVMs
from xray_spark.metrics import split_runs


def stages(config) -> tuple[PatchDescriptors, VisualDictionary, SpatialPyramid, ChiSquareSVMs]:
    """The four stages with the sizes of ``config.bof`` (its preset applied)."""
    b = config.bof.effective()
    descriptors = PatchDescriptors(patchesPerImage=b.patches_per_image, scales=b.scales,
                                   descriptorSize=b.descriptor_size, seed=b.seed)
    dictionary = VisualDictionary(k=b.words, maxIter=b.kmeans_max_iter, tol=b.kmeans_tol, sampleSize=b.sample_size,
                                  initSampleSize=b.init_sample_size, implementation=b.kmeans,
                                  chunkRows=b.assign_chunk_rows, seed=b.seed,
                                  progressInterval=config.progress.interval_s)
    pyramid = SpatialPyramid(numWords=b.words, levels=b.pyramid_levels)
    svms = ChiSquareSVMs(labelSet=b.label_set, cGrid=b.svm_c, gammaScales=b.svm_gamma_scales, folds=b.cv_folds,
                         kernelBlocks=b.kernel_blocks, seed=b.seed, progressInterval=config.progress.interval_s)
    return descriptors, dictionary, pyramid, svms


def bof_pipeline(config) -> Pipeline:
    """descriptors -> dictionary -> spatial pyramid -> SVMs, as one Pipeline."""
    return Pipeline(stages=list(stages(config)))


def label_slug(label_set: str) -> str:
    """A directory-safe name of a label set (``top17``; tag lists become ``tags-<names>``)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", label_set).strip("-").lower()
    return slug if "|" not in label_set else f"tags-{slug}"[:80]


def with_split(df, config):
    """``df`` with a ``split`` column: 'test' for the held-out runs, else 'train' (see ``evaluate.split_runs``).

    Only the distinct run ids reach the driver.
    """
    runs = [r[0] for r in df.select("run_id").distinct().collect()]
    test = sorted(split_runs(runs, config.bof.test_fraction, config.bof.seed))
    return df.withColumn("split", F.when(F.col("run_id").isin(test), "test").otherwise("train"))


def add_images_argument(parser) -> None:
    parser.add_argument("--images", metavar="URL", help="images table (default: paths.images of the configuration)")
