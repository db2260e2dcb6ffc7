"""Deployment recipes: the committed deploy/ files are a fresh rendering of conf/cluster.yaml, every
target runs the same command lines, and what they name exists."""
import ast
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from xray_spark.config import ConfigError, load_config
from xray_spark.deploy.docker import pins
from xray_spark.deploy.recipes import quartz_cron, submissions
from xray_spark.deploy.rendering import TARGETS, render
from xray_spark.deploy.targets import AIRFLOW_NIGHT, DATABRICKS_NIGHT, SUBMIT_NIGHT

ROOT = Path(__file__).resolve().parents[1]
CONF = "conf/cluster.yaml"


@pytest.fixture
def cluster(monkeypatch):
    """conf/cluster.yaml as rendered for the committed examples: no site environment variables."""
    for name in ("SPARK_MASTER", "XRAY_DATA", "XRAY_ARCHIVE", "HOROVOD_NIC"):
        monkeypatch.delenv(name, raising=False)
    return load_config(ROOT / CONF)


def test_committed_recipes_are_a_fresh_rendering(cluster):
    files = render(cluster, CONF)
    assert render(cluster, CONF) == files  # deterministic
    for name, text in files.items():
        assert (ROOT / "deploy" / name).read_text() == text, f"deploy/{name} is stale: xray-spark deploy render --conf {CONF}"
    committed = {str(p.relative_to(ROOT / "deploy")) for d in {n.split("/")[0] for n in files}
                 for p in (ROOT / "deploy" / d).iterdir()}
    assert committed == set(files), "deploy/ holds files no target renders"


def submit_line(text: str) -> list[str]:
    """argv of the spark-submit script's exec line, $NIGHT and "$@" kept as written."""
    command = text.split("\nexec ", 1)[1].replace("\\\n", " ")
    return shlex.split(command)


def normalise(entry: str, args, night: str) -> tuple:
    """(jobs/<job>.py, arguments) with the configuration file by its name and the night as {night}."""
    entry = "jobs/" + entry.split("/jobs/")[-1].removeprefix("jobs/")
    args = [Path(a).name if a.endswith(".yaml") else a.replace(night, "{night}") if night else a for a in args]
    return entry, args


def recipes(cluster) -> dict[tuple[str, str], tuple]:
    """(target, submission) -> normalised command line, read back from the rendered files."""
    files = render(cluster, CONF)
    out = {}
    for name in ("oneoff", "nightly", "training", "stream"):
        argv = submit_line(files[f"submit/{name}.sh"])
        entry = next(i for i, a in enumerate(argv) if a.endswith(".py"))
        assert argv[-1] == "$@"
        out["submit", name] = normalise(argv[entry], argv[entry + 1:-1], SUBMIT_NIGHT)
    for name in ("oneoff", "nightly", "stream"):
        doc = yaml.safe_load(files[f"k8s/{name}.yaml"])
        spec = doc["spec"].get("template", doc["spec"])
        out["k8s", name] = normalise(spec["mainApplicationFile"], spec["arguments"], "")
    bundle = yaml.safe_load(files["databricks/databricks.yml"])["resources"]["jobs"]
    for name in ("nightly", "training", "stream"):
        task = bundle[f"xray_spark_{name}"]["tasks"][0]["spark_python_task"]
        out["databricks", name] = normalise(task["python_file"], task["parameters"], DATABRICKS_NIGHT)
    call = next(n for n in ast.walk(ast.parse(files["airflow/xray_spark_nightly.py"]))
                if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "SparkSubmitOperator")
    kw = {k.arg: k.value for k in call.keywords}
    application = "".join(v.value for v in kw["application"].values if isinstance(v, ast.Constant))
    out["airflow", "nightly"] = normalise(application, ast.literal_eval(kw["application_args"]), AIRFLOW_NIGHT)
    return out


def test_every_target_runs_the_same_command_lines(cluster):
    expected = {s.name: (s.entry_point, [Path(a).name if a == CONF else a for a in s.args])
                for s in submissions(cluster, CONF)}
    found = recipes(cluster)
    assert {name for _, name in found} == set(expected)
    for (target, name), line in found.items():
        entry, args = expected[name]
        if target == "k8s":  # no date templates: the job's own default night (today, UTC) applies
            args = [a for i, a in enumerate(args) if "{night}" not in a and "{night}" not in args[i + 1:i + 2]]
        assert line == (entry, args), (target, name)
    assert found["submit", "nightly"][1][-2:] == ["--night", "{night}"]


