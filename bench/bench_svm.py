"""Training the chi-square SVMs: 17 tags on 5000 images (spatial-pyramid histograms of 100 words).

Figure: seconds of ``ChiSquareSVMs.fit`` on Spark ``local[*]`` (distance blocks and tags spread
over the cores). Baseline: the same work in one process (``chi2_distances`` of all pairs, then
``fit_tag`` tag after tag). Lower is better: a ratio below 1 means Spark is faster. The grid is
cut to C in {1, 10}, gamma scale 1, 3 folds (7 SVM fits per tag) to keep the run short; the
default configuration tries 12 (C, gamma) pairs.
"""
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import record

N, TAGS, WORDS, LEVELS, RUNS = 5000, 17, 100, 3, 100
C_GRID, GAMMA_SCALES, FOLDS = [1.0, 10.0], [1.0], 3


def _rows(i: int):
    """Image i: a pyramid-like histogram (sparse, L1-normalised) whose words depend on its tags."""
    from xray_spark import tags

    rng = np.random.default_rng([7, i])
    present = rng.random(TAGS) < np.linspace(0.5, 0.1, TAGS)
    length = WORDS * sum(4 ** l for l in range(LEVELS))
    counts = rng.poisson(0.02, length).astype(np.float32)
    for t in np.flatnonzero(present):
        words = np.random.default_rng([8, t]).choice(length, 40, replace=False)
        counts[words] += rng.poisson(1.0, 40)
    features = counts / max(counts.sum(), 1.0)
    names = [n for n, p in zip(tags.subset("top17"), present) if p]
    return f"img{i:05d}", f"run{i % RUNS}", tags.encode(names).tolist(), features.tolist()


def main():
    from xray_spark import tags
    from xray_spark.bof.svm import ChiSquareSVMs, chi2_distances, fit_tag
    from xray_spark.config import load_config
    from xray_spark.spark import build_session

    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    config = load_config(None, ["spark.ui=false", "progress.console=never"])
    spark = build_session(config, "bench-svm")
    with tempfile.TemporaryDirectory(prefix="bench-svm-") as tmp:
        url = Path(tmp, "features").as_uri()
        (spark.sparkContext.parallelize(range(N), 8).map(_rows)
         .toDF("image_id string, run_id string, tags array<tinyint>, features array<float>").write.parquet(url))
        features = spark.read.parquet(url)
        estimator = ChiSquareSVMs(labelSet="top17", cGrid=C_GRID, gammaScales=GAMMA_SCALES, folds=FOLDS,
                                  kernelBlocks=8)

        def on_spark() -> float:
            start = time.perf_counter()
            estimator.fit(features)
            return time.perf_counter() - start

        def one_process() -> float:
            start = time.perf_counter()
            rows = sorted(_rows(i) for i in range(N))
            x = np.array([r[3] for r in rows], np.float32)
            labels, _ = tags.labels(np.array([r[2] for r in rows], np.int8), "top17")
            groups = np.array([r[1] for r in rows])
            distances = chi2_distances(x, x)
            mean = distances[np.triu_indices(N, 1)].mean()
            for j in range(TAGS):
                fit_tag(distances, labels[:, j].astype(int), groups, c_grid=C_GRID,
                        gammas=[s / mean for s in GAMMA_SCALES], n_folds=FOLDS, seed=0)
            return time.perf_counter() - start

        record("bof_svm_training", figure=on_spark, baseline=one_process, unit="s", repeats=1,
               sizes={"images": N, "tags": TAGS, "feature_length": WORDS * 21, "C": C_GRID,
                      "gamma_scales": GAMMA_SCALES, "folds": FOLDS, "fits_per_tag": len(C_GRID) * len(GAMMA_SCALES)
                      * FOLDS + 1, "cores": os.cpu_count(), "master": config.spark.master},
               notes="lower is better; both include the exact chi-square distances of all training pairs "
                     "(scikit-learn additive_chi2_kernel) and 17 cross-validated SVC(kernel='precomputed') fits")
    spark.stop()


if __name__ == "__main__":
    sys.exit(main())
