"""The manifest and quarantine tables, and the incremental plan that compares a listing with them.

The manifest has one row per archive file ever seen: path (relative to the archive root), size,
mtime, the run's setup hash (sidecar + mask file), SHA-256 checksum, status (``ingested``,
``partial`` = some frames quarantined, ``quarantined``, ``deleted``), frame counts and when it was
ingested (or found deleted). A file is read again only when its size, mtime or setup changed, so
a quarantined file is retried only once it changed. A file that disappeared is marked
``deleted`` and kept: its images stay in the images table.

The quarantine table holds what could not become an image, file by file or frame by frame (frame
null = the whole file), with the reason code and the message. It holds the current state: rows of a
file are replaced whenever the file is read again, and dropped when it is deleted.

Both are metadata (a few hundred bytes per file): they are handled as pandas frames on the driver
and written whole with ``tables.write_arrow`` (atomic publish). The manifest is written last, so
it is the commit record of a run: a run killed before it is simply done again.
"""
from __future__ import annotations

import pandas as pd
import pyarrow as pa

from xray_spark import schema
from xray_spark.io import tables


def read(url: str, table: pa.Schema) -> pd.DataFrame:
    """A metadata table as pandas (empty with its columns when it does not exist yet)."""
    if not tables.table_exists(url):
        return pd.DataFrame({f.name: pd.Series(dtype=object) for f in table})
    return tables.read_arrow(url, table).to_pandas()


def write(frame: pd.DataFrame, url: str, table: pa.Schema, sort_by: list[str]) -> None:
    """Write a metadata table whole, sorted (so the same content gives the same file).

    Read and written with pyarrow on the driver (``tables.read_arrow``/``write_arrow``, the same
    atomic publish as every table): a Spark job for a thousand-file manifest would cost more than
    the data, and this is part of every night's fixed cost.
    """
    frame = frame.sort_values(sort_by, kind="stable") if len(frame) else frame
    tables.write_arrow(pa.Table.from_pandas(frame[table.names], schema=table, preserve_index=False), url)


def plan(listing: pd.DataFrame, manifest: pd.DataFrame) -> tuple[pd.DataFrame, int, pd.DataFrame]:
    """(files to read or refuse now, number unchanged, manifest rows of files now deleted).

    ``listing`` has one row per listed file with path, size, mtime and setup. A file is to do
    when the manifest does not know it, marks it deleted, or has another size, mtime or setup.
    """
    known = manifest[manifest["status"] != "deleted"].set_index("path")
    merged = listing.join(known[["size", "mtime", "setup"]], on="path", rsuffix="_seen")
    same = ((merged["size"] == merged["size_seen"]) & (merged["mtime"] == merged["mtime_seen"])
            & (merged["setup"] == merged["setup_seen"]))
    todo = listing[~same.to_numpy()]
    deleted = known[~known.index.isin(listing["path"])].reset_index()
    return todo, int(same.sum()), deleted


def updated_manifest(manifest: pd.DataFrame, files: pd.DataFrame, deleted: pd.DataFrame, now: str) -> pd.DataFrame:
    """The manifest after a run: rows of ``files`` (read or refused now) replace theirs; deleted marked."""
    files = files.assign(ingested_at=now, deleted_at=None)
    gone = deleted.assign(status="deleted", deleted_at=now)
    keep = manifest[~manifest["path"].isin(files["path"]) & ~manifest["path"].isin(gone["path"])]
    parts = [p[schema.MANIFEST.names] for p in (keep, files, gone) if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else manifest


def updated_quarantine(quarantine: pd.DataFrame, rows: pd.DataFrame, replaced: pd.Series, now: str) -> pd.DataFrame:
    """The quarantine after a run: rows of files read again (or deleted) replaced by the new rows."""
    keep = quarantine[~quarantine["path"].isin(replaced)]
    rows = rows.assign(quarantined_at=now)
    parts = [p[schema.QUARANTINE.names] for p in (keep, rows) if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else quarantine