def test_recipes_name_files_that_exist(cluster):
    files = render(cluster, CONF)
    for (target, name), (entry, args) in recipes(cluster).items():
        assert (ROOT / entry).is_file(), (target, entry)
        assert "cluster.yaml" in args
    bundle = yaml.safe_load(files["databricks/databricks.yml"])
    for path in bundle["sync"]["paths"]:
        assert (ROOT / "deploy/databricks" / path).resolve().is_dir(), path
    notebooks = [t["notebook_task"]["notebook_path"] for t in
                 bundle["resources"]["jobs"]["xray_spark_notebooks"]["tasks"]]
    assert [Path(p).stem for p in notebooks] == ["02_train_and_evaluate", "01_explore_beamtime"]
    for path in notebooks:
        assert (ROOT / "deploy/databricks" / path).resolve().is_file(), path
    for dockerfile in ("docker/Dockerfile", "docker/Dockerfile.gpu"):
        for line in files[dockerfile].splitlines():
            if line.startswith("COPY ") and "--from" not in line:
                for source in line.split()[1:-1]:
                    assert (ROOT / source).exists(), (dockerfile, source)


def test_rendered_files_are_valid_yaml_python_and_shell(cluster):
    files = render(cluster, CONF)
    for name, text in files.items():
        if name.endswith((".yaml", ".yml")):
            assert isinstance(yaml.safe_load(text), dict), name
        elif name.endswith(".py"):
            compile(text, name, "exec")
        elif name.endswith(".sh"):
            subprocess.run(["bash", "-n"], input=text, text=True, check=True)
    nightly = yaml.safe_load(files["k8s/nightly.yaml"])
    spec = nightly["spec"]
    assert nightly["kind"] == "ScheduledSparkApplication"
    assert (spec["schedule"], spec["concurrencyPolicy"]) == (cluster.deploy.schedule, "Forbid")
    template = spec["template"]
    assert template["restartPolicy"]["type"] == "OnFailure"
    assert template["restartPolicy"]["onFailureRetries"] == cluster.deploy.retries
    assert template["executor"]["memory"] == cluster.spark.executor_memory
    assert template["executor"]["instances"] == cluster.deploy.executor_instances
    mounts = {m["mountPath"] for m in template["executor"]["volumeMounts"]}
    assert mounts == {cluster.ingest.archive, cluster.paths.root}
    assert yaml.safe_load(files["k8s/oneoff.yaml"])["kind"] == "SparkApplication"


def test_stream_runs_long_restarts_from_shared_storage_and_serves_its_page(cluster):
    """The stream: restarted whenever it fails (Kubernetes Always, YARN attempts, a continuous
    Databricks job), its checkpoint and live pages on the tables claim, the pages served read-only."""
    files = render(cluster, CONF)
    app = yaml.safe_load(files["k8s/stream.yaml"])
    spec = app["spec"]
    assert app["kind"] == "SparkApplication" and spec["mainApplicationFile"].endswith("/jobs/stream.py")
    assert spec["restartPolicy"] == {"type": "Always", "onFailureRetryInterval": cluster.deploy.stream_restart_s,
                                     "onSubmissionFailureRetryInterval": cluster.deploy.stream_restart_s}
    claims = {v["name"]: v["persistentVolumeClaim"] for v in spec["volumes"]}
    assert claims["tables"] == {"claimName": cluster.deploy.tables_claim}  # writable: checkpoint, pages
    for pod in (spec["driver"], spec["executor"]):
        mounts = {m["mountPath"]: m for m in pod["volumeMounts"]}
        assert mounts[cluster.paths.root]["name"] == "tables" and not mounts[cluster.paths.root].get("readOnly")
        assert mounts[cluster.ingest.archive]["readOnly"] is True  # stream.landing "" = the archive
    assert cluster.paths.checkpoint("stream").startswith("file://" + cluster.paths.root + "/")
    server = {item["kind"]: item for item in yaml.safe_load(files["k8s/live-page.yaml"])["items"]}
    pod = server["Deployment"]["spec"]["template"]["spec"]
    mount = pod["containers"][0]["volumeMounts"][0]
    assert Path(cluster.paths.root, mount["subPath"]) == cluster.paths.local("reports", "live")
    assert mount["readOnly"] and pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == cluster.deploy.tables_claim
    assert server["Service"]["spec"]["selector"] == server["Deployment"]["spec"]["selector"]["matchLabels"]
    job = yaml.safe_load(files["databricks/databricks.yml"])["resources"]["jobs"]["xray_spark_stream"]
    assert job["continuous"] == {"pause_status": "UNPAUSED"} and "schedule" not in job
    assert "max_retries" not in job["tasks"][0]  # continuous jobs back off by themselves, retries are refused
    argv = submit_line(files["submit/stream.sh"])
    assert f"spark.yarn.maxAppAttempts={cluster.deploy.retries + 1}" in argv
    assert "spark.yarn.maxAppAttempts" not in files["submit/nightly.sh"]


