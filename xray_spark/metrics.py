"""Average precision per tag, mAP, splits by run, and the results table of the paper.

Any model is evaluated the same way: a scores matrix (n_images, n_labels), the matching 0/1
labels matrix and the label names give a ``Results`` (AP per label, mAP, images and positives
counted); ``results_table`` lays one or more of them out like the paper's Table I (one row per
label, one AP column per method, mAP at the bottom, the label set and image counts stated).

Splits are by run: every image of a run lands in the same split, so near-duplicate frames of one
measurement never sit on both sides of train/test.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np
from sklearn.metrics import average_precision_score


@dataclass(frozen=True)
class Results:
    """Per-label AP of one method on one test set; ``ap`` is NaN for a label without positives."""
    method: str
    label_set: str
    labels: list[str]
    ap: list[float]
    positives: list[int]
    n_images: int
    n_train_images: int | None = None

    @property
    def mean_ap(self) -> float:
        """mAP over the labels that have at least one positive test image."""
        scored = [a for a in self.ap if not math.isnan(a)]
        return float(np.mean(scored)) if scored else float("nan")

    @property
    def n_scored(self) -> int:
        return sum(not math.isnan(a) for a in self.ap)

    def validation_record(self) -> dict:
        """mAP, image count and AP per label as a model manifest records them (None: no positives)."""
        return {"mAP": self.mean_ap, "images": self.n_images,
                "ap": {t: None if math.isnan(a) else a for t, a in zip(self.labels, self.ap)}}

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "mAP": self.mean_ap, "labels_scored": self.n_scored},
                          indent=2, allow_nan=True)


def average_precisions(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AP of every column of ``scores`` (n, m) against 0/1 ``labels`` (n, m): shape (m,).

    A label of -1 is unknown (real frames whose taggers could not agree): that image is left out of
    that column's AP only. A column without positives has no defined AP and gets NaN (it is left
    out of the mAP).
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if scores.shape != labels.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must be the same (n_images, "
                         "n_labels) shape")
    known = labels >= 0
    return np.array([average_precision_score(labels[known[:, j], j], scores[known[:, j], j])
                     if (labels[:, j] == 1).any() else np.nan for j in range(labels.shape[1])])


def evaluate(scores: np.ndarray, labels: np.ndarray, label_names: Sequence[str], *, method: str,
             label_set: str, n_train_images: int | None = None) -> Results:
    """``Results`` of one method: AP per label, positives per label, number of test images."""
    labels = np.asarray(labels)
    if labels.shape[1:] != (len(label_names),):
        raise ValueError(f"labels have {labels.shape[1:]} columns but {len(label_names)} label names were given")
    return Results(method=method, label_set=label_set, labels=list(label_names),
                   ap=[float(a) for a in average_precisions(scores, labels)],
                   positives=[int(p) for p in (labels == 1).sum(axis=0)], n_images=int(labels.shape[0]),
                   n_train_images=n_train_images)


def results_table(results: Mapping[str, Results] | Sequence[Results]) -> str:
    """Markdown table shaped like the paper's Table I: label | positives | AP per method; mAP last.

    Every ``Results`` must be over the same labels and test images (one column per method).
    """
    results = list(results.values()) if isinstance(results, Mapping) else list(results)
    first = results[0]
    for r in results[1:]:
        if r.labels != first.labels or r.n_images != first.n_images:
            raise ValueError(f"method {r.method!r} was scored on other labels or images than {first.method!r}")
    train = ", ".join(f"{r.method}: {r.n_train_images}" for r in results if r.n_train_images is not None)
    lines = [f"Label set: {first.label_set} ({len(first.labels)} labels, {first.n_scored} with test "
             f"positives); test images: {first.n_images}" + (f"; training images: {train}" if train else ""),
             "",
             "| label | test positives | " + " | ".join(f"AP {r.method}" for r in results) + " |",
             "|---|---:|" + "---:|" * len(results)]
    for j, name in enumerate(first.labels):
        aps = " | ".join("n/a" if math.isnan(r.ap[j]) else f"{r.ap[j]:.4f}" for r in results)
        lines.append(f"| {name} | {first.positives[j]} | {aps} |")
    lines.append("| **mAP** | | " + " | ".join(f"**{r.mean_ap:.4f}**" for r in results) + " |")
    return "\n".join(lines) + "\n"


def split_runs(run_ids: Sequence[str], test_fraction: float, seed: int) -> set[str]:
    """The runs of the test split: a seeded permutation of the sorted distinct runs, the first
    ``ceil(test_fraction * n_runs)`` of them (at least one, and at least one run left to train).

    Deterministic for a seed whatever the order the run ids come in.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction = {test_fraction}: must be strictly between 0 and 1")
    runs = sorted(set(run_ids))
    if len(runs) < 2:
        raise ValueError(f"splitting by run needs at least 2 runs, got {len(runs)} ({runs}): all images of "
                         "a run stay in one split")
    order = np.random.default_rng(np.random.SeedSequence([seed, len(runs)])).permutation(len(runs))
    n_test = min(len(runs) - 1, max(1, math.ceil(test_fraction * len(runs))))
    return {runs[i] for i in order[:n_test]}
