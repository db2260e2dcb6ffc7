"""The query of a similar-image search, and the few rows a search shows, read without Spark.

A query is an image_id of the tables (its stored embedding, else its image embedded here), or a
detector file outside them, read with ingest's readers, geometry resolution and preprocessing
(``io.rows.file_rows``: the same row ingest would write) and embedded here with the same function
as the executors (``embeddings.embed_rows``), so its vector is comparable with the table's.

The rows are read with pyarrow filtered by image_id: a handful of rows, in the process that asks.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from xray_spark import schema
from xray_spark.explore.embeddings import EmbeddingSettings, PenultimateLayer, embed_rows
from xray_spark.io import tables


class QueryError(ValueError):
    """A query that cannot be searched: names the id or file and why."""


@dataclass
class Query:
    """A query's embedding, its image row (for the thumbnail) and what it is, for people."""
    embedding: np.ndarray
    image: dict
    label: str


def rows_by_id(url: str, table: pa.Schema, image_ids, columns=None) -> list[dict]:
    """The rows of the (hive-partitioned) table at ``url`` whose image_id is in ``image_ids``."""
    import pyarrow.dataset as ds

    if not tables.table_exists(url):
        return []
    fs, path = tables.filesystem(url)
    dataset = ds.dataset(path, filesystem=fs, format="parquet", partitioning="hive", schema=table,
                         exclude_invalid_files=True)
    wanted = pa.array(sorted(set(image_ids)), pa.string())
    return dataset.to_table(columns=columns, filter=ds.field("image_id").isin(wanted)).to_pylist()


def _embed_image_row(row: dict, network: PenultimateLayer, settings: EmbeddingSettings) -> np.ndarray:
    embedded = embed_rows({k: [v] for k, v in row.items()}, network, settings).to_pylist()[0]
    if embedded["embedding"] is None:
        raise QueryError(f"image {row['image_id']}: its image bytes do not match its shape "
                         f"{row['height']}x{row['width']}; it cannot be embedded")
    return np.asarray(embedded["embedding"], np.float32)


def query_by_id(image_id: str, embeddings_url: str, images_url: str, model_id: str, network_factory,
                settings: EmbeddingSettings) -> Query:
    """The query of a frame of the tables: its stored embedding of ``model_id``, else its image
    embedded now (``network_factory()`` loads the CNN only then)."""
    images = rows_by_id(images_url, schema.IMAGES, [image_id])
    stored = [r for r in rows_by_id(embeddings_url, schema.EMBEDDINGS, [image_id], ["model_id", "embedding"])
              if r["model_id"] == model_id and r["embedding"] is not None]
    if not images:
        raise QueryError(f"--image {image_id!r}: no image of that id in the images table {images_url} "
                         "(give an image_id of that table, or a detector file path)")
    image = images[0]
    label = f"{image_id} ({image['run_id']} frame {image['frame']})"
    if stored:
        return Query(np.asarray(stored[0]["embedding"], np.float32), image, label)
    return Query(_embed_image_row(image, network_factory(), settings), image, label + ", embedded now")


def query_by_file(path: str, frame: int, config, network: PenultimateLayer, settings: EmbeddingSettings) -> Query:
    """The query of frame ``frame`` of the detector file ``path``, read and preprocessed as ingest
    does (geometry from its header, else the ``run.yaml`` beside it, else ``ingest.*``)."""
    from xray_spark.io.ingestion import settings_of
    from xray_spark.io.rows import file_rows
    from xray_spark.io.sidecar import SidecarError, read_sidecar

    file = Path(path).resolve()
    if not file.is_file():
        raise QueryError(f"--image {path!r}: neither a file nor an image_id of the images table")
    try:
        sidecar = read_sidecar(str(file.parent / config.ingest.sidecar))
    except SidecarError as e:
        raise QueryError(f"--image {path}: {e}") from None
    stat = file.stat()
    unit = {"path": file.name, "abspath": str(file), "beamtime": "query", "run_id": file.parent.name,
            "size": stat.st_size, "mtime": stat.st_mtime, "parts": [], "sidecar": json.dumps(sidecar)}
    reading = {**settings_of(config, str(file.parent), {}), "isolate_reads": False}
    rows = list(file_rows(unit, reading))
    images = [r for r in rows if r["kind"] == "image"]
    chosen = [r for r in images if r["frame"] == frame]
    if not chosen:
        problems = [f"{r['reason']}: {r['error']}" for r in rows if r["kind"] == "quarantine"
                    and r["frame"] in (None, frame)]
        raise QueryError(f"--image {path} frame {frame}: not readable as an image"
                         + (f" ({'; '.join(problems)})" if problems else
                            f"; the file has {len(images)} frame(s): choose one with --frame 0..{len(images) - 1}"))
    image = {k: v for k, v in chosen[0].items() if k in schema.IMAGES.names}
    return Query(_embed_image_row(image, network, settings), image, f"{os.path.basename(path)} frame {frame}")
