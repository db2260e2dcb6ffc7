"""Ensembles: model directories that score the same tags, their scores averaged (the ``ensemble``
kind of ``modeldir``).

Networks trained apart (another seed, another input) make different mistakes on frames unlike
their training images, more than they disagree where they are right, so the mean of their sigmoid
scores ranks real frames better than any one of them (Dietterich 2000; Lakshminarayanan et al.
2017). On the real-frame development set every two-model average scored above its better member
(docs/cnn.md). The mean score of a tag is not calibrated like a member's, so the ensemble's
thresholds are chosen again, on labelled generated images (``build``).

An ensemble directory is self-contained: its members are model directories under ``members/``
(their top-level files copied: manifest and weights), listed in the manifest's ``members`` as
paths relative to it. They must score the same tags on the same stored images (``input`` and
``preprocessing`` equal); the ensemble's tag order is the first member's.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np

from xray_spark import modeldir

log = logging.getLogger(__name__)

MEMBERS = "members"


def member_dirs(directory: str | Path, manifest: dict) -> list[Path]:
    """The members' directories of the ensemble ``directory``: each a relative path inside it."""
    directory = Path(directory)
    names = manifest.get("members")
    if not isinstance(names, list) or len(names) < 2:
        raise modeldir.ModelDirError(f"{directory}/{modeldir.MANIFEST}: an ensemble needs 'members', a list of at "
                                     f"least two model directories relative to it, got {names!r}")
    out = []
    for name in names:
        path = (directory / str(name)).resolve()
        if Path(str(name)).is_absolute() or directory.resolve() not in path.parents:
            raise modeldir.ModelDirError(f"{directory}/{modeldir.MANIFEST}: member {name!r} is not a directory "
                                         "inside the ensemble's; members are stored under it, e.g. members/a")
        out.append(path)
    return out


def check_members(manifests: list[dict], where: str) -> None:
    """Members must score the same tags of the same stored images; else a ``ModelDirError``."""
    first = manifests[0]
    for m in manifests[1:]:
        for key in ("input", "preprocessing"):
            if m[key] != first[key]:
                raise modeldir.ModelDirError(f"{where}: member {m['model_id']!r} has {key} {m[key]!r}, member "
                                             f"{first['model_id']!r} {first[key]!r}; members must read the same "
                                             "stored images")
        if sorted(m["tags"]) != sorted(first["tags"]):
            raise modeldir.ModelDirError(f"{where}: member {m['model_id']!r} scores other tags than "
                                         f"{first['model_id']!r}; members must score the same tags")


