"""`xray-spark stream` on real Spark streaming with real files: frames dropped while the stream runs
are labelled once; bad input is quarantined and the stream goes on; the nightly job finds nothing
left; a driver killed mid-batch (twice) or an executor JVM killed mid-batch leaves every frame
exactly once (counted by image_id)."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from conftest import CLUSTER
from test_nightly import small_cnn

from xray_spark import schema
from xray_spark.config import load_config
from xray_spark.io import detector_writers, tables
from xray_spark.io.ingestion import ingest
from xray_spark.labelling.night import unscored
from xray_spark.labelling.streaming import run_stream

ROOT = Path(__file__).resolve().parents[1]
STREAM = ["tables.image_size=32", "stream.models=[cnn]", "stream.trigger_s=0.5", "stream.list_interval_s=0.2",
          "stream.max_files_per_batch=4"]


def drop_frames(landing: Path, run: str, first: int, count: int) -> list[str]:
    """Write small CBF frames as a detector does (hidden name, renamed when closed); their paths."""
    directory = landing / "bt1" / run
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(first, first + count):
        tmp = directory / f".f{i:03d}.cbf.part"
        detector_writers.write_cbf(str(tmp), np.random.default_rng(i).poisson(80, (64, 64)))
        os.rename(tmp, directory / f"f{i:03d}.cbf")
        paths.append(f"bt1/{run}/f{i:03d}.cbf")
    return paths


def stream_setup(tmp_path, *settings: str):
    landing = tmp_path / "landing"
    landing.mkdir()
    small_cnn(tmp_path / "data" / "models" / "cnn")
    config = load_config(None, CLUSTER + STREAM + [f"paths.root={tmp_path / 'data'}", f"ingest.archive={landing}",
                                                   "nightly.models=[cnn]", *settings])
    return config, landing


def embedded_paths(spark, config) -> list[str]:
    """The embeddings table's paths, one per row (empty before the first embedding, or when the
    stream's merge swapped a partition while this read listed it: the caller polls again)."""
    from py4j.protocol import Py4JJavaError

    url = config.paths.url("embeddings")
    if not tables.table_exists(url):
        return []
    try:
        return [r["path"] for r in spark.read.schema(schema.spark_schema(schema.EMBEDDINGS)).parquet(url)
                .select("path").collect()]
    except Py4JJavaError as e:
        if "does not exist" not in str(e.java_exception):
            raise
        return []


def counts(spark, config) -> tuple[dict, dict]:
    """Rows per image_id in the images table and in the nightly predictions."""
    images = spark.read.schema(schema.spark_schema()).parquet(config.paths.url("images")).groupBy("image_id").count()
    scored = (spark.read.schema(schema.spark_schema(schema.NIGHTLY)).parquet(config.paths.nightly_predictions())
              .groupBy("image_id").count())
    return ({r["image_id"]: r["count"] for r in images.collect()}, {r["image_id"]: r["count"] for r in scored.collect()})


def labelled_paths(config) -> list[str]:
    folder = Path(config.paths.checkpoint("stream")[len("file://"):]) / "labelled"
    return [f["path"] for p in sorted(folder.glob("*.json")) for f in json.loads(p.read_text())["labelled"]]


