"""`make dist` and the packed environment: the rendered spark-submit line (deploy/submit/oneoff.sh),
with local paths and a small cluster substituted, runs a job from jobs/ on local-cluster with the
executors' Python taken from the packed archive, and writes its table."""
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_deploy import submit_line

ROOT = Path(__file__).resolve().parents[1]
SPARK_SUBMIT = ROOT / ".venv/lib/python3.11/site-packages/pyspark/bin/spark-submit"
# local-cluster's workers keep their executors' directories in SPARK_HOME/work, whatever SPARK_WORKER_DIR says.
WORKER_DIR = SPARK_SUBMIT.parents[1] / "work"


@pytest.fixture(scope="session")
def dist():
    """`make dist` (incremental: the environment is rebuilt only when the pins change)."""
    out = subprocess.run(["make", "-s", "dist"], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return ROOT / "dist"


def test_dist_holds_the_wheel_and_the_packed_environment(dist):
    wheel, = dist.glob("xray_spark-*-py3-none-any.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "xray_spark/data/tags.csv" in names and "xray_spark/cli.py" in names
    assert not any(n.startswith(("tests/", "jobs/")) for n in names)
    # The environment packed: the wheel itself, not an editable link to this checkout.
    site = dist / "env/lib/python3.11/site-packages"
    assert (site / "xray_spark/cli.py").is_file() and not list(site.glob("__editable__*"))
    assert (dist / "xray_spark-env.tar.gz").stat().st_size > 100e6


@pytest.fixture
def executor_directories():
    """The executor directories the test's application leaves, removed after it: each holds a 2.6 GB
    unpacked environment, and a disk filled by earlier runs leaves the executors unable to start."""
    before = set(WORKER_DIR.glob("app-*"))
    new = lambda: sorted(set(WORKER_DIR.glob("app-*")) - before)  # noqa: E731
    yield new
    for directory in new():
        shutil.rmtree(directory, ignore_errors=True)


def test_rendered_spark_submit_line_runs_with_the_packed_environment(dist, tmp_path, executor_directories):
    argv = submit_line((ROOT / "deploy/submit/oneoff.sh").read_text())
    entry = next(i for i, a in enumerate(argv) if a.endswith(".py"))
    assert argv[-1] == "$@" and argv[entry] == "jobs/generate.py"
    local = {"--master": "local-cluster[2,1,1024]",
             "--deploy-mode": "client",  # a local cluster runs the driver here, not in a container
             "--archives": f"{dist / 'xray_spark-env.tar.gz'}#environment",
             "--files": str(ROOT / "conf/cluster.yaml"),
             "--driver-memory": "1g"}
    options = argv[1:entry]
    assert set(local) <= set(options[::2])
    options = [local.get(options[i - 1], a) if i % 2 else a for i, a in enumerate(options)]
    # In client mode the driver runs on this machine: the same environment, unpacked by make dist.
    options += ["--conf", f"spark.pyspark.driver.python={dist / 'env/bin/python'}"]
    small = ["--set", "spark.executor_memory=640m", "--set", "spark.executor_cores=1", "--set", "spark.options={}",
             "--set", "spark.shuffle_partitions=4", "--set", "spark.ui=false", "--set", "progress.console=never",
             "--set", f"paths.root={tmp_path}", "--n", "8", "--output", str(tmp_path / "images")]
    command = [str(SPARK_SUBMIT), *options, str(ROOT / argv[entry]), *argv[entry + 1:-1], *small]
    shutil.copy(ROOT / "conf/cluster.yaml", tmp_path)  # --files puts it in the driver's directory on YARN
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK", "PYTHON", "VIRTUAL_ENV", "SPARK"))}
    env.update(SPARK_LOCAL_IP="127.0.0.1", XRAY_DATA=str(tmp_path))
    try:
        out = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        logs = [f"{log}:\n{log.read_text()[-2000:]}" for d in executor_directories() for log in d.glob("*/stderr")]
        pytest.fail("spark-submit still running after 600 s; the executors' logs:\n" + "\n".join(logs))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    assert "./environment/bin/python" in " ".join(command)
    table = pq.read_table(tmp_path / "images", columns=["image_id", "height", "width"])
    assert table.num_rows == 8 and len(set(table.column("image_id").to_pylist())) == 8
    assert set(table.column("height").to_pylist()) == {256}
