"""The nightly HTML summary: images per run, tag distribution per run, low-confidence images to
review and quarantined files, with PNG figures (matplotlib, Agg).

Everything shown is read back from the tables (manifest, quarantine, nightly predictions), so the
same night gives the same report however often it is written. Spark computes the aggregates; the
driver receives counts per run and tag, and the few images shown for review.
"""
from __future__ import annotations

import html
import json
import os
import shutil
import uuid

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from xray_spark import modeldir, schema
from xray_spark.io import manifest as mf
from xray_spark.io import partitions as parts
from xray_spark.io import tables

MAX_QUARANTINE_ROWS = 200


def _figure(path: str, draw) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = draw(plt)
    fig.savefig(path, dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return os.path.basename(path)


def runs_of_night(spark, config, night: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-run counts of files ingested that night, quarantine rows of that night)."""
    manifest = mf.read(config.paths.url("manifest"), schema.MANIFEST)
    quarantine = mf.read(config.paths.url("quarantine"), schema.QUARANTINE)
    tonight = manifest[manifest["ingested_at"].fillna("").str.startswith(night)]
    runs = (tonight.assign(run=tonight["beamtime"] + "/" + tonight["run_id"],
                           quarantined=(tonight["status"] == "quarantined").astype(int))
            .groupby("run", sort=True).agg(files=("path", "size"), frames=("frames", "sum"),
                                           quarantined_files=("quarantined", "sum")).reset_index())
    bad = quarantine[quarantine["quarantined_at"].fillna("").str.startswith(night)]
    return runs, bad.sort_values(["path", "frame"], kind="stable")


def tag_fractions(predictions) -> pd.DataFrame:
    """Fraction of a run's images predicted with each tag (rows: beamtime/run, columns: tags).

    Every run with predictions has a row, also when no image of it got any tag (all zeros)."""
    per_run = predictions.groupBy("beamtime", "run_id").agg(F.count("*").alias("n"))
    hits = (predictions.select("beamtime", "run_id", F.explode("tag_names").alias("tag"))
            .groupBy("beamtime", "run_id", "tag").agg(F.count("*").alias("k")))
    table = per_run.join(hits, ["beamtime", "run_id"], "left").withColumn("fraction", F.col("k") / F.col("n")).toPandas()
    table["run"] = table["beamtime"] + "/" + table["run_id"]
    tagged = table.dropna(subset=["tag"])
    return (tagged.pivot(index="run", columns="tag", values="fraction").reindex(sorted(set(table["run"])))
            .fillna(0.0))


def least_confident(spark, config, predictions, thresholds: list[float], tags: list[str], n: int) -> pd.DataFrame:
    """The ``n`` images whose scores lie nearest their thresholds on average (mean |score -
    threshold| over the tags), with the tag nearest its threshold and a thumbnail."""
    limits = F.array(*[F.lit(float(t)) for t in thresholds])
    distances = F.zip_with("scores", limits, lambda s, t: F.abs(s - t))
    margin = F.aggregate(distances, F.lit(0.0), lambda acc, d: acc + d) / len(thresholds)
    rows = (predictions.filter(F.col("error").isNull()).withColumn("margin", margin)
            .orderBy("margin", "image_id").limit(n).select("image_id", "beamtime", "run_id", "scores", "margin")
            .toPandas())
    if rows.empty:
        return rows
    scores = np.stack(rows["scores"].to_numpy())
    closest = np.abs(scores - np.asarray(thresholds)[None, :]).argmin(axis=1)
    rows["tag"] = [tags[k] for k in closest]
    rows["score"] = scores[np.arange(len(rows)), closest]
    rows["threshold"] = np.asarray(thresholds)[closest]
    runs = sorted(set(zip(rows["beamtime"], rows["run_id"])))
    images = (parts.read_partitions(spark, config.paths.url("images"), runs)
              .filter(F.col("image_id").isin(list(rows["image_id"])))
              .select("image_id", "image", "height", "width", F.get_json_object("provenance", "$.path").alias("path"),
                      "frame").toPandas().set_index("image_id"))
    return rows.join(images, on="image_id")


def _bar_runs(runs: pd.DataFrame):
    def draw(plt):
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(runs) + 1.5))
        y = np.arange(len(runs))
        ax.barh(y - 0.2, runs["frames"], 0.4, label="images ingested")
        ax.barh(y + 0.2, runs["quarantined_files"], 0.4, label="files quarantined", color="tab:red")
        ax.set_yticks(y, runs["run"])
        ax.invert_yaxis()
        ax.set_xlabel("count")
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1), ncol=2, frameon=False)  # above: never over a bar
        fig.tight_layout()
        return fig
    return draw


def _heatmap(fractions: pd.DataFrame, title: str):
    def draw(plt):
        fig, ax = plt.subplots(figsize=(0.35 * fractions.shape[1] + 3, 0.35 * fractions.shape[0] + 2.5))
        im = ax.imshow(fractions.to_numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(fractions.shape[1]), fractions.columns, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(fractions.shape[0]), fractions.index, fontsize=8)
        ax.set_title(title)
        fig.colorbar(im, ax=ax, label="fraction of the run's images")
        return fig
    return draw


def _gallery(review: pd.DataFrame):
    def draw(plt):
        cols = min(4, len(review))
        rows = -(-len(review) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for ax, r in zip(axes.ravel(), review.itertuples()):
            ax.imshow(schema.decode_images([r.image], r.height, r.width)[0], cmap="magma", vmin=0, vmax=1)
            ax.set_title(f"{os.path.basename(r.path)}#{r.frame}\n{r.tag}: {r.score:.2f} "
                         f"(threshold {r.threshold:.2f})", fontsize=7)
        return fig
    return draw


def _table(frame: pd.DataFrame, columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in frame[columns].itertuples(index=False))
    return f"<table><tr>{head}</tr>{body}</table>"


def atlas_links(config, beamtimes) -> str:
    """Links to the atlas pages (``xray-spark atlas``) of those ``beamtimes`` that have one, relative
    to a night's report directory; empty when none has."""
    from urllib.parse import quote

    links = [f'<li><a href="../../atlas/{html.escape(quote(b))}/index.html">{html.escape(b)}</a></li>'
             for b in sorted(set(beamtimes)) if (config.paths.atlas_report(b) / "index.html").is_file()]
    return f"<h2>Beamtime atlases</h2><ul>{''.join(links)}</ul>" if links else ""


def write_report(spark, config, night: str) -> str:
    """Write ``<paths.reports>/nightly/<night>/index.html`` and its PNGs; returns the index path."""

    target = config.paths.local("reports", "nightly", night)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    runs, quarantined = runs_of_night(spark, config, night)
    sections = [f"<h1>Nightly summary {html.escape(night)}</h1>",
                f"<p>{int(runs['files'].sum()) if len(runs) else 0} files ingested, "
                f"{int(runs['frames'].sum()) if len(runs) else 0} images; {len(quarantined)} quarantine entries.</p>",
                "<h2>Images per run</h2>"]
    if len(runs):
        sections.append(f'<img src="{_figure(str(tmp / "images_per_run.png"), _bar_runs(runs))}">')
        sections.append(_table(runs, ["run", "files", "frames", "quarantined_files"]))
    else:
        sections.append("<p>No file was ingested this night.</p>")
    predictions = None
    if tables.table_exists(config.paths.nightly_predictions()):
        predictions = parts.read_partitions(spark, config.paths.nightly_predictions(), [(night,)], schema.NIGHTLY, ("night",))
    for model in config.nightly.models:
        manifest = modeldir.read_manifest(config.paths.model_dir(model))
        slug = "".join(c if c.isalnum() else "_" for c in manifest["model_id"])
        sections.append(f"<h2>Model {html.escape(manifest['model_id'])} ({manifest['kind']})</h2>")
        mine = predictions.filter(F.col("model_id") == manifest["model_id"]) if predictions is not None else None
        fractions = tag_fractions(mine) if mine is not None else pd.DataFrame()
        if not len(fractions.index):  # no prediction rows (a run whose images got no tag has a row)
            sections.append("<p>No image was labelled by this model this night.</p>")
            continue
        fractions = fractions.reindex(columns=manifest["tags"], fill_value=0.0)
        sections.append("<h3>Tag distribution per run</h3>" + f'<img src="{_figure(str(tmp / f"tags_{slug}.png"), _heatmap(fractions, manifest["model_id"]))}">')
        review = least_confident(spark, config, mine, manifest["thresholds"], manifest["tags"],
                                 config.nightly.review_count)
        sections.append(f"<h3>{len(review)} least confident images to review</h3><p>margin: mean distance of "
                        "the scores to their thresholds; tag: the one nearest its threshold.</p>")
        if len(review):
            sections.append(f'<img src="{_figure(str(tmp / f"review_{slug}.png"), _gallery(review))}">')
            sections.append(_table(review.assign(margin=review["margin"].map("{:.3f}".format),
                                                 score=review["score"].map("{:.3f}".format),
                                                 threshold=review["threshold"].map("{:.3f}".format)),
                                   ["path", "frame", "run_id", "margin", "tag", "score", "threshold", "image_id"]))
    sections.append(atlas_links(config, [r.split("/", 1)[0] for r in runs["run"]] if len(runs) else []))
    sections.append("<h2>Quarantined</h2>")
    if len(quarantined):
        reasons = quarantined["reason"].value_counts().sort_index()
        sections.append("<p>" + ", ".join(f"{html.escape(k)}: {v}" for k, v in reasons.items()) + "</p>")
        shown = quarantined.head(MAX_QUARANTINE_ROWS)
        shown = shown.assign(frame=["whole file" if pd.isna(f) else int(f) for f in shown["frame"]])
        sections.append(_table(shown, ["path", "frame", "reason", "error"]))
    else:
        sections.append("<p>Nothing was quarantined this night.</p>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;font-size:90%}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}img{max-width:100%}")
    (tmp / "index.html").write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>xray_spark nightly "
                                    f"{html.escape(night)}</title><style>{style}</style></head><body>"
                                    + "\n".join(sections) + "</body></html>\n", encoding="utf-8")
    (tmp / "summary.json").write_text(json.dumps({"night": night, "runs": runs.to_dict("records"),
                                                  "quarantined": len(quarantined)}, default=int, sort_keys=True))
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return str(target / "index.html")
