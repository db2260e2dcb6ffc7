import subprocess
import sys

import yaml

from xray_spark.cli import main

CLI = [sys.executable, "-m", "xray_spark.cli"]


def run_cli(*args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)


def test_help_lists_jobs():
    out = run_cli("--help")
    assert out.returncode == 0
    assert "doctor" in out.stdout and "--set SECTION.KEY=VALUE" in out.stdout


def test_bad_configuration_exits_2_before_spark_starts():
    out = run_cli("--set", "spark.mastr=local", "doctor")
    assert out.returncode == 2
    assert "configuration error: unknown key 'spark.mastr'" in out.stderr
    out = run_cli("--conf", "nope.yaml", "config")
    assert out.returncode == 2 and "'nope.yaml' does not exist" in out.stderr


def test_unknown_job_is_refused():
    out = run_cli("frobnicate")
    assert out.returncode == 2 and "invalid choice: 'frobnicate'" in out.stderr


def test_config_prints_effective_configuration(capsys):
    assert main(["--set", "tables.image_size=128", "config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["tables"]["image_size"] == 128 and printed["version"] == 2


def test_doctor_passes_on_this_machine():
    """The whole stack, for real: Spark job, Petastorm round trip, Horovod allreduce."""
    out = run_cli("--set", "progress.console=never", "doctor")
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    for name in ("Python", "Java", "Spark", "Petastorm", "Horovod", "TensorFlow", "scikit-learn", "scikit-image"):
        assert any(line.startswith(name) and " OK " in line for line in out.stdout.splitlines()), name
    assert "checks passed" in out.stdout and "FAIL" not in out.stdout


def test_doctor_names_what_is_broken():
    out = run_cli("--set", "spark.master=nosuch://master", "--set", "spark.ui=false", "doctor")
    assert out.returncode == 1
    assert "FAIL" in out.stdout and "fix:" in out.stdout and "broken: Spark" in out.stdout