class EnsembleScorer:
    """The mean score of the members, in the ensemble's tag order."""

    def __init__(self, directory: Path, manifest: dict):
        self.manifest = manifest
        self.tags = list(manifest["tags"])
        self.thresholds = np.asarray(manifest["thresholds"], np.float64)
        self.batch = int(manifest.get("inference_batch", 64))
        self.members = [modeldir.load(d) for d in member_dirs(directory, manifest)]
        check_members([m.manifest for m in self.members], str(directory))
        self.columns = [[m.tags.index(t) for t in self.tags] for m in self.members]

    def score(self, images: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        """(n, n_tags) float32: the members' scores of stored images (n, H, W), averaged."""
        return mean_scores([m.score(images, masks) for m in self.members], self.columns)


def mean_scores(member_scores: list[np.ndarray], columns: list[list[int]]) -> np.ndarray:
    """(n, n_tags) float32: the members' (n, tags) scores, each in the ensemble's tag order
    (``columns``: its column of each ensemble tag), averaged."""
    return np.mean([s[:, cols] for s, cols in zip(member_scores, columns)], axis=0, dtype=np.float64).astype(np.float32)


def load_scorer(directory: Path, manifest: dict) -> EnsembleScorer:
    """The ``ensemble`` loader of ``modeldir.LOADERS``."""
    return EnsembleScorer(directory, manifest)


def model_id(name: str, members: list[dict]) -> str:
    """``name`` and a digest of the members' model ids (each names its weights): the same members
    give the same id."""
    return f"{name}-{hashlib.sha256(' '.join(m['model_id'] for m in members).encode()).hexdigest()[:12]}"


def assemble(members: list[str | Path], output: str | Path, name: str, inference_batch: int = 32) -> dict:
    """Copy the model directories ``members`` into ``output/members/`` and write the ensemble's
    manifest, thresholds the members' mean until ``build`` chooses them. Returns the manifest.

    ``inference_batch``: the batch an embedding pads every forward pass to (same bytes whatever
    the partitioning); each member pays it, so it is smaller than a CNN's 64. With 32 the stream's
    latency at 10 frames/s was 1.6 s against 2.2 s with 64 (docs/streaming.md)."""
    output = Path(output)
    if len(members) < 2:
        raise modeldir.ModelDirError(f"an ensemble needs at least two members, got {len(members)}")
    manifests = [modeldir.read_manifest(m) for m in members]
    check_members(manifests, f"ensemble {name}")
    tags = manifests[0]["tags"]
    if (output / MEMBERS).exists():
        shutil.rmtree(output / MEMBERS)
    names = []
    for i, (source, manifest) in enumerate(zip(members, manifests)):
        target = output / MEMBERS / f"{i}-{manifest['model_id']}"
        target.mkdir(parents=True)
        for f in Path(source).iterdir():
            if f.is_file() and not f.name.startswith("."):
                shutil.copyfile(f, target / f.name)
        names.append(str(target.relative_to(output)))
    thresholds = np.mean([[m["thresholds"][m["tags"].index(t)] for t in tags] for m in manifests], axis=0)
    manifest = {
        "kind": "ensemble", "model_id": model_id(name, manifests), "members": names, "tags": tags,
        "thresholds": [float(t) for t in thresholds], "input": manifests[0]["input"],
        "preprocessing": manifests[0]["preprocessing"], "inference_batch": inference_batch,
        "training": {"method": "mean of the members' sigmoid scores",
                     "members": [{"model_id": m["model_id"], "metrics": m.get("metrics", {})} for m in manifests]},
        "metrics": {},
    }
    modeldir.write_manifest(output, manifest)
    return modeldir.read_manifest(output)


def build(spark, members: list[str | Path], images_url: str, output: str | Path, name: str, *,
          predictions_url: str, inference_batch: int = 32, interval_s: float = 30.0) -> dict:
    """The ensemble of ``members`` in ``output``, its per-tag thresholds chosen (F1, as ``train_cnn``
    chooses a member's) on the labelled images of ``images_url``, scored on the executors into
    ``predictions_url``; the manifest records their AP and mAP. Returns the manifest."""
    from xray_spark.labelling.scoring import predict

    manifest = assemble(members, output, name, inference_batch)
    result = predict(spark, output, images_url, predictions_url, interval_s=interval_s)
    if not result["labelled"]:
        raise modeldir.ModelDirError(f"{images_url}: no labelled images to choose the ensemble's thresholds on; "
                                     "give generated images (xray-spark generate) the members were not trained on")
    # scores and labels of the labelled rows: n x n_tags numbers, a small aggregate
    pairs = spark.read.parquet(predictions_url).filter("labels IS NOT NULL AND error IS NULL") \
        .select("scores", "labels").toPandas()
    scores, labels = np.stack(pairs["scores"].to_numpy()), np.stack(pairs["labels"].to_numpy())
    evaluation = result["evaluation"]
    manifest.update(
        thresholds=[float(t) for t in modeldir.choose_thresholds(labels, scores)],
        metrics={"validation": {**evaluation.validation_record(), "images_url": images_url}})
    modeldir.write_manifest(output, {k: v for k, v in manifest.items() if k not in ("created", "versions", "format")})
    log.info("ensemble %s of %d members in %s: validation mAP %.3f on %d images", manifest["model_id"], len(members),
             output, evaluation.mean_ap, evaluation.n_images)
    return modeldir.read_manifest(output)
