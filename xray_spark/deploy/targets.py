"""Format the submissions of ``recipes.py`` for each scheduler: spark-submit scripts, a
spark-operator SparkApplication and ScheduledSparkApplication, the stream as a SparkApplication
that is always restarted and its live pages served read-only, a Databricks Asset Bundle (the stream
as a continuous job) and an Airflow DAG. Each function returns ``{path under deploy/: text}``;
rendering is deterministic.
"""
from __future__ import annotations

import os
import shlex

import yaml

from xray_spark.config import Config, ConfigError
from xray_spark.deploy.recipes import (
    NIGHT,
    Submission,
    app_name,
    quartz_cron,
    spark_conf,
    spark_submit_argv,
    submissions,
)

IMAGE_HOME = "/opt/xray_spark"  # project (jobs/, conf/) and its .venv inside the images (deploy/docker)
IMAGE_PYTHON = f"{IMAGE_HOME}/.venv/bin/python"
AIRFLOW_NIGHT = "{{ data_interval_end | ds }}"  # the date the run starts, as everywhere else
SUBMIT_NIGHT = "${NIGHT}"
DATABRICKS_NIGHT = "{{job.start_time.iso_date}}"


def header(conf_file: str, target: str, comment: str = "#") -> str:
    return (f"{comment} Rendered by `xray-spark deploy render --target {target} --conf {conf_file}`.\n"
            f"{comment} Do not edit: change {conf_file} and render again (tests check they agree).\n")


class _Dumper(yaml.SafeDumper):
    """Writes shared values out in full (no &anchors / *aliases): recipes are read by people."""

    def ignore_aliases(self, data):
        return True


def _yaml(data) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def _fill_night(args, value: str | None) -> list[str]:
    """``args`` with {night} replaced by the scheduler's date expression ``value``; a scheduler that
    cannot template dates (None) leaves out every ``--option {night}`` pair, so the job's own
    default (today, UTC) applies."""
    if value is not None:
        return [a.replace(NIGHT, value) for a in args]
    out = []
    for a in args:
        if NIGHT in a:
            if not (out and out[-1].startswith("--")):
                raise ConfigError(f"deploy arguments {list(args)!r}: {a!r} is not the value of an option, "
                                  f"so a scheduler without date templates cannot leave it out")
            out.pop()
            continue
        out.append(a)
    return out


# ---------------------------------------------------------------- spark-submit

def render_submit(config: Config, conf_file: str) -> dict[str, str]:
    """deploy/submit/<name>.sh: the spark-submit line of each submission (YARN, cluster mode)."""
    out = {}
    for sub in submissions(config, conf_file):
        argv = spark_submit_argv(config, sub)
        entry = argv.index(sub.entry_point)
        job = [f'"{a}"' if SUBMIT_NIGHT in a else shlex.quote(a) for a in _fill_night(argv[entry:], SUBMIT_NIGHT)]
        lines = ['"${SPARK_HOME:+$SPARK_HOME/bin/}spark-submit"']
        lines += [" ".join(shlex.quote(a) for a in argv[i:i + 2]) for i in range(1, entry, 2)]
        lines += [" ".join(job) + ' "$@"']
        out[f"submit/{sub.name}.sh"] = (
            "#!/usr/bin/env bash\n" + header(conf_file, "submit")
            + f"# {sub.name}: jobs/{sub.job}.py. Run from the project root; extra job arguments are appended.\n"
            + "# NIGHT=YYYY-MM-DD names the night a dated argument refers to (default: today, UTC).\n"
            + "set -euo pipefail\nNIGHT=${NIGHT:-$(date -u +%F)}\n"
            + "exec " + " \\\n  ".join(lines) + "\n")
    return out


# ---------------------------------------------------------------- Kubernetes (spark-operator)

def _inside(path: str, root: str) -> bool:
    return os.path.normpath(path) == os.path.normpath(root) or os.path.normpath(path).startswith(
        os.path.normpath(root).rstrip("/") + "/")


