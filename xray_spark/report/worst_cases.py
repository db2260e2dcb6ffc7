"""A PNG of the frames a model gets most wrong, tag by tag: its highest-scored negatives (false
positives) and lowest-scored positives (false negatives), as stored, with their scores."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np


def draw_worst_cases(cases: dict[str, tuple[list, list]], path: Path, per_side: int = 4) -> Path:
    """``cases``: tag -> (false positives, false negatives), each a list of (image (H, W), score,
    caption). One row per tag: false positives on the left, false negatives on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = max(len(cases), 1), 2 * per_side
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.2 * rows), squeeze=False)
    for axes_row, (tag, (false_pos, false_neg)) in zip(axes, cases.items()):
        padded = (false_pos + [None] * per_side)[:per_side] + (false_neg + [None] * per_side)[:per_side]
        for k, (ax, case) in enumerate(zip(axes_row, padded)):
            ax.set_xticks([]), ax.set_yticks([])
            if case is None:
                ax.set_facecolor("0.92")
                continue
            image, score, caption = case
            ax.imshow(image, cmap="magma", vmin=0.0, vmax=max(float(np.max(image)), 1e-6), interpolation="nearest")
            kind = "FP" if k < per_side else "FN"
            ax.set_title(f"{kind} {score:.2f}", fontsize=7, color="tab:red" if kind == "FP" else "tab:blue")
            ax.set_xlabel("\n".join(textwrap.wrap(caption, 28)[:2]), fontsize=5)
        axes_row[0].set_ylabel(tag, fontsize=8, fontweight="bold")
    fig.suptitle("worst false positives (left, red) and false negatives (right, blue) per tag", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / (2.2 * rows)))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return path
