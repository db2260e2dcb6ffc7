"""Saving and loading fitted stages that carry arrays (dictionary centres, support vectors).

A fitted stage is written like an MLlib model: ``<path>/metadata`` holds the class, uid and
Params as JSON (``DefaultParamsWriter``), ``<path>/data`` a Parquet table of the stage's named
numpy arrays, cut into rows of at most ``CHUNK_BYTES`` (name, dtype, shape, chunk, bytes).
Written through Spark, so the same code saves to local disk, HDFS or object stores; reading
rebuilds the arrays with ``np.frombuffer``: no pickle, loading never executes code from the file.
"""
from __future__ import annotations

import os

import numpy as np
from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReadable, MLReader, MLWritable, MLWriter

CHUNK_BYTES = 16 * 2**20


class ArraysWriter(MLWriter):
    """Params as metadata, then the instance's ``arrays()`` (name -> ndarray) as Parquet."""

    def __init__(self, instance):
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sc)
        rows = []
        for name, array in self.instance.arrays().items():
            array = np.ascontiguousarray(array)
            data = array.tobytes()
            for chunk, start in enumerate(range(0, max(len(data), 1), CHUNK_BYTES)):
                rows.append((name, array.dtype.str, list(array.shape), chunk, data[start:start + CHUNK_BYTES]))
        spark = self.sparkSession
        frame = spark.createDataFrame(rows, "name string, dtype string, shape array<long>, chunk int, data binary")
        frame.coalesce(1).write.parquet(os.path.join(path, "data"))


class ArraysReader(MLReader):
    """Inverse of ``ArraysWriter``: the Params from metadata, then ``instance.set_arrays(arrays)``."""

    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def load(self, path: str):
        metadata = DefaultParamsReader.loadMetadata(path, self.sc)
        instance = self.cls()
        instance._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(instance, metadata)
        rows = self.sparkSession.read.parquet(os.path.join(path, "data")).collect()
        arrays = {}
        for name in {r["name"] for r in rows}:
            parts = sorted((r for r in rows if r["name"] == name), key=lambda r: r["chunk"])
            data = b"".join(bytes(r["data"]) for r in parts)
            arrays[name] = np.frombuffer(data, dtype=np.dtype(parts[0]["dtype"])).reshape(parts[0]["shape"]).copy()
        instance.set_arrays(arrays)
        return instance


class ArraysReadWrite(MLReadable, MLWritable):
    """Mixin of fitted stages with arrays: implement ``arrays()`` and ``set_arrays(arrays)``."""

    def write(self) -> MLWriter:
        return ArraysWriter(self)

    @classmethod
    def read(cls) -> MLReader:
        return ArraysReader(cls)
