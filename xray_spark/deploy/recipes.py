"""The one source of truth of every deployment: which job runs, with which arguments and which
Spark settings. The targets (``targets.py``, ``docker.py``) only format what is built here, so a
command line cannot differ between Kubernetes, Databricks, Airflow and plain spark-submit.

Four submissions: a one-off job (``deploy.oneoff_job``), the nightly reprocessing
(``deploy.nightly_job`` on ``deploy.schedule``), the GPU training (``deploy.training_job``) and the
stream that labels frames while a beamtime runs (``deploy.stream_job``), long-running: restarted
from its checkpoint when it fails, never scheduled.
Every job runs as ``jobs/<job>.py --conf <configuration file> <arguments>``: sizes, paths and
Spark settings other than those needed before the JVM starts come from that file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from xray_spark.config import Config, ConfigError

ROOT = Path(__file__).resolve().parents[2]
NIGHT = "{night}"  # the night's date, YYYY-MM-DD, filled in by each scheduler
ENVIRONMENT = "environment"  # directory the packed environment is unpacked to (--archives ...#environment)
EXECUTOR_PYTHON = f"./{ENVIRONMENT}/bin/python"


@dataclass(frozen=True)
class Submission:
    """One job as the schedulers run it."""
    name: str                 # oneoff | nightly | training | stream
    job: str                  # CLI job name, jobs/<job>.py
    args: tuple[str, ...]     # after the entry point, starting with --conf <file>
    schedule: str | None      # 5-field cron (UTC) of scheduled submissions
    gpu: bool
    long_running: bool = False  # runs until stopped; restarted when it fails

    @property
    def entry_point(self) -> str:
        return f"jobs/{self.job}.py"


def check_cron(expression: str, key: str = "deploy.schedule") -> list[str]:
    """The five fields of a cron expression, or a ConfigError naming ``key``."""
    fields = expression.split()
    if len(fields) != 5 or not all(re.fullmatch(r"[\d*/,\-]+", f) for f in fields):
        raise ConfigError(f"{key} = {expression!r}: expected a 5-field cron expression "
                          f"'minute hour day-of-month month day-of-week', e.g. '0 2 * * *'")
    return fields


def quartz_cron(expression: str) -> str:
    """Databricks (Quartz) form of a 5-field cron: seconds first, '?' for the unused day field,
    days of week 1-7 from Sunday instead of 0-6."""
    minute, hour, dom, month, dow = check_cron(expression)
    if dow == "*":
        dow = "?"
    else:
        dow = re.sub(r"\d+", lambda m: str(int(m.group()) % 7 + 1), dow)
        dom = "?" if dom == "*" else dom
    return f"0 {minute} {hour} {dom} {month} {dow}"


def _check_job(key: str, job: str) -> None:
    from xray_spark.cli import JOBS

    if job not in JOBS or not (ROOT / f"jobs/{job}.py").is_file():
        known = sorted(j for j in JOBS if (ROOT / f"jobs/{j}.py").is_file())
        raise ConfigError(f"{key} = {job!r}: no such job with a jobs/{job}.py entry point; known: {', '.join(known)}")


def submissions(config: Config, conf_file: str) -> list[Submission]:
    """The four submissions of ``config.deploy``; ``conf_file`` is the configuration they run with."""
    d = config.deploy
    if not conf_file or Path(conf_file).is_absolute() or not (ROOT / conf_file).is_file():
        raise ConfigError(f"--conf {conf_file!r}: recipes need a configuration file inside the project "
                          f"(relative path, e.g. conf/cluster.yaml), as it is shipped with the jobs")
    check_cron(d.schedule)
    for key in ("oneoff_job", "nightly_job", "training_job", "stream_job"):
        _check_job(f"deploy.{key}", getattr(d, key))
    conf = ("--conf", conf_file)
    return [
        Submission("oneoff", d.oneoff_job, conf + tuple(d.oneoff_args), None, False),
        Submission("nightly", d.nightly_job, conf + tuple(d.nightly_args), d.schedule, False),
        Submission("training", d.training_job, conf + tuple(d.training_args), None, True),
        Submission("stream", d.stream_job, conf + tuple(d.stream_args), None, False, long_running=True),
    ]


def app_name(config: Config, sub: Submission) -> str:
    return f"{config.spark.app_name}-{sub.name}"


def spark_submit_argv(config: Config, sub: Submission) -> list[str]:
    """The spark-submit line of ``sub`` on YARN, in cluster mode, from the project root: the packed
    environment (make dist) is unpacked next to driver and executors as ./environment, and the
    configuration file is shipped with --files, so the job reads it from its working directory.
    YARN restarts a long-running submission's driver when it fails, up to ``deploy.retries`` times
    an hour; it resumes from its checkpoint."""
    conf_file = sub.args[1]
    restart = (["--conf", f"spark.yarn.maxAppAttempts={config.deploy.retries + 1}",
                "--conf", "spark.yarn.am.attemptFailuresValidityInterval=1h"] if sub.long_running else [])
    return ["spark-submit",
            "--master", config.spark.master,
            "--deploy-mode", "cluster",
            "--name", app_name(config, sub),
            "--archives", f"{config.deploy.env_archive}#{ENVIRONMENT}",
            "--files", conf_file,
            "--conf", f"spark.pyspark.python={EXECUTOR_PYTHON}",
            "--conf", f"spark.executor.instances={config.deploy.executor_instances}",
            *restart,
            "--driver-memory", config.spark.driver_memory,
            sub.entry_point, "--conf", Path(conf_file).name, *sub.args[2:]]


def spark_conf(config: Config) -> dict[str, str]:
    """Spark settings the cluster-side recipes (Kubernetes, Databricks) declare themselves."""
    return dict(config.spark.options)
