"""The beamtime atlas: one self-contained HTML page per beamtime (PNG figures beside it, nothing
fetched from elsewhere) answering "which kinds of pattern did we see, where did the sample change,
and what did the scattering look like along each run":

- the clusters (``explore.clusters``): sizes per run, tag composition, mean profiles, and for each
  cluster the frames nearest its centre as thumbnails;
- a 2-D map of the embeddings (PCA of the clusters' sample, scikit-learn), coloured by cluster and
  per tag;
- per run: a timeline of its frames (majority cluster, tag fractions) with its change points
  (``explore.run_events``) and their table, and the I(q) waterfall (mean profiles of frame bins).

Spark bins and aggregates on the executors; the driver receives per-bin counts, at most
``atlas_waterfall_curves`` profiles per run, the sample, and the few medoid images.
"""
from __future__ import annotations

import html
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from xray_spark.io import partitions as parts
from xray_spark.io import tables
from xray_spark.report import atlas_figures as figures
from xray_spark.report.night_summary import _figure, _table

STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1150px;color:#222}table{border-collapse:collapse;"
         "font-size:90%;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}"
         "img{max-width:100%}.cluster{border-top:1px solid #ddd;padding-top:0.5em;margin-top:1em}"
         ".bar{display:inline-block;height:0.8em;background:#4878a8;vertical-align:middle;margin-right:4px}"
         "nav a{margin-right:1em}h3{margin-bottom:0.2em}.muted{color:#666}")


def _binned(assigned: DataFrame, bins: int) -> DataFrame:
    """Every frame with its run's frame-order bin (``bin`` 0..bins-1, equal numbers of frames)."""
    order = Window.partitionBy("run_id").orderBy("frame", "image_id")
    return (assigned.withColumn("_i", F.row_number().over(order) - 1)
            .withColumn("_n", F.count("*").over(Window.partitionBy("run_id")))
            .withColumn("bin", F.floor(F.col("_i") * bins / F.col("_n")).cast("int")))


def timelines(assigned: DataFrame, bins: int) -> pd.DataFrame:
    """Per run and frame bin: first and last frame, majority cluster, fraction of frames per tag."""
    binned = _binned(assigned.select("run_id", "frame", "image_id", "cluster", "tag_names"), bins).cache()
    spans = binned.groupBy("run_id", "bin").agg(F.min("frame").alias("first_frame"), F.max("frame").alias("last_frame"),
                                                F.count("*").alias("frames")).toPandas()
    votes = binned.groupBy("run_id", "bin", "cluster").count().toPandas()
    tagged = binned.select("run_id", "bin", F.explode("tag_names").alias("tag")).groupBy("run_id", "bin", "tag").count().toPandas()
    binned.unpersist()
    majority = (votes.sort_values(["run_id", "bin", "count", "cluster"], ascending=[True, True, False, True])
                .drop_duplicates(["run_id", "bin"])[["run_id", "bin", "cluster"]])
    out = spans.merge(majority, on=["run_id", "bin"]).sort_values(["run_id", "bin"]).reset_index(drop=True)
    fractions = {(r, b): {} for r, b in zip(out["run_id"], out["bin"])}
    size = dict(zip(zip(out["run_id"], out["bin"]), out["frames"]))
    for r, b, tag, count in tagged.itertuples(index=False):
        fractions[(r, b)][tag] = count / size[(r, b)]
    out["tag_fractions"] = [fractions[(r, b)] for r, b in zip(out["run_id"], out["bin"])]
    return out


