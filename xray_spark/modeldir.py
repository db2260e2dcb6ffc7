"""The model-directory protocol shared by every labelling model (CNN, bag of features).

A model directory holds ``manifest.json`` next to its weights. The manifest says what the model
is and how to feed it; ``load`` reads it and builds a scorer through the loader registered for its
``kind``. Loading never executes code from the directory: the loader is a function of this package
picked by name from ``LOADERS``, and weights are plain arrays (HDF5, NumPy ``.npz`` without pickle).

Manifest keys (all required):

``format``         ``"xray_spark.model/1"``
``kind``           a key of ``LOADERS``: ``"cnn"``, ``"bof"`` or ``"ensemble"`` (``xray_spark.ensemble``:
                   member directories inside it, their scores averaged)
``model_id``       unique name of this trained model, written into every prediction row
``tags``           tag names scored, in output column order
``thresholds``     one score threshold per tag (chosen on validation): a tag is predicted when
                   its score is at least its threshold
``input``          ``{"height", "width"}`` of the images the scorer expects (the stored size)
``preprocessing``  the ``preprocess`` configuration the training images were made with
``created``, ``versions``, ``training``, ``metrics``: provenance for people

A scorer has ``tags``, ``thresholds``, ``manifest`` and ``score(images, masks) -> (n, n_tags)``
float32, where ``images`` is (n, height, width) float32 and ``masks`` (n, height, width) bool,
both as stored in the `images` table.
"""
from __future__ import annotations

import importlib
import json
import os
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from xray_spark import tags as tagmod

FORMAT = "xray_spark.model/1"
MANIFEST = "manifest.json"
REQUIRED = ("format", "kind", "model_id", "tags", "thresholds", "input", "preprocessing")

# kind -> "module:function" taking (directory: Path, manifest: dict) and returning a Scorer.
LOADERS = {
    "cnn": "xray_spark.cnn.model:load_scorer",
    "bof": "xray_spark.bof.scorer:load_scorer",
    "ensemble": "xray_spark.ensemble:load_scorer",
}


class ModelDirError(ValueError):
    """A model directory that cannot be loaded: names the directory, the key and what is allowed."""


class Scorer(Protocol):
    tags: list[str]
    thresholds: np.ndarray
    manifest: dict

    def score(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray: ...


def local_path(url_or_path: str) -> Path:
    """A filesystem path from a ``file://`` URL or a plain path (model directories are local or mounted)."""
    if url_or_path.startswith("file://"):
        return Path(url_or_path[len("file://"):])
    if "://" in url_or_path:
        raise ModelDirError(f"model directory {url_or_path!r}: only local or mounted paths are "
                            "supported (file:// or a plain path)")
    return Path(url_or_path)


def versions() -> dict:
    """Library versions a model was made with."""
    out = {}
    for lib in ("xray_spark", "tensorflow-cpu", "tensorflow", "horovod", "petastorm", "scikit-learn", "numpy"):
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            pass
    return out


def write_manifest(directory: str | os.PathLike, manifest: dict) -> Path:
    """Validate ``manifest`` and write it as ``directory/manifest.json`` (atomically: temp + rename)."""
    directory = Path(directory)
    manifest = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "versions": versions(), **manifest, "format": FORMAT}
    check(manifest, str(directory))
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(directory / MANIFEST)
    return directory / MANIFEST


def read_manifest(directory: str | os.PathLike) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ModelDirError(f"{directory}: no {MANIFEST}; a model directory is made by train_cnn or "
                            "the bag-of-features training job")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelDirError(f"{path}: not valid JSON: {e}") from None
    check(manifest, str(directory))
    return manifest


def check(manifest: dict, where: str) -> None:
    """Fail with the directory, the key and what is allowed when the manifest is unusable."""
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise ModelDirError(f"{where}/{MANIFEST}: missing key(s) {', '.join(missing)}")
    if manifest["format"] != FORMAT:
        raise ModelDirError(f"{where}/{MANIFEST}: format {manifest['format']!r}, this xray_spark reads {FORMAT!r}")
    if manifest["kind"] not in LOADERS:
        raise ModelDirError(f"{where}/{MANIFEST}: kind {manifest['kind']!r}; known kinds: {', '.join(LOADERS)}")
    tagmod.check_names(manifest["tags"], where=f"{where}/{MANIFEST}")
    if len(manifest["thresholds"]) != len(manifest["tags"]):
        raise ModelDirError(f"{where}/{MANIFEST}: {len(manifest['thresholds'])} thresholds for "
                            f"{len(manifest['tags'])} tags; one threshold per tag is required")
    if not {"height", "width"} <= set(manifest["input"]):
        raise ModelDirError(f"{where}/{MANIFEST}: input must give height and width, got {manifest['input']!r}")


def load(directory: str | os.PathLike) -> Scorer:
    """The scorer of the model directory ``directory`` (a path or ``file://`` URL)."""
    directory = local_path(str(directory))
    manifest = read_manifest(directory)
    module, function = LOADERS[manifest["kind"]].split(":")
    return getattr(importlib.import_module(module), function)(directory, manifest)


def choose_thresholds(y_true: np.ndarray, y_score: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per-tag score thresholds maximising F1 on validation data.

    Parameters
    ----------
    y_true : (n, n_tags) 0/1 labels.
    y_score : (n, n_tags) scores.
    default : threshold of a tag without positives in ``y_true`` (F1 is undefined there).

    Returns
    -------
    (n_tags,) float64 thresholds (exactly the score values of the cut): a tag is predicted when
    ``score >= threshold``.
    """
    from sklearn.metrics import precision_recall_curve

    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    out = np.full(y_true.shape[1], default, dtype=np.float64)
    for j in range(y_true.shape[1]):
        if y_true[:, j].sum() == 0:
            continue
        precision, recall, cuts = precision_recall_curve(y_true[:, j], y_score[:, j])
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        out[j] = cuts[int(np.argmax(f1))]
    return out


def predicted_tags(scores: np.ndarray, thresholds: Sequence[float], tag_set: Sequence[str]) -> list[list[str]]:
    """Names of the tags at or above their threshold, per row of ``scores`` (n, n_tags)."""
    above = np.asarray(scores) >= np.asarray(thresholds)[None, :]
    return [[tag_set[j] for j in np.flatnonzero(row)] for row in above]
