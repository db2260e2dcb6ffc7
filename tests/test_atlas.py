"""The beamtime atlas end to end: an images table of 3 runs -> embeddings (the shipped CNN,
explore.embeddings) -> `xray-spark atlas`: clusters and run_events tables and the HTML page with its
figures and medoid thumbnails; the nightly summary links the page."""
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from xray_spark import schema
from xray_spark.cli import main
from xray_spark.config import load_config
from xray_spark.explore.embeddings import EmbeddingSettings, embed
from xray_spark.io import partitions as parts
from xray_spark.paths import SHIPPED_MODELS
from xray_spark.report.night_summary import atlas_links

FRAMES, CHANGE = 24, 12


def frame_image(run: int, frame: int, rng) -> np.ndarray:
    """Diffuse scattering about the centre; from frame CHANGE on, run0 shows a ring and run1 loses
    its beam (background only); run2 never changes."""
    rows, cols = np.indices((64, 64))
    radius = np.hypot(rows - 32, cols - 32)
    counts = 5 + 4000 * np.exp(-radius / 6)
    if frame >= CHANGE and run == 0:
        counts = counts + 3000 * np.exp(-0.5 * ((radius - 20) / 1.5) ** 2)
    if frame >= CHANGE and run == 1:
        counts = np.full_like(counts, 5.0)
    return (np.log1p(rng.poisson(counts)) / np.log1p(2.0 ** 20)).astype(np.float32)


@pytest.fixture(scope="module")
def beamtime(spark, cluster_config, tmp_path_factory):
    root = tmp_path_factory.mktemp("atlas")
    rng = np.random.default_rng(0)
    records = [schema.image_record(image_id=f"bt1-run{r}-{f:03d}", source="archive", beamtime="bt1", run_id=f"run{r}",
                                   frame=f, image=frame_image(r, f, rng), mask=np.zeros((64, 64), bool), tag_names=None,
                                   provenance={}) for r in range(3) for f in range(FRAMES)]
    table = pa.Table.from_batches([schema.records_to_arrow(records)])
    pq.write_to_dataset(table, str(root / "images"), partition_cols=list(schema.PARTITION_KEYS))
    config = load_config(None, [*CLUSTER_OVERRIDES, f"paths.root={root}"])
    embed(spark, SHIPPED_MODELS / "cnn-top17", config.paths.url("images"), config.paths.url("embeddings"),
          EmbeddingSettings.from_config(config))
    return root, config


CLUSTER_OVERRIDES = ["spark.master=local-cluster[2,1,1024]", "progress.console=never", "explore.clusters_k=3",
                     "explore.change_window=4", "explore.atlas_waterfall_curves=6"]


def test_the_atlas_of_three_runs(spark, beamtime):
    root, config = beamtime
    assert main([*[a for o in CLUSTER_OVERRIDES for a in ("--set", o)], "--set", f"paths.root={root}",
                 "atlas", "--beamtime", "bt1"]) == 0
    page = root / "reports/atlas/bt1/index.html"
    text = page.read_text()
    for run in ("run0", "run1", "run2"):
        assert f"Run {run}: {FRAMES} frames" in text
        assert (page.parent / f"timeline_{run}.png").is_file() and (page.parent / f"waterfall_{run}.png").is_file()
    assert text.count("<h3 id=\"c") == 3 and "Cluster C0:" in text and "Cluster C2:" in text
    for source in re.findall(r'<img src="([^"]+)"', text):
        assert (page.parent / source).is_file(), source
    assert {f"cluster_{c}.png" for c in range(3)} <= {p.name for p in page.parent.iterdir()}  # medoid thumbnails
    assert "http" not in text  # nothing fetched from elsewhere

    clusters = parts.read_partitions(spark, config.paths.url("clusters"), [("bt1",)], schema.CLUSTERS, ("beamtime",)).toPandas()
    assert sorted(clusters["cluster"]) == [0, 1, 2] and clusters["size"].sum() == 3 * FRAMES
    assert [m.startswith("cnn-top17") for m in clusters["model_id"].unique()] == [True]
    events = parts.read_partitions(spark, config.paths.url("run_events"), [("bt1",)], schema.RUN_EVENTS,
                                   ("beamtime",)).toPandas()
    changed = {run: sorted(events[events["run_id"] == run]["frame"]) for run in ("run0", "run1", "run2")}
    assert any(abs(f - CHANGE) <= 2 for f in changed["run0"]) and any(abs(f - CHANGE) <= 2 for f in changed["run1"])
    assert changed["run2"] == []

    assert 'href="../../atlas/bt1/index.html"' in atlas_links(config, ["bt1", "bt2"])
    assert "bt2" not in atlas_links(config, ["bt1", "bt2"]) and atlas_links(config, ["bt2"]) == ""
