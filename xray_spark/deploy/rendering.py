"""Every deployment recipe of a configuration: the renderers of each target, by name."""
from __future__ import annotations

from xray_spark.deploy.docker import render_docker
from xray_spark.deploy.targets import render_airflow, render_databricks, render_k8s, render_submit

TARGETS = {"submit": render_submit, "k8s": render_k8s, "databricks": render_databricks,
           "airflow": render_airflow, "docker": render_docker}


def render(config, conf_file: str, targets=tuple(TARGETS)) -> dict[str, str]:
    """``{path under deploy/: text}`` of ``targets``."""
    out = {}
    for target in targets:
        out.update(TARGETS[target](config, conf_file))
    return out
