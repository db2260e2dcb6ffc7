"""`xray-spark config`: print the effective configuration (defaults, file, --set) as YAML."""
from __future__ import annotations

import yaml

from xray_spark.config import to_dict


def add_arguments(parser) -> None:
    """`config` takes no arguments of its own."""


def run(config, args) -> int:
    print(yaml.safe_dump(to_dict(config), sort_keys=False), end="")
    return 0
