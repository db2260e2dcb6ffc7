"""Synthetic embeddings tables (``schema.EMBEDDINGS``) whose structure is known: frames drawn around
a few unit-vector centres (clusters), and runs whose frames change centre and tags at known frames
(change points). The input of the clusters and change-point tests and benchmarks."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from xray_spark import schema

PROFILE_BINS = 48
TAG_STATES = [["GISAXS", "Thin film"], ["GISAXS", "Thin film", "Ring: Isotropic"], ["GISAXS", "Beam off image"],
              ["GISAXS", "Thin film", "Peaks: Isolated"], ["GISAXS", "Thin film", "Ring: Isotropic", "Peaks: Isolated"]]


def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float32)


def profile(state: int, n: int, rng) -> np.ndarray:
    """(n, PROFILE_BINS) log10 I on a log-q grid: a power law with a peak whose place says the state."""
    q = np.logspace(-1.5, 1.6, PROFILE_BINS)
    peak = 0.1 * 2.0 ** state
    base = -2.0 * np.log10(q) + 0.8 * np.exp(-0.5 * (np.log(q / peak) / 0.15) ** 2)
    return (base[None, :] + 0.03 * rng.standard_normal((n, PROFILE_BINS))).astype(np.float32)


def rows(beamtime: str, run_id: str, vectors: np.ndarray, states: np.ndarray, rng, first_frame: int = 0) -> dict:
    """Columns of the embeddings rows of one run: ``vectors`` (n, d) and each frame's tag state."""
    n = len(vectors)
    return {
        "image_id": [f"{beamtime}-{run_id}-{first_frame + i:06d}" for i in range(n)],
        "beamtime": [beamtime] * n, "run_id": [run_id] * n, "frame": list(range(first_frame, first_frame + n)),
        "path": [None] * n, "frame_in_file": list(range(first_frame, first_frame + n)), "model_id": ["synthetic"] * n, "cnn": [None] * n, "profile_axis": ["q"] * n,
        "profile": list(np.vstack([profile(int(s), 1, rng) for s in states])), "anisotropy": [None] * n,
        "embedding": list(vectors), "scored_tags": [None] * n, "scores": [None] * n,
        "tag_names": [TAG_STATES[int(s) % len(TAG_STATES)] for s in states],
    }


def table(parts: list[dict]) -> pa.Table:
    """One Arrow table (``schema.EMBEDDINGS``) of the ``rows`` of several runs."""
    columns = {name: [v for p in parts for v in p[name]] for name in schema.EMBEDDINGS.names}
    return pa.Table.from_pydict(columns, schema=schema.EMBEDDINGS)


def blobs(beamtime: str, runs: int, frames_per_run: int, k: int, d: int, spread: float, seed: int):
    """Frames around ``k`` random unit centres (frame i of a run: centre drawn at random), tag state =
    the centre; returns (rows of each run, the true centre of every frame, in the same order)."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((k, d)))
    parts, truth = [], []
    for r in range(runs):
        which = rng.integers(0, k, frames_per_run)
        vectors = unit(centres[which] + spread / np.sqrt(d) * rng.standard_normal((frames_per_run, d)))
        parts.append(rows(beamtime, f"run{r}", vectors, which, rng))
        truth.append(which)
    return parts, np.concatenate(truth)


def changing_run(beamtime: str, run_id: str, n_frames: int, changes: list[int], d: int, noise: float,
                 shift: tuple[float, float], seed: int) -> dict:
    """A run whose embedding moves to a new centre at each frame of ``changes``: a step at right angles
    of a length drawn uniformly from ``shift`` (then back onto the unit sphere), with per-frame noise
    of norm about ``noise``;
    the tag state changes with every step (a tag appears or disappears)."""
    rng = np.random.default_rng(seed)
    bounds = [0, *sorted(changes), n_frames]
    centre = unit(rng.standard_normal(d))
    vectors, states = [], []
    for s, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
        if s:
            step = rng.standard_normal(d)
            direction = unit(step - centre * (centre @ step))
            centre = unit(centre + rng.uniform(*shift) * direction)
        vectors.append(unit(centre + noise / np.sqrt(d) * rng.standard_normal((stop - start, d))))
        states += [s % len(TAG_STATES)] * (stop - start)
    return rows(beamtime, run_id, np.vstack(vectors), np.array(states), rng)


def known_changes(n_frames: int, count: int, min_gap: int, rng) -> list[int]:
    """``count`` change frames at least ``min_gap`` apart and from the run's ends."""
    while True:
        frames = np.sort(rng.choice(np.arange(min_gap, n_frames - min_gap), count, replace=False))
        if count == 0 or np.diff(frames, prepend=frames[0] - min_gap).min() >= min_gap:
            return [int(f) for f in frames]


def write(parts: list[dict], directory) -> str:
    """Write the runs as one Parquet file in ``directory`` (a path); returns the table's file URL."""
    from pathlib import Path

    import pyarrow.parquet as pq

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(table(parts), directory / "part-00000.parquet")
    return directory.resolve().as_uri()
