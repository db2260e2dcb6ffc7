"""`xray-spark gallery`: a PNG grid of sample images per tag from any images table
(``report.tag_gallery``), or with ``--real`` real detector frames beside synthetic frames of the
same kind (``report.real_vs_synthetic``)."""
from __future__ import annotations

import argparse
from pathlib import Path

from xray_spark import tags as tagmod
from xray_spark.config import ConfigError
from xray_spark.jobs import JobError, spark_session
from xray_spark.report.real_vs_synthetic import compare
from xray_spark.report.tag_gallery import draw, sample_rows, tag_list
from xray_spark.spark import stage


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", metavar="URL", help="images table (default: paths.images)")
    parser.add_argument("--tags", default="top17",
                        help="a subset (top17, G1..G7, all) or tag names joined by commas (default: top17)")
    parser.add_argument("--per-tag", type=int, default=4, metavar="K", help="images per tag (default: 4)")
    parser.add_argument("--output", metavar="PNG", help="PNG file (default: <paths.reports>/gallery.png, "
                        "or real_vs_synthetic.png with --real)")
    parser.add_argument("--real", metavar="SPEC", help="instead: real detector frames listed in SPEC (YAML) beside "
                        "synthetic frames of the same kind, with their statistics (see report/real_vs_synthetic.py)")


def run(config, args) -> int:
    if args.real:
        output = Path(args.output) if args.output else config.paths.local("reports", "real_vs_synthetic.png")
        try:
            path, pairs = compare(config, args.real, output)
        except (ConfigError, OSError) as e:
            raise JobError(f"--real: {e}") from None
        print(f"gallery: {len(pairs)} real frames beside synthetic frames of the same kind -> {path}")
        return 0
    if args.per_tag < 1:
        raise JobError(f"--per-tag = {args.per_tag}: must be >= 1")
    try:
        tag_names = tag_list(args.tags)
    except tagmod.UnknownTagError as e:
        raise JobError(str(e)) from None
    url = args.input or config.paths.url("images")
    if "://" not in url:
        url = Path(url).resolve().as_uri()
    output = Path(args.output) if args.output else config.paths.local("reports", "gallery.png")
    with spark_session(config, "gallery") as spark:
        with stage(spark, f"gallery: {len(tag_names)} tags", config.progress.interval_s):
            samples = sample_rows(spark.read.parquet(url), tag_names, args.per_tag)
    draw(samples, args.per_tag, output, title=f"{url.rsplit('/', 1)[-1]}: log-scale stored images per tag")
    print(f"gallery: {sum(map(len, samples.values()))} images of {len(tag_names)} tags -> {output}")
    return 0