def _stream_storage(config: Config) -> tuple[str | None, str]:
    """(landing directory to mount from deploy.landing_claim or None, live pages below paths.root):
    the stream's checkpoint and pages must be on the tables claim, so a restarted driver finds them."""
    st, root = config.stream, config.paths.root
    landing = st.landing or config.ingest.archive
    if not landing.startswith("/"):
        raise ConfigError(f"stream.landing = {landing!r}: Kubernetes mounts a volume there, so it must be an "
                          f"absolute path")
    own_claim = not _inside(landing, config.ingest.archive)
    if own_claim and not config.deploy.landing_claim:
        raise ConfigError(f"stream.landing = {landing!r} is outside ingest.archive: set deploy.landing_claim "
                          f"to the PersistentVolumeClaim that holds it")
    for key, value in (("stream.checkpoint", st.checkpoint), ("stream.page_dir", st.page_dir)):
        if value and not _inside(value, root):
            raise ConfigError(f"{key} = {value!r}: on Kubernetes it must be under paths.root ({root!r}, the "
                              f"tables claim), shared storage a restarted driver finds again")
    pages = st.page_dir or str(config.paths.local("reports", "live"))
    if not _inside(pages, root):
        raise ConfigError(f"paths.reports = {config.paths.reports!r}: the live pages must be under paths.root "
                          f"({root!r}) on Kubernetes")
    return (landing if own_claim else None), os.path.relpath(pages, root)


def _k8s_spec(config: Config, sub: Submission, conf_file: str) -> dict:
    d, s = config.deploy, config.spark
    args = [f"{IMAGE_HOME}/{a}" if a == conf_file else a for a in _fill_night(sub.args, None)]
    mounts = [{"name": "archive", "mountPath": config.ingest.archive, "readOnly": True},
              {"name": "tables", "mountPath": config.paths.root}]
    volumes = [{"name": "archive", "persistentVolumeClaim": {"claimName": d.archive_claim, "readOnly": True}},
               {"name": "tables", "persistentVolumeClaim": {"claimName": d.tables_claim}}]
    restart = {"type": "OnFailure", "onFailureRetries": d.retries, "onFailureRetryInterval": d.retry_delay_min * 60,
               "onSubmissionFailureRetries": d.retries, "onSubmissionFailureRetryInterval": d.retry_delay_min * 60}
    if sub.long_running:  # a stream: started again from its checkpoint whenever it ends, until deleted
        landing, _ = _stream_storage(config)
        if landing:
            mounts.append({"name": "landing", "mountPath": landing, "readOnly": True})
            volumes.append({"name": "landing", "persistentVolumeClaim": {"claimName": d.landing_claim,
                                                                        "readOnly": True}})
        restart = {"type": "Always", "onFailureRetryInterval": d.stream_restart_s,
                   "onSubmissionFailureRetryInterval": d.stream_restart_s}
    pod = {"env": [{"name": "PYSPARK_PYTHON", "value": IMAGE_PYTHON}], "volumeMounts": mounts,
           "labels": {"app.kubernetes.io/name": "xray-spark", "xray-spark/job": sub.job}}
    return {
        "type": "Python",
        "pythonVersion": "3",
        "mode": "cluster",
        "image": d.gpu_image if sub.gpu else d.image,
        "imagePullPolicy": "IfNotPresent",
        "mainApplicationFile": f"local://{IMAGE_HOME}/{sub.entry_point}",
        "arguments": args,
        "sparkVersion": d.spark_image.split(":")[1].split("-")[0],
        "sparkConf": {"spark.pyspark.python": IMAGE_PYTHON, **spark_conf(config)},
        "restartPolicy": restart,
        "volumes": volumes,
        "driver": {"cores": 1, "memory": s.driver_memory, "serviceAccount": d.service_account, **pod},
        "executor": {"cores": s.executor_cores, "instances": d.executor_instances, "memory": s.executor_memory, **pod},
    }


def _live_page_server(config: Config, pages: str) -> dict:
    """A static web server (Deployment + Service) of the live pages, read-only from the tables claim."""
    d = config.deploy
    name = f"{config.spark.app_name}-live-page".replace("_", "-")
    labels = {"app.kubernetes.io/name": name}
    pod = {"containers": [{"name": "web", "image": d.live_page_image, "ports": [{"containerPort": 80}],
                           "volumeMounts": [{"name": "pages", "mountPath": "/usr/share/nginx/html",
                                             "subPath": pages, "readOnly": True}]}],
           "volumes": [{"name": "pages", "persistentVolumeClaim": {"claimName": d.tables_claim, "readOnly": True}}]}
    meta = {"name": name, "namespace": d.namespace, "labels": labels}
    return {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": pod}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": 80}]}}]}


