"""A labelled set of real frames (the development set, or any archive tagged by eye) and how a
model scores on it: AP per tag on the frames whose label is known, mAP over the tags with enough
positives, the chance level, and the frames each tag gets most wrong.

The labels file is a CSV with ``file`` (relative to the archive root), ``frame_index`` and one
column per tag holding 1, 0, or nothing when the taggers left the frame out of that tag (their
disagreement was not settled); such a frame is left out of that tag's AP only (``metrics``).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np

from xray_spark import metrics
from xray_spark.io.rows import image_id


@dataclass(frozen=True)
class DevLabels:
    image_ids: list[str]          # the images-table id of each labelled frame
    files: list[str]
    tags: list[str]
    labels: np.ndarray            # (frames, tags) int8: 1, 0, or -1 = unknown

    def only(self, image_ids) -> "DevLabels":
        """The frames whose image id is in ``image_ids`` (e.g. those a model scored)."""
        keep = [k for k, i in enumerate(self.image_ids) if i in image_ids]
        return DevLabels([self.image_ids[k] for k in keep], [self.files[k] for k in keep], self.tags, self.labels[keep])


def read_dev_labels(path: str, tags: list[str]) -> DevLabels:
    """The frames of the labels CSV at ``path`` and their labels on ``tags`` (-1 = unknown)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    missing = [t for t in tags if rows and t not in rows[0]]
    if missing:
        raise ValueError(f"{path}: no column for tag(s) {missing}")
    labels = np.array([[{"1": 1, "0": 0}.get(r[t].strip(), -1) for t in tags] for r in rows], np.int8)
    return DevLabels([image_id(r["file"], int(r["frame_index"])) for r in rows], [r["file"] for r in rows],
                     list(tags), labels.reshape(len(rows), len(tags)))


def score_dev_set(scores: np.ndarray, dev: DevLabels, min_positives: int = 5) -> dict:
    """AP per tag (``metrics.average_precisions``), mAP over the tags with at least ``min_positives``
    known positives, and the chance level (the mean prevalence among the known labels of those tags)."""
    ap = metrics.average_precisions(scores, dev.labels)
    positives = (dev.labels == 1).sum(axis=0)
    known = (dev.labels >= 0).sum(axis=0)
    scored = [j for j in range(len(dev.tags)) if positives[j] >= min_positives]
    return {
        "tags": {t: {"ap": None if np.isnan(ap[j]) else float(ap[j]), "positives": int(positives[j]),
                     "known": int(known[j])} for j, t in enumerate(dev.tags)},
        "scored_tags": [dev.tags[j] for j in scored],
        "mAP": float(np.mean([ap[j] for j in scored])) if scored else float("nan"),
        "chance": float(np.mean([positives[j] / known[j] for j in scored])) if scored else float("nan"),
        "frames": len(dev.image_ids),
    }


def without_each_source(scores: np.ndarray, dev: DevLabels, sources: list[str], tags: list[str]) -> dict:
    """mAP over ``tags`` (fixed: the tags scored on the whole set) with each source's frames left out
    in turn (``sources``: each frame's source). A figure of 81 frames can rest on a few frames of
    one kind; a change that moves the mAP only through one source's frames is a change for that
    source, not for real frames in general."""
    columns = [dev.tags.index(t) for t in tags]
    out = {}
    for source in sorted(set(sources)):
        keep = np.array([s != source for s in sources])
        ap = metrics.average_precisions(scores[keep][:, columns], dev.labels[keep][:, columns])
        out[source] = {"frames_left_out": int((~keep).sum()),
                       "mAP": float(np.nanmean(ap)) if not np.isnan(ap).all() else None}
    return out


def worst_cases(scores: np.ndarray, dev: DevLabels, tag: str, n: int = 4) -> tuple[list[int], list[int]]:
    """Rows of the highest-scored known negatives (false positives) and lowest-scored known positives
    (false negatives) of ``tag``."""
    j = dev.tags.index(tag)
    negatives = np.flatnonzero(dev.labels[:, j] == 0)
    positives = np.flatnonzero(dev.labels[:, j] == 1)
    return (list(negatives[np.argsort(-scores[negatives, j], kind="stable")][:n]),
            list(positives[np.argsort(scores[positives, j], kind="stable")][:n]))


def consensus(first: dict[str, str], second: dict[str, str], third: dict[str, str] | None = None) -> str:
    """The label of one frame and tag from two independent passes ('1', '0' or '?'): their common
    answer; else the third look's answer when it is definite; else '' (left out of that tag's AP)."""
    if first == second and first in ("0", "1"):
        return first
    return third if third in ("0", "1") else ""


def agreement(first: list[str], second: list[str]) -> dict:
    """How two passes agree on one tag: the fraction of frames with the same definite answer, and
    Cohen's kappa over the frames both answered."""
    both = [(a, b) for a, b in zip(first, second) if a in ("0", "1") and b in ("0", "1")]
    if not both:
        return {"agreement": None, "kappa": None, "answered_by_both": 0}
    same = sum(a == b for a, b in both) / len(both)
    p1, p2 = (sum(a == "1" for a, _ in both) / len(both), sum(b == "1" for _, b in both) / len(both))
    chance = p1 * p2 + (1 - p1) * (1 - p2)
    kappa = 1.0 if chance == 1 else (same - chance) / (1 - chance)
    return {"agreement": round(same, 3), "kappa": round(kappa, 3), "answered_by_both": len(both)}