def wait_for(test, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if test():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_frames_dropped_while_the_stream_runs_are_labelled_once_and_bad_files_quarantined(spark, tmp_path):
    config, landing = stream_setup(tmp_path, "stream.embed_interval_s=1")
    first = drop_frames(landing, "run1", 0, 3)
    (landing / "bt1" / "run1" / "corrupt.cbf").write_bytes(b"###CBF: VERSION 1.5\n" + os.urandom(300))
    (landing / "bt1" / "misplaced.cbf").write_bytes(b"frame outside any run")
    os.symlink("/etc/hostname", landing / "bt1" / "run1" / "link.cbf")           # a symlink out of the root
    (landing / "bt2").mkdir()                                                   # a beamtime without frames yet
    stop = threading.Event()
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(run_stream(spark, config, stop=stop)))
    worker.start()
    try:
        wait_for(lambda: set(first) <= set(labelled_paths(config)), 300, "the first frames")
        # embedded in the background while the stream runs, not only when it stops
        wait_for(lambda: set(first) <= set(embedded_paths(spark, config)), 300, "the first frames' embeddings")
        later = drop_frames(landing, "run1", 3, 2) + drop_frames(landing, "run2", 5, 3)   # while it runs
        wait_for(lambda: set(later) <= set(labelled_paths(config)), 300, "the frames dropped later")
    finally:
        stop.set()
        worker.join()
    assert sorted(labelled_paths(config)) == sorted(first + later)
    images, scored = counts(spark, config)
    assert len(images) == 8 and set(images.values()) == {1} and scored == images
    quarantine = schema_rows(config.paths.url("quarantine"), schema.QUARANTINE)
    assert quarantine == {"bt1/run1/corrupt.cbf": "unreadable", "bt1/misplaced.cbf": "outside_layout",
                          "bt1/run1/link.cbf": "outside_archive"}
    assert outcome["written"] == 8 and outcome["quarantined_files"] == 3
    # every frame embedded once: in the background every stream.embed_interval_s, the rest when the stream stops
    embedded = (spark.read.schema(schema.spark_schema(schema.EMBEDDINGS)).parquet(config.paths.url("embeddings"))
                .groupBy("image_id", "path").count().collect())
    assert sorted(r["path"] for r in embedded) == sorted(first + later) and {r["count"] for r in embedded} == {1}
    assert {r["image_id"] for r in embedded} == set(images)
    page = Path(config.paths.local("reports", "live", "bt1", "index.html"))
    assert page.is_file() and len(list(page.parent.glob("thumbs/*.png"))) == 8
    waiting = Path(config.paths.local("reports", "live", "bt2", "live.js"))     # opened at start, waiting
    assert waiting.is_file() and "labelled yet" in waiting.read_text()
    # what the nightly job would do next: nothing to read, nothing to label
    assert unscored(spark, config, "cnn-test").count() == 0
    assert ingest(spark, config).read == 0


def test_an_eiger_acquisition_that_gains_data_files_has_each_frame_labelled_once(spark, tmp_path):
    config, landing = stream_setup(tmp_path, "stream.embed_interval_s=null")
    run = landing / "bt1" / "eiger"
    run.mkdir(parents=True)
    frames = np.random.default_rng(5).poisson(60, (4, 48, 40))

    def acquire(n: int, new_files: list[str]) -> None:
        """The detector's files after ``n`` frames (2 a data file): new data files first, then the master."""
        scratch = tmp_path / f"scratch{n}"
        scratch.mkdir()
        detector_writers.write_eiger(str(scratch / "scan_master.h5"), frames[:n], frames_per_file=2)
        for name in [*new_files, "scan_master.h5"]:
            os.replace(scratch / name, run / name)

    acquire(2, ["scan_data_000001.h5"])
    stop = threading.Event()
    worker = threading.Thread(target=lambda: run_stream(spark, config, stop=stop))
    worker.start()
    try:
        wait_for(lambda: len(labelled_paths(config)) >= 2, 300, "the first data file's frames")
        acquire(4, ["scan_data_000002.h5"])                       # the acquisition goes on
        wait_for(lambda: len(labelled_paths(config)) >= 4, 300, "the second data file's frames")
        time.sleep(2)                                             # anything more would be a duplicate
    finally:
        stop.set()
        worker.join()
    assert labelled_paths(config) == ["bt1/eiger/scan_master.h5"] * 4
    images, scored = counts(spark, config)
    assert len(images) == 4 and set(images.values()) == {1} and scored == images


@pytest.mark.parametrize("settings, arguments, message", [
    ([], ["--landing", "{tmp}/nowhere"], "--landing = '{tmp}/nowhere': the landing directory does not exist"),
    (["stream.models=[]"], [], "stream.models = []: the stream needs at least one model"),
    (["stream.models=[nope]"], [], "stream.models: "),
    (["explore.model=nope"], [], "explore.model (the stream embeds its frames with it"),
    (["stream.embed_interval_s=0"], [], "stream.embed_interval_s = 0"),
    (["stream.max_files_per_batch=0"], [], "stream.max_files_per_batch = 0"),
    ([], ["--max-batches", "0"], "--max-batches 0: must be > 0"),
])
def test_a_wrong_configuration_fails_at_start_naming_the_key(tmp_path, capsys, settings, arguments, message):
    """Checked before Spark starts: exit code 2 and one line naming the argument or key."""
    from xray_spark.cli import main

    (tmp_path / "landing").mkdir()
    args = [a for s in [*settings, f"paths.root={tmp_path / 'data'}"] for a in ("--set", s)]
    args += ["stream", "--landing", str(tmp_path / "landing"), *(a.format(tmp=tmp_path) for a in arguments)]
    try:
        code = main(args)
    except SystemExit as e:                     # a configuration error exits from the argument parser
        code = e.code
    assert code == 2 and message.format(tmp=tmp_path) in capsys.readouterr().err


