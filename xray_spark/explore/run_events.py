"""Change points along each run: the frames where the sample changes (a ring appears, ordering
emerges, the beam moves off), as rows of the `run_events` table (``schema.RUN_EVENTS``).

Method, per run in frame order (``frame``, then ``image_id``), with ``w`` = ``explore.change_window``:

- Embedding shifts: the sliding-window method (``ruptures.Window``, l2 cost; Truong, Oudre and
  Vayatis, "Selective review of offline change point detection methods", Signal Processing 167,
  2020). At every frame t the gain of splitting the 2w frames around t into two halves,
  (w/2) ||mean(x[t-w:t]) - mean(x[t:t+w])||^2, is computed; its peaks (more than w frames apart)
  are the candidates, accepted largest first while splitting the whole segment there lowers its
  squared error by more than ``penalty`` x ``noise``. ``noise`` is the run's frame-to-frame noise,
  median_t ||x[t+1] - x[t]||^2 / 2: the trace of the noise covariance, which a few change points do
  not move. Without a change, gain / noise averages 1, so one penalty fits any embedding and run.
  A change closer than w frames to either end of a run is not seen by this half.
- Tag events: a tag appears at frame t when it is on at most a quarter of the w frames before t
  and on at least three quarters of the w frames after (near a run's ends: of the frames there,
  at least max(w/4, 2)); it disappears the other way round. Of such frames closer than w, the one with the
  largest change is kept. A flickering tag gives no event.
- An embedding change point and tag events less than w frames apart are one event, at the
  embedding's frame. Its ``kind`` names the tags that appear or disappear, else it is an
  "embedding shift"; ``tags_before`` / ``tags_after`` are the tags on at least half of the w frames
  on each side; ``score`` is the window gain / noise at that frame (about 1 where nothing changes).

Runs are processed on the executors (``groupBy(run).applyInPandas``), each run whole in one task.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame

from xray_spark import schema

NOISE_FLOOR = 1e-8  # squared distance below which frames count as identical (float32 unit vectors)


def embedding_change_points(vectors: np.ndarray, window: int, penalty: float) -> tuple[list[int], np.ndarray]:
    """Change points of a run's (n, d) embeddings in frame order (index t: the change lies between
    frames t-1 and t) and the per-frame window gain in units of the run's noise (0 where undefined)."""
    import ruptures

    x = np.asarray(vectors, dtype=np.float64)
    score = np.zeros(len(x))
    if len(x) < 2 * window + 1:
        return [], score
    noise = max(float(np.median(np.sum(np.diff(x, axis=0) ** 2, axis=1))) / 2, NOISE_FLOOR)
    detector = ruptures.Window(width=2 * window, model="l2", jump=1, min_size=window).fit(x)
    score[detector.inds] = detector.score / noise
    return sorted(detector.predict(pen=penalty * noise)[:-1]), score


def _side_fractions(on: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fraction of frames carrying each tag in the w frames before and after every frame t, and
    whether both sides hold at least max(w/4, 2) frames."""
    n = len(on)
    total = np.vstack([np.zeros((1, on.shape[1])), np.cumsum(on, axis=0)])
    t = np.arange(n)
    lo, hi = np.maximum(t - window, 0), np.minimum(t + window, n)
    before = (total[t] - total[lo]) / np.maximum(t - lo, 1)[:, None]
    after = (total[hi] - total[t]) / np.maximum(hi - t, 1)[:, None]
    side = max(window // 4, 2)
    enough = (t - lo >= side) & (hi - t >= side)
    return before, after, enough


def tag_events(tag_sets: list[list[str]], window: int) -> list[tuple[int, str, float]]:
    """(frame index, tag, change) of every tag that appears (change > 0) or disappears along a run."""
    tags = sorted({t for s in tag_sets for t in s})
    if not tags:
        return []
    on = np.array([[t in set(s) for t in tags] for s in tag_sets], dtype=np.float64)
    before, after, enough = _side_fractions(on, window)
    events = []
    for j, tag in enumerate(tags):
        change = after[:, j] - before[:, j]
        crossing = enough & (((before[:, j] <= 0.25) & (after[:, j] >= 0.75)) |
                             ((before[:, j] >= 0.75) & (after[:, j] <= 0.25)))
        kept: list[int] = []
        for t in sorted(np.flatnonzero(crossing), key=lambda t: (-abs(change[t]), t)):
            if all(abs(t - k) >= window for k in kept):
                kept.append(int(t))
        events += [(t, tag, float(change[t])) for t in kept]
    return sorted(events)


def _majority(tag_sets: list[list[str]], start: int, stop: int) -> list[str]:
    window = tag_sets[max(start, 0):stop]
    counts = pd.Series([t for s in window for t in s], dtype=object).value_counts()
    return sorted(t for t, c in counts.items() if c >= len(window) / 2) if window else []


def events_of_run(frames: pd.DataFrame, window: int, penalty: float) -> pd.DataFrame:
    """The ``schema.RUN_EVENTS`` rows of one run (``frames``: beamtime, run_id, frame, image_id,
    embedding, tag_names), sorted by frame."""
    frames = frames.sort_values(["frame", "image_id"], kind="stable").reset_index(drop=True)
    tag_sets = [list(s) if s is not None else [] for s in frames["tag_names"]]
    points, score = embedding_change_points(np.stack(frames["embedding"].to_numpy()), window, penalty) \
        if len(frames) else ([], np.zeros(0))
    candidates = sorted([(t, 0, "", 0.0) for t in points] + [(t, 1, tag, c) for t, tag, c in tag_events(tag_sets, window)])
    groups: list[list[tuple]] = []
    for item in candidates:
        if groups and item[0] - groups[-1][0][0] < window:
            groups[-1].append(item)
        else:
            groups.append([item])
    rows = []
    for group in groups:
        shifted = [t for t, is_tag, _, _ in group if not is_tag]
        changes = [(tag, c) for _, is_tag, tag, c in group if is_tag]
        if shifted:
            t = shifted[0]
        else:
            t = min(group, key=lambda g: (-abs(g[3]), g[0]))[0]
        kind = "; ".join([f"{tag} appears" for tag, c in sorted(changes) if c > 0] +
                         [f"{tag} disappears" for tag, c in sorted(changes) if c < 0]) or "embedding shift"
        rows.append({"beamtime": frames["beamtime"].iloc[t], "run_id": frames["run_id"].iloc[t],
                     "frame": int(frames["frame"].iloc[t]), "image_id": frames["image_id"].iloc[t], "kind": kind,
                     "signal": "+".join(s for s, on in (("embedding", shifted), ("tags", changes)) if on),
                     "score": np.float32(score[t]), "tags_before": _majority(tag_sets, t - window, t),
                     "tags_after": _majority(tag_sets, t, t + window)})
    return pd.DataFrame(rows, columns=schema.RUN_EVENTS.names)


def run_events(rows: DataFrame, window: int, penalty: float) -> DataFrame:
    """The change points of every run of ``rows`` (an embeddings table), computed on the executors,
    one run per group."""
    if window < 2:
        raise ValueError(f"explore.change_window = {window}: at least 2 frames on each side are needed")
    columns = rows.select("beamtime", "run_id", "frame", "image_id", "embedding", "tag_names")
    return columns.groupBy("beamtime", "run_id").applyInPandas(
        partial(events_of_run, window=window, penalty=penalty), schema.spark_schema(schema.RUN_EVENTS))
