"""The landing directory as a stream of notices: one small JSON file per settled detector file.

Structured Streaming needs a source whose offsets it checkpoints. Spark 3.5 has no Python source
API (``pyspark.sql.datasource`` arrived in Spark 4.0, which needs pyarrow >= 18; Horovod pins
pyarrow < 11), and Spark's own file sources do not fit a detector's landing directory: they take a
file the moment it appears (no settle rule), never look at a path again (an Eiger master that
gains data files) and read the files through the JVM (``text``, ``json``; ``binaryFile`` reads
them too once ``content`` is selected). So the driver lists the landing directory itself, with
ingest's listing (``io.archive.discover``: layout, ignore patterns, sidecars, symlinks, Eiger
grouping, the settle rule), and writes a **notice** for every unit that is settled and not yet
noticed: ``{"path", "files", "size", "mtime", "setup", "listed_at", "again"}`` (``files``: the
unit's paths, an Eiger master with its data files; ``again``: the path was noticed before, e.g. an
Eiger master whose acquisition gained a data file: the stream does not label its frames labelled
already). Spark's ``json`` file source streams the notices
(``stream.max_files_per_batch`` a batch, deleted once their batch commits: ``cleanSource``);
only these few hundred bytes a file cross the JVM, and Spark's offset log fixes which detector
files make each batch, so a replayed batch is the same batch.

A unit is noticed again when its size, mtime or run setup change (a rewritten file, an Eiger master
with a new data file). What was noticed is what the notice directory holds plus what the manifest
records (``known_units``): a notice is deleted only after its batch committed, and the batch writes
the manifest, so a restarted stream notices nothing twice and misses nothing.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time

from pyarrow import fs as pafs

from xray_spark import schema
from xray_spark.io import manifest as mf
from xray_spark.io import tables
from xray_spark.io.archive import discover

log = logging.getLogger(__name__)

NOTICE_SCHEMA = ("path STRING, files ARRAY<STRING>, size LONG, mtime DOUBLE, setup STRING, listed_at DOUBLE, "
                 "again BOOLEAN")


def known_units(notices_url: str, manifest_url: str) -> set[tuple]:
    """(path, size, mtime, setup) of every unit noticed before: in a notice not yet consumed, or in the manifest."""
    manifest = mf.read(manifest_url, schema.MANIFEST)
    known = set(zip(manifest["path"], manifest["size"], manifest["mtime"], manifest["setup"]))
    fs, directory = tables.filesystem(notices_url)
    for info in fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True)):
        if info.type == pafs.FileType.File and not info.base_name.startswith("."):
            with fs.open_input_stream(info.path) as f:
                notice = json.loads(f.read())
            known.add((notice["path"], notice["size"], notice["mtime"], notice["setup"]))
    return known


class Landing:
    """Lists the landing directory and writes the notices of the units that are new or changed."""

    def __init__(self, root: str, notices_url: str, known: set[tuple], ignore, sidecar: str, settle_s: float):
        self.root, self.known = os.path.realpath(root), known
        self.ignore, self.sidecar, self.settle_s = list(ignore), sidecar, settle_s
        self.fs, self.directory = tables.filesystem(notices_url)
        self.fs.create_dir(self.directory, recursive=True)

    def scan(self) -> int:
        """One listing: write a notice per settled unit not noticed yet; returns how many."""
        listed_at = time.time()
        units, _ = discover(self.root, self.ignore, self.sidecar, settle_s=self.settle_s)
        noticed = {key[0] for key in self.known}
        written = 0
        for unit in units:
            key = (unit.path, unit.size, unit.mtime, unit.setup)
            if unit.refused == "unsettled" or key in self.known:
                continue
            files = [unit.path, *(os.path.relpath(p, self.root).replace(os.sep, "/") for p in unit.parts)]
            notice = {"path": unit.path, "files": files, "size": unit.size, "mtime": unit.mtime,
                      "setup": unit.setup, "listed_at": listed_at, "again": unit.path in noticed}
            digest = hashlib.sha1(json.dumps(key).encode()).hexdigest()[:16]
            with tables.replacing(self.fs, f"{self.directory}/{int(listed_at * 1000):013d}-{digest}.json") as tmp, \
                    self.fs.open_output_stream(tmp) as out:
                out.write(json.dumps(notice).encode())
            self.known.add(key)
            written += 1
        return written


class Watcher(threading.Thread):
    """A driver thread that runs ``Landing.scan`` every ``interval_s`` seconds until ``stop()``."""

    def __init__(self, landing: Landing, interval_s: float):
        super().__init__(name="landing-watcher", daemon=True)
        self.landing, self.interval_s = landing, interval_s
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(self.interval_s):
            try:
                self.landing.scan()
            except OSError as e:       # a run directory removed while listed: the next listing sees it right
                log.warning("listing the landing directory %s failed: %s", self.landing.root, e)

    def stop(self):
        self.stopped.set()
        self.join()