def test_stream_landing_outside_the_archive_gets_its_own_claim(cluster):
    landing = "/mnt/detectors/landing"
    config = load_config(ROOT / CONF, [f"stream.landing={landing}", "deploy.landing_claim=detector-landing"])
    spec = yaml.safe_load(TARGETS["k8s"](config, CONF)["k8s/stream.yaml"])["spec"]
    assert {"name": "landing", "mountPath": landing, "readOnly": True} in spec["driver"]["volumeMounts"]
    claim = {"claimName": "detector-landing", "readOnly": True}
    assert {"name": "landing", "persistentVolumeClaim": claim} in spec["volumes"]


def test_images_pin_the_versions_of_constraints(cluster):
    files = render(cluster, CONF)
    p = pins()
    cpu, gpu = files["docker/Dockerfile"], files["docker/Dockerfile.gpu"]
    for text in (cpu, gpu):
        assert f"FROM {cluster.deploy.spark_image} AS spark" in text
        assert f"horovod {p['horovod']}" in text.lower() or f"horovod[spark]=={p['horovod']}" in text
        assert "USER 185" in text and "/opt/entrypoint.sh" in text
    assert "python:3.11" in cpu and "make venv" in cpu
    assert "HOROVOD_GPU_OPERATIONS=NCCL" in gpu and "tensorflow[and-cuda]==" in gpu and "nccl_built()" in gpu
    assert cluster.deploy.spark_image.split(":")[1].startswith(p["pyspark"] + "-")
    readme = files["docker/README.md"]
    assert f"docker build -f deploy/docker/Dockerfile -t {cluster.deploy.image} ." in readme


def test_quartz_cron_of_databricks():
    assert quartz_cron("0 2 * * *") == "0 0 2 * * ?"
    assert quartz_cron("30 1 * * 0,6") == "0 30 1 ? * 1,7"
    assert quartz_cron("0 3 1 * *") == "0 0 3 1 * ?"


@pytest.mark.parametrize("override, target, fragment", [
    ("deploy.schedule=nightly", "k8s", "deploy.schedule = 'nightly': expected a 5-field cron"),
    ("deploy.nightly_job=nigthly", "airflow", "deploy.nightly_job = 'nigthly': no such job"),
    ("deploy.spark_image=apache/spark:3.4.1-scala2.12-java17-ubuntu", "docker",
     "deploy.spark_image = 'apache/spark:3.4.1-scala2.12-java17-ubuntu': its Spark version must be the pinned pyspark"),
    ("paths.root=data", "k8s", "paths.root = 'data': Kubernetes mounts a volume there"),
    ("deploy.nightly_args=['{night}']", "k8s", "'{night}' is not the value of an option"),
    ("deploy.stream_job=straem", "submit", "deploy.stream_job = 'straem': no such job"),
    ("stream.checkpoint=/tmp/checkpoint", "k8s",
     "stream.checkpoint = '/tmp/checkpoint': on Kubernetes it must be under paths.root"),
    ("stream.landing=/mnt/detectors/landing", "k8s", "is outside ingest.archive: set deploy.landing_claim"),
])
def test_bad_values_fail_naming_the_key(cluster, override, target, fragment):
    config = load_config(ROOT / CONF, [override])
    with pytest.raises(ConfigError) as err:
        TARGETS[target](config, CONF)
    assert fragment in str(err.value)


def test_cli_check_reports_drift(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    cli = [sys.executable, "-m", "xray_spark.cli", "deploy"]
    out = subprocess.run([*cli, "check", "--conf", CONF], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    out = subprocess.run([*cli, "check", "--conf", CONF, "--set", "deploy.retries=5", "--target", "k8s"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "onFailureRetries: 5" in out.stdout and "k8s/nightly.yaml" in out.stdout
    outside = tmp_path / "site.yaml"
    outside.write_text("version: 2\n")
    out = subprocess.run([*cli, "render", "--conf", str(outside)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "recipes need a configuration file inside the project" in out.stderr
