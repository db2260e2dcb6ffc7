"""Change points along runs (explore.run_events): found where a run built to have them changes, none
on a constant run, with the tags that appear or disappear; per run on real Spark executors."""
import numpy as np
import pandas as pd

from bench import embedding_runs
from xray_spark.explore import run_events

CHANGES = [40, 95, 150]


def frames(run: dict) -> pd.DataFrame:
    return pd.DataFrame({k: run[k] for k in ("beamtime", "run_id", "frame", "image_id", "embedding", "tag_names")})


def test_change_points_of_a_built_run_with_their_tags():
    run = embedding_runs.changing_run("bt", "r1", 200, CHANGES, d=128, noise=0.3, shift=(0.4, 0.6), seed=1)
    events = run_events.events_of_run(frames(run), window=8, penalty=10.0)
    assert list(events["frame"]) == CHANGES
    assert list(events["signal"]) == ["embedding+tags"] * 3
    states = embedding_runs.TAG_STATES
    assert list(events["tags_before"]) == [sorted(states[i]) for i in range(3)]
    assert list(events["tags_after"]) == [sorted(states[i]) for i in range(1, 4)]
    assert list(events["kind"]) == ["Ring: Isotropic appears", "Beam off image appears; Ring: Isotropic disappears; "
                                    "Thin film disappears", "Peaks: Isolated appears; Thin film appears; Beam off image disappears"]
    assert (events["score"] > 5).all()  # the window gain in noise units: about 1 where nothing changes
    assert events["image_id"].tolist() == [f"bt-r1-{f:06d}" for f in CHANGES]


def test_a_constant_run_has_no_events_and_a_shift_without_tags_is_an_embedding_shift():
    constant = embedding_runs.changing_run("bt", "r0", 200, [], d=128, noise=0.3, shift=(0.5, 0.5), seed=2)
    assert run_events.events_of_run(frames(constant), window=8, penalty=10.0).empty
    shifted = frames(embedding_runs.changing_run("bt", "r2", 120, [60], d=128, noise=0.3, shift=(0.5, 0.5), seed=3))
    shifted["tag_names"] = [["GISAXS"]] * len(shifted)
    events = run_events.events_of_run(shifted, window=8, penalty=10.0)
    assert events[["frame", "kind", "signal"]].values.tolist() == [[60, "embedding shift", "embedding"]]


def test_a_flickering_tag_is_no_event_but_the_beam_moving_off_is():
    run = frames(embedding_runs.changing_run("bt", "r3", 120, [], d=64, noise=0.3, shift=(0.5, 0.5), seed=4))
    tags = [["GISAXS"] for _ in range(120)]
    for i in (20, 21, 50):
        tags[i] = ["GISAXS", "Ring: Isotropic"]  # flicker
    for i in range(3, 120):
        tags[i] = tags[i] + ["Beam off image"]  # off from frame 3 on: near the start, only tags can tell
    events = run_events.events_of_run(run.assign(tag_names=tags), window=8, penalty=10.0)
    assert events[["frame", "kind", "signal"]].values.tolist() == [[3, "Beam off image appears", "tags"]]


def test_events_of_every_run_on_the_executors(spark, tmp_path):
    runs = [embedding_runs.changing_run("bt", f"r{i}", 160, changes, d=64, noise=0.3, shift=(0.5, 0.7), seed=10 + i)
            for i, changes in enumerate([[50, 110], [], [80]])]
    url = embedding_runs.write(runs, tmp_path / "embeddings")
    table = spark.read.parquet(url).repartition(3)  # frames of a run arrive shuffled
    events = run_events.run_events(table, window=8, penalty=10.0).orderBy("run_id", "frame").toPandas()
    assert events[["run_id", "frame"]].values.tolist() == [["r0", 50], ["r0", 110], ["r2", 80]]
    assert np.all(events["beamtime"] == "bt")