def schema_rows(url, table) -> dict:
    from xray_spark.io import manifest as mf

    frame = mf.read(url, table)
    return dict(zip(frame["path"], frame["reason"]))


def start_stream(config_args: list[str], landing: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "xray_spark.cli", *[a for s in config_args for a in ("--set", s)], "stream",
               "--landing", str(landing), *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def killed_when(process: subprocess.Popen, moment, what: str) -> None:
    """SIGKILL ``process`` (the driver and its local-cluster JVMs) as soon as ``moment()`` is true."""
    try:
        wait_for(lambda: moment() or process.poll() is not None, 300, what)
        assert process.poll() is None, f"the stream ended before {what}: {process.stderr.read()[-3000:]}"
    finally:
        family = [process.pid, *(p.pid for p in psutil.Process(process.pid).children(recursive=True))]
        for pid in family:
            with_suppressed_kill(pid, signal.SIGKILL)
        process.wait()


def with_suppressed_kill(pid: int, sig) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def subprocess_setup(tmp_path):
    config, landing = stream_setup(tmp_path)
    args = CLUSTER + STREAM + [f"paths.root={tmp_path / 'data'}"]
    return config, landing, args


def test_a_driver_killed_mid_batch_and_restarted_labels_every_frame_exactly_once(spark, tmp_path):
    config, landing, args = subprocess_setup(tmp_path)
    paths = drop_frames(landing, "run1", 0, 10)
    data = tmp_path / "data"
    # killed while a batch's read tasks run (its images being staged, nothing of it committed)
    killed_when(start_stream(args, landing), lambda: (data / "images.staging").is_dir(), "a batch reading")
    # restarted, then killed again after a batch's ingest committed but before its labels were committed
    done = len(labelled_paths(config))
    manifest = data / "manifest"
    killed_when(start_stream(args, landing),
                lambda: manifest.is_dir() and len(list((data / "images").rglob("*.parquet"))) > 0
                and len(labelled_paths(config)) == done and not (data / "images.staging").is_dir(),
                "a batch between ingest and labels")
    more = drop_frames(landing, "run2", 10, 4)
    finish = start_stream(args, landing, "--available-now")
    assert finish.wait(timeout=600) == 0, finish.stderr.read()[-3000:]
    images, scored = counts(spark, config)
    assert len(images) == 14 and set(images.values()) == {1}, images
    assert scored == images
    assert sorted(set(labelled_paths(config))) == sorted(paths + more)


def executor_jvms(pid: int) -> list:
    """The executor JVMs of the local cluster a driver process started (its Python workers skipped)."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "CoarseGrainedExecutorBackend" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:                     # a worker that just exited
            pass
    return found


def test_an_executor_killed_mid_batch_leaves_every_frame_exactly_once(spark, tmp_path):
    config, landing, args = subprocess_setup(tmp_path)
    paths = drop_frames(landing, "run1", 0, 12)
    stream = start_stream(args, landing)
    try:
        wait_for(lambda: (tmp_path / "data" / "images.staging").is_dir() or stream.poll() is not None, 300,
                 "a batch reading")
        executors = executor_jvms(stream.pid)
        assert len(executors) == 2
        executors[0].kill()                                   # one executor JVM of the stream's local cluster
        wait_for(lambda: set(paths) <= set(labelled_paths(config)) or stream.poll() is not None, 600, "all frames")
        assert stream.poll() is None, stream.stderr.read()[-3000:]
    finally:
        stream.send_signal(signal.SIGTERM)
        stream.wait(timeout=120)
    images, scored = counts(spark, config)
    assert len(images) == 12 and set(images.values()) == {1} and scored == images
