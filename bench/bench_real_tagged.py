"""What a scientist's tags of real frames are worth: the shipped ensemble trained on with tagged
real frames (``adapt --method tagged``), scored on real frames it was not trained on.

Cross-validation grouped by source: the development set's sources (the repository each frame came
from) are dealt into ``FOLDS`` folds; for each fold every member of the shipped ensemble is
fine-tuned on the other folds' tagged frames mixed with generated images (``adapt --method
tagged`` on the ensemble), and the fold's frames are scored by the ensemble of the fine-tuned
members. Each frame is thus scored by models that saw no frame of its source, as a new
beamline's frames would be. The pooled out-of-fold scores give AP
per tag and mAP, beside the shipped model's on the same frames, with a paired bootstrap over the
frames; the generated test images (seed 12) are scored by the last fold's ensemble.

With ``--by frame`` the frames are dealt out one by one instead, so a held-out frame's source
usually has frames in training: what tagging part of one's own archive buys for the rest of it.

With ``--by set`` the ensemble is fine-tuned once, on the real-frame training set
(``datasets/real_train``: other frames, mostly of other repositories), and every development frame
is scored: what a labelled real training set kept apart from the development set buys.
``--with-training-set`` adds those frames to every fold's training (``--by source|frame``).

``python -m bench real_tagged [--folds 4] [--by source|frame|set] [--with-training-set]`` (about
6 minutes per fold on 2 cores).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.bench_real import (
    DEV,
    N_SYNTHETIC,
    SEED_SYNTHETIC,
    TRAIN,
    dev_scores,
    score_matrix,
    source_of,
    stored_as_trained,
)
from bench.harness import RESULTS, machine

FOLDS = 4
N_MIX, SEED_MIX = 3000, 13          # generated images mixed with the tagged frames (not the test seed)
BOOTSTRAP = 1000


def folds_of(groups: list[str], folds: int) -> dict[str, int]:
    """Each group's fold (``groups``: each frame's group, its source or its own file): the largest
    groups first, each to the fold with the fewest frames so far (ties: the lower fold), so that the
    folds are of about equal size."""
    sizes = {g: groups.count(g) for g in sorted(set(groups))}
    filled, fold_of = [0] * folds, {}
    for group in sorted(sizes, key=lambda g: (-sizes[g], g)):
        k = filled.index(min(filled))
        fold_of[group], filled[k] = k, filled[k] + sizes[group]
    return fold_of


def write_labels(rows: list[dict], path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def paired_bootstrap(scores_a: np.ndarray, scores_b: np.ndarray, dev, seed: int = 0) -> dict:
    """mAP(b) - mAP(a) over frames resampled with replacement (the same resample for both)."""
    from xray_spark.labelling.dev_set import DevLabels, score_dev_set

    rng = np.random.default_rng(seed)
    scored = score_dev_set(scores_a, dev)["scored_tags"]
    keep = [dev.tags.index(t) for t in scored]
    diffs = []
    for _ in range(BOOTSTRAP):
        k = rng.integers(0, len(dev.image_ids), len(dev.image_ids))
        sample = DevLabels([dev.image_ids[i] for i in k], [dev.files[i] for i in k], scored, dev.labels[k][:, keep])
        a, b = (score_dev_set(s[k][:, keep], sample, min_positives=1)["mAP"] for s in (scores_a, scores_b))
        diffs.append(b - a)
    diffs = np.array(diffs)
    return {"resamples": BOOTSTRAP, "mean": float(np.nanmean(diffs)),
            "interval_95": [float(np.nanpercentile(diffs, 2.5)), float(np.nanpercentile(diffs, 97.5))],
            "p_no_gain": float(np.nanmean(diffs <= 0))}


def main(argv: list[str] | None = None):
    from xray_spark import modeldir, tags
    from xray_spark.cnn.tagged_training import train_on_tagged
    from xray_spark.config import load_config
    from xray_spark.io import tables
    from xray_spark.io.ingestion import ingest
    from xray_spark.labelling.dev_set import read_dev_labels, score_dev_set
    from xray_spark.labelling.scoring import predict
    from xray_spark.paths import SHIPPED_MODEL
    from xray_spark.simulate.synthetic_images import generate_images
    from xray_spark.spark import build_session

    parser = argparse.ArgumentParser(prog="python -m bench.bench_real_tagged")
    parser.add_argument("--folds", type=int, default=FOLDS)
    parser.add_argument("--by", choices=["source", "frame", "set"], default="source",
                        help="source: no fold trains on a frame of the held-out frames' sources (a new beamline); "
                             "frame: frames dealt out one by one (tagging part of one's own archive); "
                             "set: trained once on datasets/real_train, every development frame scored")
    parser.add_argument("--with-training-set", action="store_true",
                        help="source, frame: every fold also trains on the frames of datasets/real_train")
    args = parser.parse_args(argv if argv is not None else sys.argv[2:] if sys.argv[1:2] == ["real_tagged"] else None)
    folds = args.folds
    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-real-tagged-") as tmp:
        directory = load_config(None, []).paths.model_dir(SHIPPED_MODEL)
        manifest = modeldir.read_manifest(directory)
        config = stored_as_trained(manifest, tmp)
        top17 = [t for t in manifest["tags"] if t in tags.subset("top17")]
        dev = read_dev_labels(str(DEV / "labels.csv"), top17)
        columns = [manifest["tags"].index(t) for t in top17]
        with open(DEV / "labels.csv", newline="", encoding="utf-8") as f:
            label_rows = list(csv.DictReader(f))
        sources = source_of()
        groups = [sources[f] if args.by == "source" else f for f in dev.files]
        fold_of = folds_of(groups, folds)
        frame_fold = np.array([fold_of[g] for g in groups])
        spark = build_session(config, "bench-real-tagged")
        try:
            ingest(spark, config, archive=str(DEV))
            images = config.paths.url("images")
            shipped_rows = dev_scores(spark, directory, images, f"{config.paths.url('predictions')}/shipped")
            shipped = score_matrix(shipped_rows, dev.image_ids, columns)
            synthetic_mix = tables.write_table(generate_images(spark, config, n_images=N_MIX, seed=SEED_MIX),
                                               f"{images}-mix")
            synthetic_test = tables.write_table(generate_images(spark, config, n_images=N_SYNTHETIC,
                                                                seed=SEED_SYNTHETIC), f"{images}-synthetic")
            train_rows, images_for_training = [], images
            if args.by == "set" or args.with_training_set:    # the training set, an archive of its own
                train_config = stored_as_trained(manifest, f"{tmp}/train")
                ingest(spark, train_config, archive=str(TRAIN))
                images_for_training = train_config.paths.url("images")
                with open(TRAIN / "labels.csv", newline="", encoding="utf-8") as f:
                    train_rows = [{k: r.get(k, "") for k in label_rows[0]} for r in csv.DictReader(f)]
            if args.by == "set":
                plans = [(train_rows, images_for_training, np.ones(len(dev.files), bool))]
            else:
                if args.with_training_set:   # both archives' frames in one table (image ids do not collide)
                    frames = spark.read.parquet(images)
                    frames.unionByName(spark.read.parquet(images_for_training).select(*frames.columns)) \
                        .write.mode("overwrite").parquet(f"{images}-with-training-set")
                    images_for_training = f"{images}-with-training-set"
                plans = [([r for r, f in zip(label_rows, frame_fold) if f != k] + train_rows, images_for_training,
                          frame_fold == k) for k in range(folds)]
            oof = np.full_like(shipped, np.nan)
            fold_facts = []
            for k, (training_rows, training_images, held_out) in enumerate(plans):
                seconds = time.monotonic()
                labels = write_labels(training_rows, Path(tmp) / f"fold{k}.csv")
                train_on_tagged(spark, config, directory, training_images, labels, synthetic_mix, name=f"fold{k}")
                rows = dev_scores(spark, config.paths.model_dir(f"fold{k}"), images,
                                  f"{config.paths.url('predictions')}/fold{k}")
                oof[held_out] = score_matrix(rows, dev.image_ids, columns)[held_out]
                fold_facts.append({"fold": k, "groups": ["datasets/real_dev"] if args.by == "set" else
                                   sorted(g for g, f in fold_of.items() if f == k), "frames": int(held_out.sum()),
                                   "training_frames": len(training_rows),
                                   "seconds": round(time.monotonic() - seconds, 1)})
                print(json.dumps(fold_facts[-1]), flush=True)
            last = f"fold{len(plans) - 1}"
            evaluation = predict(spark, config.paths.model_dir(last), synthetic_test,
                                 f"{config.paths.url('predictions')}/synthetic")["evaluation"]
            synthetic_map = float(np.nanmean([a for t, a in zip(evaluation.labels, evaluation.ap) if t in top17]))
            adaptation = modeldir.read_manifest(config.paths.model_dir(last))["adaptation"]
        finally:
            spark.stop()
    tagged, before = score_dev_set(oof, dev), score_dev_set(shipped, dev)
    out = {"name": {"source": "real_frames_tagged_cv", "frame": "real_frames_tagged_cv_by_frame",
                    "set": "real_frames_tagged_train_set"}[args.by]
                   + ("_with_training_set" if args.with_training_set and args.by != "set" else ""),
           "model_id": manifest["model_id"],
           "method": "each member of the shipped ensemble fine-tuned on the tagged frames of the other folds "
                     "mixed with generated images (adapt --method tagged), the held-out fold scored by their mean",
           "folds": fold_facts, "with_training_set": args.with_training_set or args.by == "set",
           "grouped_by": {"source": "source repository (datasets/real_dev/frames.csv source_repo)",
                          "frame": "file (frames dealt out one by one)",
                          "set": "trained on datasets/real_train, every development frame held out"}[args.by],
           "mix": {"generated_images": N_MIX, "seed": SEED_MIX, "target_share": config.adapt.target_share,
                   "epochs": config.adapt.epochs, "learning_rate": config.adapt.learning_rate,
                   "target_repeats_last_fold": adaptation["target_repeats"]},
           "figure": {"real_mAP": tagged["mAP"], "unit": "mAP over the top-17 tags with >= 5 positives, out-of-fold"},
           "baseline": {"shipped_real_mAP": before["mAP"], "chance": before["chance"]},
           "ratio": tagged["mAP"] / before["mAP"], "paired_bootstrap": paired_bootstrap(shipped, oof, dev),
           "real": tagged, "shipped": before,
           "synthetic_mAP_top17_last_fold": synthetic_map,
           "synthetic_mAP_top17_shipped": json.loads((RESULTS / "real_frames.json").read_text())["synthetic_mAP_top17"],
           "seconds": round(time.monotonic() - started, 1), "machine": machine(),
           "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (RESULTS / f"{out['name']}.json").write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(json.dumps({k: out[k] for k in ("figure", "baseline", "paired_bootstrap", "synthetic_mAP_top17_last_fold")},
                     default=float))
    for tag in tagged["scored_tags"]:
        print(f"  {tag:<24} AP {before['tags'][tag]['ap']:.3f} -> {tagged['tags'][tag]['ap']:.3f}"
              f"  positives {tagged['tags'][tag]['positives']}")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
