"""Arrow columns of the bag-of-features stages: per-image numpy arrays in and out of batches.

Per-patch arrays travel as raw little-endian bytes (one value per image), per-image vectors as
Arrow lists built from offsets (no Python loop over elements).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa


def arrow_schema(df) -> pa.Schema:
    """The Arrow schema of a DataFrame (for mapInArrow outputs that extend it)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(df.schema)


def spark_schema(schema: pa.Schema):
    """The Spark StructType of an Arrow schema (the declared output of a mapInArrow)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def with_columns(batch: pa.RecordBatch, schema: pa.Schema, new: dict) -> pa.RecordBatch:
    """The batch's columns that ``schema`` keeps, then the ``new`` ones, in ``schema`` order."""
    arrays = [new[f.name] if f.name in new else batch.column(f.name) for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def list_column(rows: list[np.ndarray | None], value_type: pa.DataType) -> pa.Array:
    """A list column from per-row numpy arrays (None = null row), built from offsets, not per element."""
    lengths = np.array([0 if r is None else len(r) for r in rows], dtype=np.int32)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    values = [r for r in rows if r is not None]
    flat = np.concatenate(values) if values else np.empty(0)
    nulls = pa.array([r is None for r in rows])
    array = pa.ListArray.from_arrays(offsets, pa.array(flat, type=value_type))
    return pa.ListArray.from_arrays(offsets, array.values, mask=nulls) if any(r is None for r in rows) else array


def rows_float32(column: pa.Array, width: int) -> list[np.ndarray | None]:
    """Per-row (n_i, width) float32 arrays of a raw-bytes column (None for nulls)."""
    return [None if b is None else np.frombuffer(b, dtype="<f4").reshape(-1, width) for b in column.to_pylist()]
