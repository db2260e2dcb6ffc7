"""The answer of a similar-image search for people: a printed table and a PNG contact sheet of the
query and its neighbours (as stored: the fixed log scale of ``preprocess``, bad pixels grey)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from xray_spark import schema


def table(rows: list[dict]) -> str:
    """rank, image_id, run, frame, distance, tags: one line per neighbour."""
    lines = [f"{'rank':>4}  {'image_id':<22} {'run':<24} {'frame':>6}  {'distance':>8}  tags"]
    for rank, r in enumerate(rows, 1):
        lines.append(f"{rank:>4}  {r['image_id']:<22} {r['run_id']:<24} {r['frame']:>6}  {r['distance']:>8.4f}  "
                     + ", ".join(r["tag_names"] or []))
    return "\n".join(lines) + "\n"


def _show(ax, image_row: dict | None) -> None:
    ax.set_xticks([]), ax.set_yticks([])
    if image_row is None:
        ax.set_facecolor("0.85")
        ax.text(0.5, 0.5, "image not in\nthe images table", ha="center", va="center", fontsize=7, transform=ax.transAxes)
        return
    h, w = image_row["height"], image_row["width"]
    image, bad = schema.decode_images([image_row["image"]], h, w)[0], schema.decode_masks([image_row["mask"]], h, w)[0]
    valid = image[~bad]
    top = float(np.percentile(valid, 99.5)) if valid.size else 1.0
    ax.imshow(np.ma.masked_array(image, bad), cmap="magma", vmin=0.0, vmax=max(top, 1e-6), interpolation="nearest")
    ax.set_facecolor("0.6")


def draw(query_label: str, query_image: dict, rows: list[dict], images: dict[str, dict], path: Path,
         method: str, columns: int = 7) -> Path:
    """Write the contact sheet PNG: the query first, then the neighbours in rank order, each with
    its rank, distance, run, frame and tags."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 1 + len(rows)
    lines = (panels + columns - 1) // columns
    fig, axes = plt.subplots(lines, columns, figsize=(2.3 * columns, 3.4 * lines), squeeze=False)
    for ax in axes.flat[panels:]:
        ax.axis("off")
    _show(axes.flat[0], query_image)
    axes.flat[0].set_title("query", fontsize=9, fontweight="bold", color="tab:blue")
    axes.flat[0].set_xlabel("\n".join(textwrap.wrap(query_label, 34)), fontsize=6)
    for rank, (ax, r) in enumerate(zip(axes.flat[1:], rows), 1):
        _show(ax, images.get(r["image_id"]))
        ax.set_title(f"{rank}. d = {r['distance']:.3f}", fontsize=8)
        caption = f"{r['run_id']} #{r['frame']}: " + ", ".join(r["tag_names"] or [])
        ax.set_xlabel("\n".join(textwrap.wrap(caption, 34)[:3]), fontsize=5.5)
    fig.suptitle(f"{len(rows)} nearest frames of {query_label} ({method})", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
