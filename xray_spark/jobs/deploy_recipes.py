"""`xray-spark deploy render|check --target T --conf conf/cluster.yaml`: write the recipes of a
target under deploy/ (render), or fail when the committed ones differ from a fresh rendering (check).
"""
from __future__ import annotations

import argparse
import difflib
from pathlib import Path

from xray_spark.config import ConfigError
from xray_spark.deploy.recipes import ROOT
from xray_spark.deploy.rendering import TARGETS, render
from xray_spark.jobs import JobError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["render", "check"],
                        help="render: write the files; check: exit 1 when the written files differ")
    parser.add_argument("--target", choices=[*TARGETS, "all"], default="all", help="recipes to render (default: all)")
    parser.add_argument("--out", metavar="DIR", default=str(ROOT / "deploy"), help="output directory (default: deploy/)")


def run(config, args) -> int:
    conf_file = args.job_conf or args.conf
    if conf_file is None:
        raise JobError("--conf FILE is required (the configuration the jobs will run with, "
                       "e.g. --conf conf/cluster.yaml)")
    targets = tuple(TARGETS) if args.target == "all" else (args.target,)
    try:
        files = render(config, conf_file, targets)
    except ConfigError as e:
        raise JobError(f"configuration error: {e}") from None
    out = Path(args.out)
    stale = []
    for name, text in files.items():
        path = out / name
        current = path.read_text() if path.is_file() else ""
        if args.action == "check":
            if current != text:
                stale.append(name)
                print("".join(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                   f"{path} (committed)", f"{path} (rendered)")))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if name.endswith(".sh"):
            path.chmod(0o755)
        print(f"wrote {path}")
    if stale:
        print(f"deploy: {len(stale)} file(s) differ from a fresh rendering: {', '.join(stale)}; "
              f"run `xray-spark deploy render --conf {conf_file}`")
        return 1
    return 0
