"""`xray-spark generate`: synthetic images into the `images` table, with a closing summary.

Writes ``generate_images(...)`` with ``tables.write_table`` (bounded row groups, atomic publish)
to ``paths.images`` or ``--output``; then reads the table back with Spark to report images,
images/s, bytes per stored image and the tag prevalence table (aggregated on executors).
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from xray_spark import tags as tagmod
from xray_spark.config import ConfigError
from xray_spark.io import tables
from xray_spark.jobs import JobError, spark_session
from xray_spark.logs import summary
from xray_spark.simulate.scene import validate
from xray_spark.simulate.synthetic_images import generate_images, tag_prevalence
from xray_spark.spark import stage

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, metavar="N", help="number of images (default: simulate.n_images)")
    parser.add_argument("--seed", type=int, help="global seed (default: simulate.seed)")
    parser.add_argument("--output", metavar="URL", help="table URL or path (default: paths.images)")
    parser.add_argument("--partitions", type=int, metavar="P",
                        help="Spark tasks (default: n / simulate.images_per_task, at least all cores)")


def table_bytes(spark, url: str) -> int:
    """Bytes on storage of the table at ``url`` (Hadoop file system, any scheme)."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(url)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return int(fs.getContentSummary(path).getLength())


def format_prevalence(prevalence: dict[str, float], top17: list[str]) -> str:
    produced = [(n, p) for n, p in prevalence.items() if p > 0 or n in top17]
    lines = ["tag                              prevalence  top17"]
    lines += [f"{n:<32} {p:>9.1%}  {'*' if n in top17 else ''}" for n, p in produced]
    return "\n".join(lines)


def run(config, args) -> int:
    for name in ("n", "partitions"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise JobError(f"--{name} = {value}: must be >= 1")
    if args.seed is not None and args.seed < 0:
        raise JobError(f"--seed = {args.seed}: must be >= 0")
    try:
        validate(config.simulate)
    except ConfigError as e:
        raise JobError(f"configuration error: {e}") from None
    url = args.output or config.paths.url("images")
    if "://" not in url:
        url = Path(url).resolve().as_uri()
    n = args.n or config.simulate.n_images
    with spark_session(config, "generate") as spark:
        started = time.monotonic()
        with stage(spark, f"generate {n} images", config.progress.interval_s):
            df = generate_images(spark, config, n_images=n, seed=args.seed, partitions=args.partitions)
            tables.write_table(df, url, row_group_size_mb=config.tables.row_group_size_mb)
        seconds = time.monotonic() - started
        with stage(spark, "generate: tag prevalence", config.progress.interval_s):
            prevalence = tag_prevalence(spark.read.parquet(url))
            size = table_bytes(spark, url)
    print(format_prevalence(prevalence, tagmod.subset("top17")))
    summary("generate", seconds, "images", written=n, detail=f"{size / n / 1024:.1f} KiB per stored image; table {url}")
    return 0
