"""How the shipped model labels real detector frames: AP per tag and mAP on the real-frame
development set (``datasets/real_dev``, tagged by eye twice; see docs/real_frames.md), beside the
chance level and the same model's mAP on synthetic test images generated in the same run; and on
the real-frame training set (``datasets/real_train``), a second real measure while no model that
is scored is trained on it.

The frames go through the real ``ingest`` (local Spark), the model through ``predict``; AP per tag is
``metrics.average_precisions`` over the frames whose label is known (``labelling.dev_set``), mAP over
the top-17 tags with at least 5 positives. Baseline: the chance level (the mean prevalence of those
tags). Also the model adapted to the development frames by AdaBN (``cnn.adaptation``: batch-norm
statistics of the frames' images, their labels unused), scored the same way. Writes
``bench/results/real_frames.json`` and ``real_frames_worst.png`` (each tag's worst
false positives and false negatives). ``predict`` takes the two detector tags from the file where it
states its detector (``labelling.detector_tags``); ``detector_tags`` in the JSON counts the frames
by what their files state and gives the mAP without those tags.

``python -m bench.bench_real [MODEL_DIR]`` scores another model directory.
"""
import csv
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from bench.harness import RESULTS, machine

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "datasets" / "real_dev"
TRAIN = ROOT / "datasets" / "real_train"
N_SYNTHETIC, SEED_SYNTHETIC = 800, 12


def dev_scores(spark, directory, images_url: str, output_url: str) -> dict:
    """image_id -> row with the scores of ``directory``'s model (frames x tags: a small result)."""
    from xray_spark.labelling.scoring import predict

    predict(spark, directory, images_url, output_url)
    return {r["image_id"]: r for r in spark.read.parquet(output_url).filter("error IS NULL")
            .select("image_id", "scores").collect()}


def score_matrix(rows: dict, image_ids: list[str], columns: list[int]) -> np.ndarray:
    """The scores of ``dev_scores``'s rows as (frames in ``image_ids`` order, model columns ``columns``)."""
    return np.array([np.asarray(rows[i]["scores"])[columns] for i in image_ids])


def source_of() -> dict[str, str]:
    """Each development frame's file -> the repository it came from (``frames.csv``)."""
    with open(DEV / "frames.csv", newline="", encoding="utf-8") as f:
        return {r["file"]: r["source_repo"] for r in csv.DictReader(f)}


def stored_as_trained(manifest: dict, root: str):
    """A configuration under ``root`` that stores frames as the model was trained: its preprocessing."""
    from xray_spark.config import PreprocessConfig, load_config

    preprocessing = [f"preprocess.{k}={str(v).lower()}" for k, v in manifest["preprocessing"].items()
                     if k in PreprocessConfig.__dataclass_fields__]
    return load_config(None, ["spark.ui=false", "progress.console=never", f"paths.root={root}", *preprocessing])


