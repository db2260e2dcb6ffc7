"""Expert labels: a CSV of (path or image_id, tags) joined into the images table at ingest.

Columns: ``path`` (relative to the archive root, ``beamtime/run/file``; ``#N`` appended names
frame N only, else every frame of the file) or ``image_id``, and ``tags``: vocabulary names
separated by ``;`` (an empty cell means "labelled, no tag applies"). Unknown tag names fail the
whole file before anything is read, each with its line and the closest vocabulary names: a label
is never silently dropped.
"""
from __future__ import annotations

import csv

from xray_spark import tags as tagmod


class LabelsError(ValueError):
    """A labels CSV that cannot be used: names the file, the line and the value."""


def read_labels(path: str) -> dict[str, list[str]]:
    """``{image_id or path or path#frame: [tag names]}`` from the CSV at ``path``."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise LabelsError(f"labels file {path!r}: {e}") from None
    labels, problems = {}, []
    for line, row in enumerate(rows, start=2):
        key = (row.get("image_id") or row.get("path") or "").strip()
        if not key or "tags" not in row:
            raise LabelsError(f"{path}:{line}: each row needs a path or image_id and a tags column "
                              f"(columns found: {', '.join(row)})")
        names = [n.strip() for n in (row["tags"] or "").split(";") if n.strip()]
        known = set(tagmod.names())
        for name in names:
            if name not in known:
                closest = ", ".join(map(repr, tagmod.closest(name))) or "none"
                problems.append(f"line {line}: {name!r} (closest: {closest})")
        labels[key] = names
    if problems:
        raise LabelsError(f"{path}: unknown tag name(s): " + "; ".join(problems))
    return labels
