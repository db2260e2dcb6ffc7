"""The `paths` section of the configuration: where every table, model and report lives, and the
locations derived from them (the nightly predictions, a night's report, a model directory), so no
other module builds a location by hand."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from xray_spark.config_types import option

SHIPPED_MODELS = Path(__file__).resolve().parent / "data" / "models"
SHIPPED_MODEL = "cnn-top17"     # the pretrained CNN that predict and nightly use by default (docs/cnn.md)


@dataclass
class PathsConfig:
    root: str = option("data", "root of all tables and models; relative paths are under the working directory")
    images: str = option("images", "images table, relative to root unless absolute or a URL")
    quarantine: str = option("quarantine", "files and frames that could not be read, with the reason")
    manifest: str = option("manifest", "every archive file seen: path, size, mtime, checksum, status")
    features: str = option("features", "spatial-pyramid feature table")
    predictions: str = option("predictions", "per-tag scores and tags of labelled images")
    models: str = option("models", "model and dictionary directories")
    reports: str = option("reports", "HTML reports with PNG figures")
    bof_skipped: str = option("bof_skipped", "images the bag of features could not describe, with the reason")
    embeddings: str = option("embeddings", "CNN and physics embeddings of every image (similar-image search, clusters)")
    clusters: str = option("clusters", "k-means clusters of each beamtime's embeddings (xray-spark atlas)")
    run_events: str = option("run_events", "change points along each run: embedding shifts, tags appearing (xray-spark atlas)")

    def url(self, name: str) -> str:
        """Absolute URL of a table or directory by its field name (file:// for local paths)."""
        value = getattr(self, name)
        if "://" in value:
            return value
        path = Path(value) if os.path.isabs(value) else Path(self.root) / value
        if "://" in self.root:
            return f"{self.root.rstrip('/')}/{value}"
        return path.resolve().as_uri()

    def under(self, name: str, *parts: str) -> str:
        """URL of ``parts`` below the table or directory ``name`` (e.g. ``under("models", "bof")``)."""
        return "/".join([self.url(name).rstrip("/"), *parts])

    def nightly_predictions(self) -> str:
        """The nightly predictions table, partitioned by night."""
        return self.under("predictions", "nightly")

    def nightly_report(self, night: str) -> str:
        """The directory of one night's HTML summary."""
        return self.under("reports", "nightly", night)

    def atlas_report(self, beamtime: str) -> Path:
        """The directory of one beamtime's atlas (clusters, map, timelines, waterfalls)."""
        return self.local("reports", "atlas", beamtime)

    def checkpoint(self, stream: str) -> str:
        """The directory of a stream's checkpoint, ``<root>/checkpoints/<stream>`` (a URL)."""
        root = self.root if "://" in self.root else Path(self.root).resolve().as_uri()
        return f"{root.rstrip('/')}/checkpoints/{stream}"

    def local(self, name: str, *parts: str) -> Path:
        """A local directory below ``name`` (reports and model directories are written with plain file I/O)."""
        url = self.under(name, *parts)
        return Path(url[len("file://"):] if url.startswith("file://") else url)

    def model_dir(self, model: str) -> Path:
        """A model directory from a path or ``file://`` URL that holds a manifest, else a name under
        models, else a model shipped with the package (``SHIPPED_MODELS``) of that name."""
        path = Path(model[len("file://"):] if model.startswith("file://") else model)
        if (path / "manifest.json").is_file():
            return path.resolve()
        trained, shipped = self.local("models", model), SHIPPED_MODELS / model
        if not (trained / "manifest.json").is_file() and (shipped / "manifest.json").is_file():
            return shipped
        return trained
