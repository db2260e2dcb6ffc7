"""Similar-image retrieval on synthetic images with known tags: do a frame's nearest neighbours
carry the same tags?

Two synthetic sets from the generator, seeds 31 (validation) and 32 (test), ``N`` images each
(runs of 25 images), neither seen by the shipped ``cnn-top17`` (trained on seed 11). Every image is
embedded on the executors (``explore.embeddings.embed``: CNN penultimate layer, I(q) and
anisotropy, tag scores), and described in the same run by the two baselines:
- raw pixels: the stored image area-averaged to 32 x 32 (log scale, bad pixels 0), L2;
- the bag-of-features spatial pyramid (``bof``: dictionary fitted on the validation images),
  chi-square distance and L2 (the better of the two is the baseline).

Measure: precision@10 of the 10 nearest other frames of the same set sharing the query's tag set
restricted to the top 17 tags (the CNN's tags; the empty set counts as a set). Exact set equality
is strict: most sets of 17 tags are rare, so a query whose set fewer than 10 other images share
cannot reach 1. The headline averages over the queries whose set at least 10 others share (every
one of them can reach 1); the JSON also gives the average over all queries with its ceiling, and
the fraction of neighbours sharing at least one tag.

The combined embedding's part weights (``explore.weight_*``) are chosen on the validation set over
a grid and reported on the test set, with each part alone and the embedding without tag scores beside them.

``python -m bench retrieval [VAL_URL TEST_URL]`` reuses existing images tables.
"""
import itertools
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from bench.harness import record

N, SEED_VAL, SEED_TEST, K, MIN_SHARED = 3000, 31, 32, 10, 10
BOF = ["bof.patches_per_image=300", "bof.words=200", "bof.sample_size=200000"]
RAW_SIDE = 32
WEIGHT_GRID = {"cnn": [1.0], "profile": [0.0, 0.1, 0.25, 0.5], "anisotropy": [0.0, 0.1, 0.25],
               "scores": [0.0, 0.5, 1.0, 2.0, 4.0]}


