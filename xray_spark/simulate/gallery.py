"""`xray-spark gallery`: a PNG grid of sample images per tag, so a scientist judges realism at a glance.

Reads an `images` table (synthetic or archive), takes up to ``--per-tag`` images carrying each
requested tag (a Spark filter with a limit per tag: only those few images reach the driver),
and draws them as stored (already on the fixed log scale of ``preprocess``) with a perceptual
colour map, each with its tags, one row per tag. With ``--real SPEC`` it draws real detector
frames beside synthetic frames of the same kind instead (``compare``).
"""
from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import numpy as np

from xray_spark import tags as tagmod


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", metavar="URL", help="images table (default: paths.images)")
    parser.add_argument("--tags", default="top17",
                        help="a subset (top17, G1..G7, all) or tag names joined by commas (default: top17)")
    parser.add_argument("--per-tag", type=int, default=4, metavar="K", help="images per tag (default: 4)")
    parser.add_argument("--output", metavar="PNG", help="PNG file (default: <paths.reports>/gallery.png, "
                        "or real_vs_synthetic.png with --real)")
    parser.add_argument("--real", metavar="SPEC", help="instead: real detector frames listed in SPEC (YAML) beside "
                        "synthetic frames of the same kind, with their statistics (see simulate/compare.py)")


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


def run(config, args) -> int:
    from pyspark.sql import SparkSession

    from xray_spark.spark import build_session, stage

    if args.real:
        from xray_spark.config import ConfigError
        from xray_spark.simulate.compare import compare

        output = Path(args.output or Path(config.paths.root, config.paths.reports, "real_vs_synthetic.png"))
        try:
            path, pairs = compare(config, args.real, output)
        except (ConfigError, OSError) as e:
            raise SystemExit(f"xray-spark gallery --real: {e}") from None
        print(f"gallery: {len(pairs)} real frames beside synthetic frames of the same kind -> {path}")
        return 0
    if args.per_tag < 1:
        raise SystemExit(f"xray-spark gallery: --per-tag = {args.per_tag}: must be >= 1")
    try:
        tag_names = tag_list(args.tags)
    except tagmod.UnknownTagError as e:
        raise SystemExit(f"xray-spark gallery: {e}") from None
    url = args.input or config.paths.url("images")
    if "://" not in url:
        url = Path(url).resolve().as_uri()
    output = Path(args.output) if args.output else Path(config.paths.root, config.paths.reports, "gallery.png")
    owned = SparkSession.getActiveSession() is None
    spark = build_session(config, "gallery")
    try:
        with stage(spark, f"gallery: {len(tag_names)} tags", config):
            samples = sample_rows(spark.read.parquet(url), tag_names, args.per_tag)
    finally:
        if owned:
            spark.stop()
    draw(samples, args.per_tag, output, title=f"{url.rsplit('/', 1)[-1]}: log-scale stored images per tag")
    print(f"gallery: {sum(map(len, samples.values()))} images of {len(tag_names)} tags -> {output}")
    return 0
