"""A PNG grid of sample images per tag, so a scientist judges realism at a glance (the `gallery` job).

Reads an `images` table (synthetic or archive), takes up to ``--per-tag`` images carrying each
requested tag (a Spark filter with a limit per tag: only those few images reach the driver),
and draws them as stored (already on the fixed log scale of ``preprocess``) with a perceptual
colour map, each with its tags, one row per tag. With ``--real SPEC`` it draws real detector
frames beside synthetic frames of the same kind instead (``compare``).
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from xray_spark import tags as tagmod


def tag_list(spec: str) -> list[str]:
    """Tags from a subset name or a comma-separated list of names (checked against the vocabulary)."""
    try:
        return tagmod.subset(spec)
    except tagmod.UnknownTagError:
        return tagmod.check_names([s.strip() for s in spec.split(",") if s.strip()], where="--tags")


def sample_rows(df, tag_names: list[str], per_tag: int) -> dict[str, list]:
    """Up to ``per_tag`` rows (image, mask, shape, tags) for each tag, found by Spark."""
    from pyspark.sql import functions as F

    columns = ["image_id", "image", "height", "width", "tag_names"]
    return {tag: df.filter(F.array_contains("tag_names", tag)).select(*columns).limit(per_tag).collect()
            for tag in tag_names}


def draw(samples: dict[str, list], per_tag: int, path: Path, title: str = "") -> Path:
    """Write the grid PNG: one row per tag, ``per_tag`` columns, tags printed under each image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(len(samples), 1)
    fig, axes = plt.subplots(rows, per_tag, figsize=(2.6 * per_tag, 3.3 * rows), squeeze=False)
    for axes_row, (tag, found) in zip(axes, samples.items()):
        axes_row[0].set_ylabel(tag, fontsize=10, fontweight="bold")
        for ax, row in zip(axes_row, found + [None] * (per_tag - len(found))):
            ax.set_xticks([]), ax.set_yticks([])
            if row is None:
                ax.set_facecolor("0.9")
                continue
            image = np.frombuffer(row["image"], "<f4").reshape(row["height"], row["width"])
            ax.imshow(image, cmap="magma", vmin=0.0, vmax=max(float(image.max()), 1e-6), interpolation="nearest")
            ax.set_xlabel("\n".join(textwrap.wrap(", ".join(row["tag_names"]), 42)), fontsize=5.5)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
