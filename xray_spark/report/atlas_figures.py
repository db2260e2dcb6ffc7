"""The atlas' figures (matplotlib, Agg): cluster sizes and composition, medoid thumbnails, mean
profiles (bins a frame does not reach left out), the 2-D map of the embeddings, a run's timeline with its change points, and a run's I(q)
waterfall. Each function takes small pandas/numpy inputs and returns a ``draw(plt)`` for
``night_summary._figure``; one colour per cluster throughout (``cluster_colour``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from xray_spark import schema

AXIS_LABEL = {"q": "q (nm$^{-1}$)", "radius": "radius (stored pixels)"}


def _reached(profile) -> np.ndarray:
    """A profile with the bins the frames do not reach (exactly 0, see ``explore.profiles``) as gaps."""
    profile = np.asarray(profile, dtype=float)
    return np.where(profile == 0.0, np.nan, profile)


def cluster_colour(cluster: int):
    import matplotlib

    return matplotlib.colormaps["tab20" if cluster >= 10 else "tab10"](cluster % 10 if cluster < 10 else cluster - 10)


def sizes_per_run(table: pd.DataFrame):
    """Stacked bars: frames of each cluster in each run."""
    runs = sorted({r for rs in table["runs"] for r in rs})

    def draw(plt):
        fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(runs) + 1.6))
        left = np.zeros(len(runs))
        for row in table.itertuples():
            counts = np.array([dict(zip(row.runs, row.run_sizes)).get(r, 0) for r in runs], dtype=float)
            ax.barh(range(len(runs)), counts, left=left, color=cluster_colour(row.cluster), label=f"C{row.cluster}")
            left += counts
        ax.set_yticks(range(len(runs)), runs, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("frames")
        ax.set_title("frames of each cluster per run", fontsize=10)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
        fig.tight_layout()
        return fig
    return draw


def composition(table: pd.DataFrame, max_tags: int = 20):
    """Heat map: fraction of each cluster's frames carrying each tag (the most frequent tags)."""
    weight: dict[str, float] = {}
    for row in table.itertuples():
        for tag, f in zip(row.tags, row.tag_fractions):
            weight[tag] = weight.get(tag, 0.0) + f * row.size
    tags = sorted(weight, key=lambda t: (-weight[t], t))[:max_tags]
    grid = np.array([[dict(zip(r.tags, r.tag_fractions)).get(t, 0.0) for t in tags] for r in table.itertuples()])

    def draw(plt):
        fig, ax = plt.subplots(figsize=(0.38 * max(len(tags), 4) + 3, 0.38 * len(table) + 2.4))
        shown = ax.imshow(grid.reshape(len(table), len(tags)), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(tags)), tags, rotation=50, ha="right", fontsize=8)
        ax.set_yticks(range(len(table)), [f"C{r.cluster} ({r.size})" for r in table.itertuples()], fontsize=8)
        for label, row in zip(ax.get_yticklabels(), table.itertuples()):
            label.set_color(cluster_colour(row.cluster))
        ax.set_title("tag composition: fraction of the cluster's frames with the tag", fontsize=10)
        fig.colorbar(shown, ax=ax, fraction=0.03)
        fig.tight_layout()
        return fig
    return draw


def medoid_strip(row, thumbnails: pd.DataFrame):
    """The frames nearest a cluster's centre, nearest first (stored images, log scale; masked grey)."""
    shown = [(i, r, f) for i, r, f in zip(row.medoid_ids, row.medoid_runs, row.medoid_frames) if i in thumbnails.index]

    def draw(plt):
        fig, axes = plt.subplots(1, max(len(shown), 1), figsize=(1.9 * max(len(shown), 1), 2.1), squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for ax, (image_id, run, frame) in zip(axes.ravel(), shown):
            t = thumbnails.loc[image_id]
            image = schema.decode_images([t["image"]], t["height"], t["width"])[0]
            bad = schema.decode_masks([t["mask"]], t["height"], t["width"])[0]
            ax.imshow(np.ma.masked_array(image, bad), cmap="magma", vmin=0, vmax=1)
            ax.set_title(f"{run} #{frame}", fontsize=8)
        fig.suptitle(f"C{row.cluster}: frames nearest the centre", fontsize=9, color=cluster_colour(row.cluster))
        fig.tight_layout()
        return fig
    return draw


def mean_profiles(table: pd.DataFrame, grids: dict[str, np.ndarray]):
    """Each cluster's mean profile, one panel per profile axis."""
    axes_used = sorted({a for a in table["profile_axis"] if a})

    def draw(plt):
        fig, axes = plt.subplots(1, len(axes_used), figsize=(6.5 * len(axes_used), 3.6), squeeze=False)
        for ax, axis in zip(axes.ravel(), axes_used):
            for row in table[table["profile_axis"] == axis].itertuples():
                ax.plot(grids[axis], _reached(row.mean_profile), color=cluster_colour(row.cluster), label=f"C{row.cluster}")
            ax.set_xscale("log")
            ax.set_xlabel(AXIS_LABEL[axis])
            ax.set_ylabel("mean log$_{10}$(1 + I)")
            ax.legend(fontsize=8, ncol=2, frameon=False)
        fig.suptitle("mean profile of each cluster", fontsize=10)
        fig.tight_layout()
        return fig
    return draw


def embedding_map(xy: np.ndarray, sample: pd.DataFrame, tags: list[str], explained: tuple[float, float]):
    """The sample's embeddings on their first two principal components: coloured by cluster, then
    one panel per tag (frames with the tag in colour, the others grey)."""
    panels = 1 + len(tags)
    cols = min(panels, 4)
    rows = -(-panels // cols)

    def draw(plt):
        fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.5 * rows), squeeze=False, sharex=True, sharey=True)
        for ax in axes.ravel():
            ax.set_visible(False)
        first = axes.ravel()[0]
        first.set_visible(True)
        for c in sorted(sample["cluster"].unique()):
            here = (sample["cluster"] == c).to_numpy()
            first.scatter(xy[here, 0], xy[here, 1], s=5, color=cluster_colour(int(c)), label=f"C{c}", linewidths=0)
        first.set_title("by cluster", fontsize=9)
        first.legend(fontsize=7, markerscale=2.5, ncol=2, frameon=False, loc="best")
        for ax, tag in zip(axes.ravel()[1:], tags):
            ax.set_visible(True)
            has = np.array([tag in (t if t is not None else []) for t in sample["tag_names"]])
            ax.scatter(xy[~has, 0], xy[~has, 1], s=4, color="0.85", linewidths=0)
            ax.scatter(xy[has, 0], xy[has, 1], s=5, color="tab:red", linewidths=0)
            ax.set_title(f"{tag} ({has.mean():.0%} of frames)", fontsize=9)
        for ax in axes[-1]:
            ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)", fontsize=8)
        for ax in axes[:, 0]:
            ax.set_ylabel(f"PC2 ({explained[1]:.0%})", fontsize=8)
        fig.tight_layout()
        return fig
    return draw