def render_k8s(config: Config, conf_file: str) -> dict[str, str]:
    """deploy/k8s/: a SparkApplication (one-off job), a ScheduledSparkApplication (nightly), the
    stream's SparkApplication and the web server of its live pages."""
    subs = {s.name: s for s in submissions(config, conf_file)}
    d = config.deploy
    for key, value in (("paths.root", config.paths.root), ("ingest.archive", config.ingest.archive)):
        if not value.startswith("/"):
            raise ConfigError(f"{key} = {value!r}: Kubernetes mounts a volume there, so it must be an absolute path")
    meta = lambda sub: {"name": app_name(config, sub).replace("_", "-"), "namespace": d.namespace}  # noqa: E731
    oneoff = {"apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication",
              "metadata": meta(subs["oneoff"]), "spec": _k8s_spec(config, subs["oneoff"], conf_file)}
    nightly = {"apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "ScheduledSparkApplication",
               "metadata": meta(subs["nightly"]),
               "spec": {"schedule": d.schedule, "concurrencyPolicy": "Forbid",
                        "successfulRunHistoryLimit": 3, "failedRunHistoryLimit": 7,
                        "template": _k8s_spec(config, subs["nightly"], conf_file)}}
    stream = {"apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication",
              "metadata": meta(subs["stream"]), "spec": _k8s_spec(config, subs["stream"], conf_file)}
    _, pages = _stream_storage(config)
    return {"k8s/oneoff.yaml": header(conf_file, "k8s") + _yaml(oneoff),
            "k8s/nightly.yaml": header(conf_file, "k8s") + _yaml(nightly),
            "k8s/stream.yaml": header(conf_file, "k8s") + _yaml(stream),
            "k8s/live-page.yaml": header(conf_file, "k8s") + _yaml(_live_page_server(config, pages))}


# ---------------------------------------------------------------- Databricks Asset Bundle

def _databricks_task(config: Config, sub: Submission, conf_file: str, cluster: str) -> dict:
    args = [f"${{workspace.file_path}}/{a}" if a == conf_file else a
            for a in _fill_night(sub.args, DATABRICKS_NIGHT)]
    task = {"task_key": sub.name, "job_cluster_key": cluster,
            "spark_python_task": {"python_file": f"../../{sub.entry_point}", "parameters": args},
            "libraries": [{"whl": "../../dist/*.whl"}]}
    if sub.long_running:  # continuous jobs take no retry policy: Databricks restarts them with back-off
        return task
    return {**task, "max_retries": config.deploy.retries,
            "min_retry_interval_millis": config.deploy.retry_delay_min * 60_000}


