"""Archive discovery: the driver lists detector files (paths, sizes, mtimes); it reads no images.

An archive is ``<root>/<beamtime>/<run>/...files``. Files named by ``ingest.ignore`` (sidecars,
notes) and the user mask files that sidecars name are not input files. Every other file is listed,
and some are refused right away, without being opened, with a reason for the quarantine table:

- ``symlink_refused``: a symbolic link (file or directory). Links are never followed, so nothing
  outside the archive root can be read through one.
- ``outside_archive``: an explicitly requested path that does not resolve inside the root.
- ``outside_layout``: a file not under ``<beamtime>/<run>/``.
- ``bad_sidecar``: a file of a run whose sidecar is invalid (the message names the field).
- ``unsettled``: a file modified less than ``ingest.settle_s`` ago or growing while listed (a frame
  still being written): not read and not recorded at all, so the next run picks it up.

An Eiger acquisition (``x_master.h5`` with ``x_data_000001.h5`` ...) is one input: the master,
whose size and mtime cover its data files (``parts``), so a rewritten data file re-ingests it.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from typing import Sequence

from xray_spark.io.sidecar import SidecarError, read_sidecar

EIGER_DATA = re.compile(r"^(?P<stem>.+)_data_\d{6}\.h5$")


class ArchiveError(ValueError):
    """An archive root that cannot be used."""


@dataclass
class ArchiveFile:
    """One input unit: a detector file (with its companion files), or a refused path."""

    path: str            # relative to the archive root, '/'-separated: beamtime/run/.../name
    abspath: str
    beamtime: str
    run_id: str
    size: int
    mtime: float
    parts: list[str] = field(default_factory=list)   # companion files read with it (absolute)
    setup: str = ""      # hash of the run's sidecar and mask file: a change re-ingests the run
    refused: str = ""    # reason code when the file is refused without being read
    error: str = ""


def _run_setup(run_dir: str, sidecar_name: str) -> tuple[dict, str, str]:
    """(sidecar fields, setup hash, error message) of one run directory."""
    path = os.path.join(run_dir, sidecar_name)
    digest = hashlib.sha256()
    if os.path.isfile(path) and not os.path.islink(path):
        with open(path, "rb") as f:
            digest.update(f.read())
    try:
        sidecar = read_sidecar(path) if not os.path.islink(path) else {}
    except SidecarError as e:
        return {}, digest.hexdigest()[:16], str(e)
    if "mask" in sidecar:
        st = os.stat(sidecar["mask"])
        digest.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return sidecar, digest.hexdigest()[:16], ""


def discover(root: str, ignore: Sequence[str], sidecar_name: str, only: Sequence[str] | None = None,
             settle_s: float = 0.0) -> tuple[list[ArchiveFile], dict[tuple[str, str], dict]]:
    """Input files of the archive at ``root`` (or only the paths in ``only``), and each run's sidecar.

    Returns the files sorted by path, and ``{(beamtime, run_id): sidecar fields}``. Files still
    being written come back with ``refused = 'unsettled'`` (``mark_unsettled``): not read now, not
    recorded, so the next run lists them again.
    """
    started = time.time()
    root = os.path.realpath(root)
    if not os.path.isdir(root):
        raise ArchiveError(f"archive root {root!r} is not a directory (set ingest.archive or --archive)")
    runs: dict[tuple[str, str], tuple[dict, str, str]] = {}
    files = []
    for abspath in (_requested(root, only) if only is not None else _walk(root, ignore)):
        if isinstance(abspath, ArchiveFile):
            files.append(abspath)
            continue
        rel = os.path.relpath(abspath, root).replace(os.sep, "/")
        parts = rel.split("/")
        st = os.lstat(abspath)
        beamtime, run_id = (parts[0], parts[1]) if len(parts) >= 3 else ("", "")
        item = ArchiveFile(rel, abspath, beamtime, run_id, st.st_size, st.st_mtime)
        if os.path.islink(abspath):
            item.refused = "symlink_refused"
            item.error = (f"{rel} is a symbolic link (to {os.readlink(abspath)!r}); links are refused so "
                          "that nothing outside the archive root is read")
        elif len(parts) < 3:
            item.refused = "outside_layout"
            item.error = f"{rel} is not under <beamtime>/<run>/ of the archive root {root}"
        else:
            key = (beamtime, run_id)
            if key not in runs:
                runs[key] = _run_setup(os.path.join(root, beamtime, run_id), sidecar_name)
            sidecar, item.setup, error = runs[key]
            if error:
                item.refused, item.error = "bad_sidecar", error
            elif sidecar.get("mask") == abspath:
                continue
        files.append(item)
    files = mark_unsettled(_group_eiger(files), started, settle_s)
    return sorted(files, key=lambda f: f.path), {k: v[0] for k, v in runs.items()}


def mark_unsettled(files: list[ArchiveFile], now: float, settle_s: float) -> list[ArchiveFile]:
    """Mark ``unsettled`` the files (with their companion files) modified less than ``settle_s``
    seconds before ``now``, or whose size changed since they were listed (still growing)."""
    for f in files:
        if f.refused:
            continue
        try:
            size = sum(os.stat(p).st_size for p in [f.abspath, *f.parts])
        except OSError:
            size = -1
        if size != f.size or now - f.mtime < settle_s:
            f.refused = "unsettled"
            f.error = (f"{f.path}: modified {now - f.mtime:.1f} s ago (ingest.settle_s = {settle_s:g}) or still "
                       "growing; left for the next run")
    return files


def _walk(root: str, ignore: Sequence[str]):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in list(dirnames):
            if os.path.islink(os.path.join(dirpath, name)):
                dirnames.remove(name)
                filenames.append(name)  # reported (and refused) like a linked file
        for name in sorted(filenames):
            if not any(fnmatch.fnmatchcase(name, pattern) for pattern in ignore):
                yield os.path.join(dirpath, name)


def _requested(root: str, only: Sequence[str]):
    for given in only:
        path = given if os.path.isabs(given) else os.path.join(root, given)
        real = os.path.realpath(path)
        if os.path.commonpath([real, root]) != root or not os.path.exists(path):
            reason = "outside_archive" if os.path.exists(path) else "missing_file"
            yield ArchiveFile(given, path, "", "", 0, 0.0, refused=reason,
                              error=f"{given}: resolves to {real}, "
                                    + ("outside the archive root " + root if reason == "outside_archive"
                                       else "which does not exist"))
        else:
            yield os.path.join(os.path.dirname(os.path.abspath(path)), os.path.basename(path))


def _group_eiger(files: list[ArchiveFile]) -> list[ArchiveFile]:
    """Fold ``x_data_NNNNNN.h5`` into ``x_master.h5`` of the same directory."""
    masters = {f.abspath: f for f in files if f.abspath.endswith("_master.h5") and not f.refused}
    out = []
    for f in files:
        match = EIGER_DATA.match(os.path.basename(f.abspath))
        master = masters.get(os.path.join(os.path.dirname(f.abspath), f"{match['stem']}_master.h5")) if match else None
        if master is None or f.refused:
            out.append(f)
            continue
        master.parts.append(f.abspath)
        master.size += f.size
        master.mtime = max(master.mtime, f.mtime)
    return out