def timeline(run: str, bins: pd.DataFrame, tags: list[str], events: pd.DataFrame):
    """A run along its frames: the majority cluster of each frame bin (top strip), the fraction of
    frames with each tag (rows), and its change points (dashed lines, numbered as in the table)."""
    def draw(plt):
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 0.28 * len(tags) + 2.2), sharex=True,
                                          gridspec_kw={"height_ratios": [1, max(len(tags), 1) * 0.9]})
        left, right = bins["first_frame"].to_numpy(), bins["last_frame"].to_numpy() + 1
        for c in sorted(bins["cluster"].unique()):
            here = (bins["cluster"] == c).to_numpy()
            top.barh(0, right[here] - left[here], left=left[here], height=1, color=cluster_colour(int(c)),
                     label=f"C{c}")
        top.set_yticks([])
        top.set_ylabel("cluster", rotation=0, ha="right", va="center", fontsize=8)
        top.legend(loc="lower left", bbox_to_anchor=(0, 1), ncol=10, fontsize=7, frameon=False)
        grid = np.array([[f.get(t, 0.0) for t in tags] for f in bins["tag_fractions"]]).T.reshape(len(tags), len(bins))
        edges = np.append(left, right[-1])
        bottom.pcolormesh(edges, np.arange(len(tags) + 1), grid, cmap="Greys", vmin=0, vmax=1)
        bottom.set_yticks(np.arange(len(tags)) + 0.5, tags, fontsize=8)
        bottom.invert_yaxis()
        bottom.set_xlabel("frame")
        for number, event in enumerate(events.itertuples(), start=1):
            for ax in (top, bottom):
                ax.axvline(event.frame, color="tab:blue", linestyle="--", linewidth=1)
            bottom.annotate(str(number), (event.frame, 0), xytext=(2, 2), textcoords="offset points",
                            color="tab:blue", fontsize=8, annotation_clip=False, va="bottom")
        top.set_title(run, fontsize=9, loc="right")
        fig.tight_layout()
        return fig
    return draw


def waterfall(run: str, curves: pd.DataFrame, grid: np.ndarray, axis: str):
    """A run's mean profiles over consecutive frame bins, offset upwards in frame order."""
    def draw(plt):
        import matplotlib

        fig, ax = plt.subplots(figsize=(6.5, 4.6))
        profiles = np.stack(curves["profile"].to_numpy())
        step = 0.6 * max(float(np.ptp(np.diff(profiles, axis=0), axis=1).max()) if len(profiles) > 1 else 0.0, 0.1)
        colours = matplotlib.colormaps["viridis"](np.linspace(0, 1, len(curves)))
        for i, (row, colour) in enumerate(zip(curves.itertuples(), colours)):
            ax.plot(grid, _reached(profiles[i]) + i * step, color=colour, linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel(AXIS_LABEL[axis])
        ax.set_ylabel(f"log$_{{10}}$(1 + I), offset {step:.2g} per curve")
        norm = matplotlib.colors.Normalize(curves["first_frame"].min(), curves["last_frame"].max())
        fig.colorbar(matplotlib.cm.ScalarMappable(norm, "viridis"), ax=ax, label="frame")
        ax.set_title(f"{run}: I({'q' if axis == 'q' else 'r'}) over the run, mean of each frame bin", fontsize=9)
        fig.tight_layout()
        return fig
    return draw
