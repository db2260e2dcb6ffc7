"""`xray-spark atlas --beamtime NAME`: the clusters of a beamtime's frames, the change points along
its runs, and its atlas page (``explore.clusters``, ``explore.run_events``, ``report.atlas_page``)
from the `embeddings` table (``xray-spark embed`` or ``nightly`` writes it). The clusters and the
change points are written as the beamtime's partitions of the `clusters` and `run_events` tables
(a rerun replaces them); the page goes to ``<paths.reports>/atlas/<beamtime>/index.html``."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa

from xray_spark import schema
from xray_spark.explore.clusters import cluster_beamtime
from xray_spark.explore.embeddings import read_embeddings
from xray_spark.explore.profiles import ProfileGrid
from xray_spark.explore.run_events import run_events
from xray_spark.io import partitions as parts
from xray_spark.io import tables
from xray_spark.jobs import JobError, spark_session
from xray_spark.logs import summary
from xray_spark.report.atlas_page import write_atlas
from xray_spark.spark import stage


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--beamtime", required=True, help="the beamtime to describe")
    parser.add_argument("--embeddings", metavar="TABLE", help="embeddings table (default: paths.embeddings)")
    parser.add_argument("--images", metavar="TABLE", help="images table of the thumbnails (default: paths.images)")
    parser.add_argument("--model", metavar="MODEL_ID", help="model_id of the embeddings to use (default: the "
                        "beamtime's only one)")
    parser.add_argument("--k", type=int, metavar="K", help="clusters (default: explore.clusters_k; 0 = by silhouette)")
    parser.add_argument("--output", metavar="DIR", help="directory of the page (default: <paths.reports>/atlas/<beamtime>)")


def save(frame: pd.DataFrame, url: str, beamtime: str, contract: pa.Schema) -> None:
    """Make ``frame`` the whole ``beamtime`` partition of the table at ``url`` (atomic, one file)."""
    fields = [f for f in contract if f.name != "beamtime"]
    table = pa.Table.from_pandas(frame[[f.name for f in fields]], schema=pa.schema(fields), preserve_index=False)
    tables.write_arrow(table, parts.partition_dir(url, (beamtime,), ("beamtime",)))


def run(config, args) -> int:
    started = time.monotonic()
    embeddings_url = args.embeddings or config.paths.url("embeddings")
    if "://" not in embeddings_url:
        embeddings_url = Path(embeddings_url).resolve().as_uri()
    images_url = args.images or config.paths.url("images")
    if "://" not in images_url:
        images_url = Path(images_url).resolve().as_uri()
    if not tables.table_exists(embeddings_url):
        raise JobError(f"--embeddings {embeddings_url}: no such table; run `xray-spark embed` first")
    if args.k is not None and args.k < 0:
        raise JobError(f"--k {args.k}: must be >= 0 (0: chosen by the silhouette)")
    explore = config.explore
    output = Path(args.output) if args.output else config.paths.atlas_report(args.beamtime)
    with spark_session(config, "atlas") as spark:
        try:
            clusters = cluster_beamtime(spark, read_embeddings(spark, embeddings_url), args.beamtime, explore,
                                        model_id=args.model, k=args.k, interval_s=config.progress.interval_s)
        except ValueError as e:
            raise JobError(str(e)) from None
        with stage(spark, f"atlas: change points of {args.beamtime}", config.progress.interval_s):
            events = run_events(clusters.assigned, explore.change_window, explore.change_penalty).toPandas()
        events = events.sort_values(["run_id", "frame"]).reset_index(drop=True)
        save(clusters.table, config.paths.url("clusters"), args.beamtime, schema.CLUSTERS)
        save(events, config.paths.url("run_events"), args.beamtime, schema.RUN_EVENTS)
        grid = ProfileGrid.from_config(explore)
        with stage(spark, f"atlas: page of {args.beamtime}", config.progress.interval_s):
            page = write_atlas(spark, output, args.beamtime, clusters, events, explore,
                               {axis: grid.centres(axis) for axis in ("q", "radius")}, images_url)
        frames = int(clusters.table["size"].sum())
        clusters.assigned.unpersist()
    print(summary("atlas", time.monotonic() - started, unit="frames", detail=f"page {page}", read=frames,
                  clusters=len(clusters.table), change_points=len(events)))
    return 0