def _raw_pixels(batches):
    """Executor side: each stored image area-averaged to RAW_SIDE x RAW_SIDE, as a vector."""
    import pyarrow as pa

    for batch in batches:
        rows = batch.to_pydict()
        vectors = []
        for blob, h, w in zip(rows["image"], rows["height"], rows["width"]):
            image = np.frombuffer(blob, "<f4").reshape(h, w)
            vectors.append(image.reshape(RAW_SIDE, h // RAW_SIDE, RAW_SIDE, w // RAW_SIDE).mean(axis=(1, 3)).ravel())
        yield pa.RecordBatch.from_pydict({"image_id": rows["image_id"], "raw": vectors})


def describe_set(spark, config, images_url: str, tmp: str, name: str, dictionary) -> dict:
    """Embeddings, raw pixels, pyramids and top-17 tag sets of one images table, collected for the
    bench's numpy measure (a few MB: the bench, not the library, gathers them)."""
    from pyspark.ml import PipelineModel

    from xray_spark import tags
    from xray_spark.bof import pipeline
    from xray_spark.explore.embeddings import EmbeddingSettings, embed, read_embeddings
    from xray_spark.io import tables
    from xray_spark.paths import SHIPPED_MODEL

    embeddings_url = Path(tmp, f"{name}_embeddings").as_uri()
    embed(spark, config.paths.model_dir(SHIPPED_MODEL), images_url, embeddings_url, EmbeddingSettings.from_config(config))
    images = spark.read.parquet(images_url)
    raw = images.select("image_id", "image", "height", "width").mapInArrow(_raw_pixels, "image_id string, raw array<float>")
    descriptors, _, pyramid, _ = pipeline.stages(config)
    features = PipelineModel([descriptors, dictionary, pyramid]).transform(images).select("image_id", "features")
    tables.write_table(raw.join(features, "image_id"), Path(tmp, f"{name}_baselines").as_uri(), 32)
    frame = (read_embeddings(spark, embeddings_url).select("image_id", "cnn", "profile", "anisotropy", "scores",
                                                          "profile_axis")
             .join(spark.read.parquet(Path(tmp, f"{name}_baselines").as_uri()), "image_id")
             .join(images.select("image_id", "tag_names"), "image_id").orderBy("image_id").toPandas())
    top = set(tags.subset("top17"))
    stack = lambda column: np.stack(frame[column].to_numpy()).astype(np.float64)  # noqa: E731
    return {"ids": frame["image_id"].tolist(), "sets": [frozenset(t) & top for t in frame["tag_names"]],
            "cnn": stack("cnn"), "profile": stack("profile"), "anisotropy": stack("anisotropy"), "scores": stack("scores"),
            "raw": stack("raw"), "bof": np.nan_to_num(stack("features")),
            "image_space": int((frame["profile_axis"] == "radius").sum())}


def neighbours(vectors: np.ndarray, metric: str = "l2") -> np.ndarray:
    """(n, K) indices of each row's K nearest other rows."""
    if metric == "chi2":
        from sklearn.metrics.pairwise import additive_chi2_kernel

        distance = -additive_chi2_kernel(vectors)               # sum (x - y)^2 / (x + y)
    else:
        squared = (vectors ** 2).sum(axis=1)
        distance = squared[:, None] + squared[None, :] - 2 * vectors @ vectors.T
    np.fill_diagonal(distance, np.inf)
    return np.argsort(distance, axis=1, kind="stable")[:, :K]


def scores(sets: list, found: np.ndarray) -> dict:
    """precision@K: exact top-17 set, over eligible queries and over all; at least one shared tag."""
    counts = Counter(sets)
    exact = np.array([[sets[j] == sets[i] for j in row] for i, row in enumerate(found)]).mean(axis=1)
    overlap = np.array([[bool(sets[j] & sets[i]) or sets[j] == sets[i] for j in row]
                        for i, row in enumerate(found)]).mean(axis=1)
    eligible = np.array([counts[s] - 1 >= MIN_SHARED for s in sets])
    return {"precision_eligible": float(exact[eligible].mean()), "precision_all": float(exact.mean()),
            "shared_tag_precision": float(overlap.mean())}


def combined(data: dict, weights) -> np.ndarray:
    from xray_spark.explore.embeddings import unit_parts

    return unit_parts([data[part] for part in WEIGHT_GRID], weights).astype(np.float64)


def main(val_url: str | None = None, test_url: str | None = None):
    from xray_spark.bof import pipeline
    from xray_spark.config import load_config
    from xray_spark.io import tables
    from xray_spark.spark import build_session

    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])      # executors import bench.*
    config = load_config(None, ["spark.ui=false", "progress.console=never", "simulate.images_per_run=25", *BOF])
    spark = build_session(config, "bench-retrieval")
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        if val_url is None:
            from xray_spark.simulate import generate_images

            val_url, test_url = Path(tmp, "val").as_uri(), Path(tmp, "test").as_uri()
            tables.write_table(generate_images(spark, config, n_images=N, seed=SEED_VAL), val_url, 32)
            tables.write_table(generate_images(spark, config, n_images=N, seed=SEED_TEST), test_url, 32)
        descriptors, dictionary, _, _ = pipeline.stages(config)
        dictionary = dictionary.fit(descriptors.transform(spark.read.parquet(val_url)))
        data = {name: describe_set(spark, config, url, tmp, name, dictionary)
                for name, url in (("val", val_url), ("test", test_url))}
    spark.stop()
    grid = [w for w in itertools.product(*WEIGHT_GRID.values())]
    val_scores = {w: scores(data["val"]["sets"], neighbours(combined(data["val"], w)))["precision_eligible"]
                  for w in grid}
    best = max(grid, key=lambda w: (val_scores[w], -sum(w)))
    test = data["test"]
    found = {
        "cnn+physics": scores(test["sets"], neighbours(combined(test, best))),
        "cnn+physics, no tag scores": scores(test["sets"], neighbours(combined(test, (*best[:3], 0.0)))),
        "cnn penultimate only": scores(test["sets"], neighbours(combined(test, (1.0, 0.0, 0.0, 0.0)))),
        "cnn tag scores only": scores(test["sets"], neighbours(combined(test, (0.0, 0.0, 0.0, 1.0)))),
        "physics only": scores(test["sets"], neighbours(combined(test, (0.0, 1.0, best[2] or 0.25, 0.0)))),
        "raw pixels 32x32 (L2)": scores(test["sets"], neighbours(test["raw"])),
        "BoF pyramid (chi2)": scores(test["sets"], neighbours(test["bof"], "chi2")),
        "BoF pyramid (L2)": scores(test["sets"], neighbours(test["bof"])),
    }
    counts = Counter(test["sets"])
    ceiling = float(np.mean([min(K, counts[s] - 1) / K for s in test["sets"]]))
    eligible = sum(counts[s] - 1 >= MIN_SHARED for s in test["sets"])
    ours = found["cnn+physics"]["precision_eligible"]
    baseline = max(found[m]["precision_eligible"] for m in found if m.startswith(("raw", "BoF")))
    record("retrieval_precision10", figure=lambda: ours, baseline=lambda: baseline, unit="precision@10", repeats=1,
           target="precision@10 >= 0.8 and above both baselines (raw pixels, BoF pyramid) in the same run",
           sizes={"images_per_set": len(test["ids"]), "val_seed": SEED_VAL, "test_seed": SEED_TEST, "k": K,
                  "eligible_queries": int(eligible), "min_shared": MIN_SHARED,
                  "distinct_top17_sets": len(counts), "ceiling_all_queries": round(ceiling, 4),
                  "image_space_rows": test["image_space"], "bof": BOF,
                  "weights_chosen_on_val": dict(zip(WEIGHT_GRID, best)),
                  "val_precision_by_weights": {json.dumps(w): round(v, 4) for w, v in val_scores.items()},
                  "methods": {m: {k: round(v, 4) for k, v in s.items()} for m, s in found.items()}},
           notes="figure: CNN+physics embedding (weights chosen on the validation seed), precision@10 over the "
                 "test queries whose exact top-17 tag set at least 10 other test images share; baseline: the "
                 "better of raw pixels and the BoF pyramid on the same queries. methods: every representation, "
                 "precision over eligible queries, over all queries (ceiling_all_queries: the best any method "
                 "can get there) and the fraction of neighbours sharing at least one top-17 tag.")
    for method, s in found.items():
        print(f"  {method:<24} " + "  ".join(f"{k} {v:.3f}" for k, v in s.items()))
    print(f"  weights chosen on validation: {dict(zip(WEIGHT_GRID, best))}")


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