def waterfalls(assigned: DataFrame, curves: int) -> pd.DataFrame:
    """Per run: the mean profile of each of ``curves`` consecutive frame bins, on the run's most
    common profile axis."""
    from pyspark.ml.functions import array_to_vector
    from pyspark.ml.stat import Summarizer

    binned = _binned(assigned.filter(F.col("profile").isNotNull())
                     .select("run_id", "frame", "image_id", "profile_axis", "profile"), curves)
    means = (binned.groupBy("run_id", "bin", "profile_axis")
             .agg(Summarizer.mean(array_to_vector("profile")).alias("profile"), F.min("frame").alias("first_frame"),
                  F.max("frame").alias("last_frame"), F.count("*").alias("frames")).toPandas())
    if means.empty:
        return means
    means["profile"] = [v.toArray() for v in means["profile"]]
    axis = (means.groupby(["run_id", "profile_axis"])["frames"].sum().reset_index()
            .sort_values(["run_id", "frames", "profile_axis"], ascending=[True, False, True]).drop_duplicates("run_id"))
    return means.merge(axis[["run_id", "profile_axis"]], on=["run_id", "profile_axis"]).sort_values(["run_id", "bin"])


def thumbnails(spark, images_url: str, beamtime: str, table: pd.DataFrame) -> pd.DataFrame:
    """The stored images of the clusters' medoid frames (only those), by image_id."""
    ids = sorted({i for ids in table["medoid_ids"] for i in ids})
    runs = sorted({(beamtime, r) for rs in table["medoid_runs"] for r in rs})
    if not ids or not tables.table_exists(images_url):
        return pd.DataFrame(columns=["image", "mask", "height", "width"])
    return (parts.read_partitions(spark, images_url, runs).filter(F.col("image_id").isin(ids))
            .select("image_id", "image", "mask", "height", "width").toPandas().set_index("image_id"))


def embedding_map(sample: pd.DataFrame, seed: int) -> tuple[np.ndarray, tuple[float, float]]:
    """The sample's embeddings on their first two principal components, and the variance each explains."""
    from sklearn.decomposition import PCA

    vectors = np.stack(sample["embedding"].to_numpy()).astype(np.float64)
    pca = PCA(n_components=2, random_state=seed).fit(vectors)
    return pca.transform(vectors), tuple(float(v) for v in pca.explained_variance_ratio_)


def _tag_bars(row, shown: int = 8) -> str:
    items = [f'<div><span class="bar" style="width:{120 * f:.0f}px"></span>{f:.0%} {html.escape(t)}</div>'
             for t, f in list(zip(row.tags, row.tag_fractions))[:shown]]
    return "".join(items) or '<span class="muted">no tags</span>'


def _events_table(events: pd.DataFrame) -> str:
    if events.empty:
        return '<p class="muted">No change point in this run.</p>'
    shown = events.assign(number=range(1, len(events) + 1), score=events["score"].map("{:.1f}".format),
                          before=[", ".join(t) for t in events["tags_before"]],
                          after=[", ".join(t) for t in events["tags_after"]])
    return _table(shown, ["number", "frame", "kind", "signal", "score", "before", "after"])