def main(model: str | None = None):
    from pyspark.sql import functions as F

    from xray_spark import tags
    from xray_spark.cnn.adaptation import adapt
    from xray_spark.config import load_config
    from xray_spark.io import tables
    from xray_spark.io.ingestion import ingest
    from xray_spark.labelling.detector_tags import DETECTOR_TAGS, stated_detector
    from xray_spark.labelling.dev_set import read_dev_labels, score_dev_set, without_each_source, worst_cases
    from xray_spark.labelling.scoring import predict
    from xray_spark.modeldir import read_manifest
    from xray_spark.paths import SHIPPED_MODEL
    from xray_spark.report.worst_cases import draw_worst_cases
    from xray_spark.simulate.synthetic_images import generate_images
    from xray_spark.spark import build_session

    os.environ["PYTHONPATH"] = str(ROOT)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-real-") as tmp:
        directory = load_config(None, []).paths.model_dir(model or SHIPPED_MODEL)
        manifest = read_manifest(directory)
        config = stored_as_trained(manifest, tmp)
        dev = read_dev_labels(str(DEV / "labels.csv"), [t for t in manifest["tags"] if t in tags.subset("top17")])
        spark = build_session(config, "bench-real")
        try:
            ingested = ingest(spark, config, archive=str(DEV))
            rows = dev_scores(spark, directory, config.paths.url("images"), f"{config.paths.url('predictions')}/real")
            missing = [f for i, f in zip(dev.image_ids, dev.files) if i not in rows]
            dev = dev.only(rows)
            columns = [manifest["tags"].index(t) for t in dev.tags]
            scores = score_matrix(rows, dev.image_ids, columns)
            result = score_dev_set(scores, dev)
            stated = Counter(str(stated_detector(r["provenance"], r["detector"])) for r in   # file facts, no pixels
                             spark.read.parquet(config.paths.url("images")).select("image_id", "detector", "provenance")
                             .filter(F.col("image_id").isin(dev.image_ids)).collect())
            sources = source_of()
            by_source = without_each_source(scores, dev, [sources[f] for f in dev.files], result["scored_tags"])
            # AdaBN on the development frames themselves: their images, never their labels
            adapted_dir = Path(tmp) / "models" / "adapted"
            adapted_manifest = adapt(spark, directory, config.paths.url("images"), adapted_dir, name="adapted")
            adapted_rows = dev_scores(spark, adapted_dir, config.paths.url("images"),
                                      f"{config.paths.url('predictions')}/real-adapted")
            adapted = score_dev_set(score_matrix(adapted_rows, dev.image_ids, columns), dev)
            cases = {}
            shown = set()
            for tag in result["scored_tags"]:
                false_pos, false_neg = worst_cases(scores, dev, tag)
                cases[tag] = (false_pos, false_neg)
                shown |= {dev.image_ids[k] for k in false_pos + false_neg}
            stored = {r["image_id"]: np.frombuffer(r["image"], "<f4").reshape(r["height"], r["width"])
                      for r in spark.read.parquet(config.paths.url("images")).filter(F.col("image_id").isin(sorted(shown)))
                      .select("image_id", "image", "height", "width").collect()}  # the few frames drawn
            j = {t: dev.tags.index(t) for t in dev.tags}
            worst = RESULTS / ("real_frames_worst.png" if model is None else f"real_frames_worst_{Path(directory).name}.png")
            draw_worst_cases({t: ([(stored[dev.image_ids[k]], scores[k, j[t]], dev.files[k]) for k in fp],
                                  [(stored[dev.image_ids[k]], scores[k, j[t]], dev.files[k]) for k in fn])
                              for t, (fp, fn) in cases.items()}, worst)
            synthetic_url = f"{config.paths.url('images')}-synthetic"
            tables.write_table(generate_images(spark, config, n_images=N_SYNTHETIC, seed=SEED_SYNTHETIC), synthetic_url)
            synthetic = predict(spark, directory, synthetic_url, f"{config.paths.url('predictions')}/synthetic")
            # the training set's frames: a second real measure, while the model is not trained on them
            train_config = stored_as_trained(manifest, f"{tmp}/train")
            ingest(spark, train_config, archive=str(TRAIN))
            trained = read_dev_labels(str(TRAIN / "labels.csv"), dev.tags)
            train_rows = dev_scores(spark, directory, train_config.paths.url("images"),
                                    f"{train_config.paths.url('predictions')}/real")
            training_set = score_dev_set(score_matrix(train_rows, trained.image_ids, columns), trained)
        finally:
            spark.stop()
    top17 = [t for t in manifest["tags"] if t in tags.subset("top17")]
    evaluation = synthetic["evaluation"]
    synthetic_map = float(np.nanmean([a for t, a in zip(evaluation.labels, evaluation.ap) if t in top17]))
    name = "real_frames" if model is None else f"real_frames_{Path(directory).name}"
    out = {"name": name, "model_id": manifest["model_id"], "model_dir": str(directory),
           "preprocessing": manifest["preprocessing"], "augment": manifest["training"].get("cnn", {}).get("augment"),
           "figure": {"real_mAP": result["mAP"], "unit": "mAP over the top-17 tags with >= 5 positives"},
           "baseline": {"chance": result["chance"]}, "ratio": result["mAP"] / result["chance"],
           "real": result, "synthetic_mAP_top17": synthetic_map,
           "detector_tags": {"rule": "MarCCD and Photonics CCD from the file where it states its detector "
                                     "(labelling.detector_tags), else the network's scores",
                             "frames_by_stated_detector": dict(stated),
                             "mAP_without_detector_tags": float(np.mean(
                                 [result["tags"][t]["ap"] for t in result["scored_tags"] if t not in DETECTOR_TAGS]))},
           "without_each_source": {"range": [min(v["mAP"] for v in by_source.values() if v["mAP"] is not None),
                                             max(v["mAP"] for v in by_source.values() if v["mAP"] is not None)],
                                   "sources": by_source},
           "training_set": {"frames": len(trained.image_ids), "mAP": training_set["mAP"],
                            "chance": training_set["chance"], "tags": training_set["tags"],
                            "trained_on": "real_train" in str(manifest.get("adaptation", {}).get("labels_file", "")),
                            "note": "datasets/real_train (other frames, 13 of its 17 repositories not in the "
                                    "development set): a second real measure while the model is not trained on it"},
           "adapted": {"method": adapted_manifest["adaptation"]["method"], "images": "the development frames (labels unused)",
                       "mAP": adapted["mAP"], "tags": adapted["tags"]},
           "synthetic": {"images": N_SYNTHETIC, "seed": SEED_SYNTHETIC, "ap": dict(zip(evaluation.labels, evaluation.ap))},
           "frames_not_scored": missing, "ingest": {"files": ingested.files, "written": ingested.written,
                                                     "quarantined_files": ingested.quarantined_files},
           "target": "real mAP >= 0.85, no tag below 0.6, synthetic top-17 mAP >= 0.90",
           "seconds": round(time.monotonic() - started, 1), "machine": machine(),
           "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(json.dumps({k: out[k] for k in ("model_id", "figure", "baseline", "synthetic_mAP_top17")}, default=float),
          f"adapted (AdaBN) mAP {adapted['mAP']:.4f}; one source left out: {out['without_each_source']['range']}; "
          f"training set mAP {training_set['mAP']:.4f} (chance {training_set['chance']:.3f})")
    for tag, t in result["tags"].items():
        a = adapted["tags"][tag]["ap"]
        print(f"  {tag:<24} AP {t['ap'] if t['ap'] is None else round(t['ap'], 3)}  adapted {a if a is None else round(a, 3)}"
              f"  positives {t['positives']}/{t['known']}")
    return out


if __name__ == "__main__":
    main(*sys.argv[1:2])