def render_databricks(config: Config, conf_file: str) -> dict[str, str]:
    """deploy/databricks/databricks.yml: nightly job, GPU training job, the stream as a continuous
    job (one run at a time, started again when it ends), the notebooks."""
    subs = {s.name: s for s in submissions(config, conf_file)}
    d = config.deploy
    cluster = lambda key, version, node: {"job_cluster_key": key,  # noqa: E731
                                          "new_cluster": {"spark_version": version, "node_type_id": node,
                                                          "num_workers": d.databricks_workers,
                                                          "spark_conf": spark_conf(config)}}
    cpu = cluster("cpu", d.databricks_spark_version, d.databricks_node_type)
    gpu = cluster("gpu", d.databricks_gpu_spark_version, d.databricks_gpu_node_type)
    bundle = {
        "bundle": {"name": config.spark.app_name},
        "sync": {"paths": ["../../jobs", "../../conf", "../../notebooks"]},
        "artifacts": {"wheel": {"type": "whl", "path": "../..",
                                "build": "python -m pip wheel --no-deps --no-build-isolation -w dist ."}},
        "resources": {"jobs": {
            f"{config.spark.app_name}_nightly": {
                "name": app_name(config, subs["nightly"]),
                "schedule": {"quartz_cron_expression": quartz_cron(d.schedule), "timezone_id": "UTC",
                             "pause_status": "UNPAUSED"},
                "max_concurrent_runs": 1,
                "job_clusters": [cpu],
                "tasks": [_databricks_task(config, subs["nightly"], conf_file, "cpu")]},
            f"{config.spark.app_name}_training": {
                "name": app_name(config, subs["training"]),
                "max_concurrent_runs": 1,
                "job_clusters": [gpu],
                "tasks": [_databricks_task(config, subs["training"], conf_file, "gpu")]},
            f"{config.spark.app_name}_stream": {
                "name": app_name(config, subs["stream"]),
                "continuous": {"pause_status": "UNPAUSED"},
                "job_clusters": [cpu],
                "tasks": [_databricks_task(config, subs["stream"], conf_file, "cpu")]},
            # 02 trains and writes what 01 explores; 03 is interactive (a new archive, a review): synced only
            f"{config.spark.app_name}_notebooks": {
                "name": f"{config.spark.app_name}-notebooks",
                "job_clusters": [cpu],
                "tasks": [{"task_key": name, "job_cluster_key": "cpu",
                           "notebook_task": {"notebook_path": f"../../notebooks/{name}.ipynb"},
                           "libraries": [{"whl": "../../dist/*.whl"}], **after}
                          for name, after in (("02_train_and_evaluate", {}),
                                              ("01_explore_beamtime",
                                               {"depends_on": [{"task_key": "02_train_and_evaluate"}]}))]},
        }},
        "targets": {"production": {"mode": "production", "default": True}},
    }
    return {"databricks/databricks.yml": header(conf_file, "databricks") + _yaml(bundle)}


# ---------------------------------------------------------------- Airflow

AIRFLOW_DAG = '''"""Nightly reprocessing of the beamtime archive with SparkSubmitOperator (Airflow 2.x,
apache-airflow-providers-apache-spark). The Spark connection `spark_default` names the master
(YARN); the packed environment (make dist) is shipped with --archives, the configuration with
--files. XRAY_SPARK_HOME is the project checkout on the Airflow workers (jobs/, conf/).
Rerun a failed night: clear its task in the Airflow UI, or
`airflow tasks clear {dag_id} --start-date DATE --end-date DATE`.
"""
import os
from datetime import datetime, timedelta

from airflow import DAG
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

PROJECT = os.environ.get("XRAY_SPARK_HOME", {project!r})

with DAG(
    dag_id={dag_id!r},
    schedule={schedule!r},
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={{"retries": {retries!r}, "retry_delay": timedelta(minutes={retry_delay!r})}},
    tags=["xray_spark"],
) as dag:
    {task} = SparkSubmitOperator(
        task_id={task!r},
        conn_id="spark_default",
        deploy_mode={deploy_mode!r},
        name={name!r},
        archives={archives!r},
        files=f"{{PROJECT}}/{files}",
        conf={conf!r},
        driver_memory={driver_memory!r},
        application=f"{{PROJECT}}/{application}",
        application_args={application_args!r},
    )
'''


def render_airflow(config: Config, conf_file: str) -> dict[str, str]:
    """deploy/airflow/<app>_nightly.py: the nightly spark-submit line as a DAG, retried, dated by the run."""
    sub = next(s for s in submissions(config, conf_file) if s.name == "nightly")
    argv = spark_submit_argv(config, sub)
    option = lambda flag: [argv[i + 1] for i in range(argv.index(sub.entry_point)) if argv[i] == flag]  # noqa: E731
    dag_id = f"{config.spark.app_name}_nightly"
    text = AIRFLOW_DAG.format(
        project=IMAGE_HOME, dag_id=dag_id, schedule=config.deploy.schedule, retries=config.deploy.retries,
        retry_delay=config.deploy.retry_delay_min, task=sub.name, deploy_mode=option("--deploy-mode")[0],
        name=f"{app_name(config, sub)}-{AIRFLOW_NIGHT}", archives=option("--archives")[0], files=option("--files")[0],
        conf=dict(c.split("=", 1) for c in option("--conf")), driver_memory=option("--driver-memory")[0],
        application=sub.entry_point,
        application_args=_fill_night(argv[argv.index(sub.entry_point) + 1:], AIRFLOW_NIGHT))
    return {f"airflow/{dag_id}.py": header(conf_file, "airflow") + text}