def write_atlas(spark, output: Path, beamtime: str, clusters, events: pd.DataFrame, explore, grids: dict,
                images_url: str) -> Path:
    """Write ``output/index.html`` and its PNGs (published whole: a rerun replaces the directory);
    ``clusters``: ``explore.clusters.Clusters``; ``events``: the beamtime's ``schema.RUN_EVENTS`` rows;
    ``grids``: the profile grid of each axis (bin centres). Returns the page's path."""
    output = Path(output)
    tmp = output.with_name(f".{output.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    table = clusters.table
    bins = timelines(clusters.assigned, explore.atlas_timeline_bins)
    curves = waterfalls(clusters.assigned, explore.atlas_waterfall_curves)
    thumbs = thumbnails(spark, images_url, beamtime, table)
    runs = sorted(bins["run_id"].unique())
    frames, k = int(table["size"].sum()), len(table)

    def png(name: str, draw) -> str:
        return f'<img src="{_figure(str(tmp / name), draw)}" alt="{html.escape(name)}">'

    sections = [f"<h1>Beamtime atlas: {html.escape(beamtime)}</h1>",
                f"<p>{frames} frames in {len(runs)} runs, embedded by <b>{html.escape(table['model_id'][0])}</b>; "
                f"{k} clusters (k chosen: {html.escape(table['criterion'][0])}); {len(events)} change points.</p>",
                '<nav><a href="#clusters">Clusters</a><a href="#map">Map</a><a href="#runs">Runs</a></nav>',
                '<h2 id="clusters">Clusters</h2><p>k-means of the embeddings; C0 is the largest cluster. '
                "Thumbnails: the frames nearest each cluster's centre (stored images, log scale).</p>",
                png("cluster_sizes.png", figures.sizes_per_run(table)),
                png("cluster_composition.png", figures.composition(table))]
    if table["profile_axis"].notna().any():
        sections.append(png("cluster_profiles.png", figures.mean_profiles(table, grids)))
    for row in table.itertuples():
        per_run = ", ".join(f"{html.escape(r)}: {n}" for r, n in zip(row.runs, row.run_sizes))
        strip = (png(f"cluster_{row.cluster}.png", figures.medoid_strip(row, thumbs))
                 if any(i in thumbs.index for i in row.medoid_ids) else '<p class="muted">no stored image of its '
                 "frames in the images table</p>")
        sections.append(f'<div class="cluster"><h3 id="c{row.cluster}">Cluster C{row.cluster}: {row.size} frames '
                        f"({row.size / frames:.0%})</h3>{strip}<table><tr><th>tags (fraction of frames)</th>"
                        f"<th>frames per run</th></tr><tr><td>{_tag_bars(row)}</td><td>{per_run}</td></tr></table></div>")
    xy, explained = embedding_map(clusters.sample, explore.clusters_seed)
    counts = pd.Series([t for ts in clusters.sample["tag_names"] if ts is not None for t in ts], dtype=object).value_counts()
    map_tags = sorted(counts.index, key=lambda t: (-counts[t], t))[:explore.atlas_map_tags]
    sections += ['<h2 id="map">Map of the embeddings</h2>',
                 f"<p>{len(clusters.sample)} sampled frames on the first two principal components of their "
                 "embeddings; near frames look alike. First panel by cluster, then one panel per frequent tag.</p>",
                 png("map.png", figures.embedding_map(xy, clusters.sample, map_tags, explained))]
    sections.append('<h2 id="runs">Runs</h2><p>Timeline: the majority cluster along the frames, the fraction of '
                    "frames with each tag (dark: all), and the change points (dashed, numbered as in the table). "
                    "Waterfall: mean I(q) of consecutive frame bins, first frames at the bottom.</p>")
    shown_tags = [t for t in counts.index][:12]
    for run in runs:
        mine = events[events["run_id"] == run].sort_values("frame")
        run_bins = bins[bins["run_id"] == run]
        run_tags = sorted({t for f in run_bins["tag_fractions"] for t in f},
                          key=lambda t: (t not in shown_tags, -counts.get(t, 0), t))[:12]
        slug = "".join(c if c.isalnum() else "_" for c in run)
        sections += [f'<h3 id="run-{slug}">Run {html.escape(run)}: {int(run_bins["frames"].sum())} frames, '
                     f"{len(mine)} change point{'' if len(mine) == 1 else 's'}</h3>",
                     png(f"timeline_{slug}.png", figures.timeline(run, run_bins, run_tags, mine)), _events_table(mine)]
        run_curves = curves[curves["run_id"] == run] if len(curves) else curves
        if len(run_curves):
            axis = run_curves["profile_axis"].iloc[0]
            sections.append(png(f"waterfall_{slug}.png", figures.waterfall(run, run_curves, grids[axis], axis)))
    (tmp / "index.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>xray_spark atlas {html.escape(beamtime)}</title>"
        f"<style>{STYLE}</style></head><body>" + "\n".join(sections) + "</body></html>\n", encoding="utf-8")
    if output.exists():
        shutil.rmtree(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(output)
    return output / "index.html"
