"""The bag-of-features stages as pyspark.ml Transformers and Estimators.

``PatchDescriptors`` (images -> descriptors) -> ``VisualDictionary`` (fits a
``VisualDictionaryModel``: descriptors -> words) -> ``SpatialPyramid`` (words -> features) ->
``svm.ChiSquareSVMs`` (fits a ``ChiSquareSVMModel``: features -> scores) compose in one
``pyspark.ml.Pipeline`` that saves and loads like any MLlib pipeline.

Every stage works on executors over Arrow batches (``mapInArrow``) and passes its input columns
through, except ``PatchDescriptors``, which drops the (large) ``image`` and ``mask``. Per-patch
arrays travel as raw little-endian bytes: ``descriptors`` (n_patches x d float32) and
``patch_centres`` (n_patches x 2 float32, row/column fractions). An image that yields no patch
keeps its row with ``skip_reason`` set and null outputs in the later stages: nothing is lost
silently, and the jobs write those rows to the skipped table.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyspark import keyword_only
from pyspark.ml import Estimator, Model, Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasOutputCol, HasSeed
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import functions as F

from xray_spark.bof import columns, kmeans
from xray_spark.bof import descriptors as desc
from xray_spark.bof.persistence import ArraysReadWrite
from xray_spark.bof.pyramid import assign_words, pyramid_length, spatial_pyramid
from xray_spark.schema import DESCRIPTORS


def _param(name: str, doc: str, converter) -> Param:
    return Param(Params._dummy(), name, doc, typeConverter=converter)


# ---------------------------------------------------------------- descriptors

class PatchDescriptors(Transformer, HasSeed, DefaultParamsReadable, DefaultParamsWritable):
    """Images -> random multi-scale patch descriptors (``descriptors.patch_descriptors``)."""

    patchesPerImage = _param("patchesPerImage", "patches sampled per image", TypeConverters.toInt)
    scales = _param("scales", "patch sides in pixels (multiples of descriptorSize)", TypeConverters.toListInt)
    descriptorSize = _param("descriptorSize", "side of the area-averaged patch", TypeConverters.toInt)

    @keyword_only
    def __init__(self, *, patchesPerImage: int = 1000, scales=(8, 16, 32), descriptorSize: int = 8, seed: int = 0):
        super().__init__()
        self._setDefault(patchesPerImage=1000, scales=[8, 16, 32], descriptorSize=8, seed=0)
        self._set(**self._input_kwargs)

    def descriptor_length(self) -> int:
        return desc.descriptor_length(self.getOrDefault(self.descriptorSize))

    def _transform(self, dataset):
        n, scales = self.getOrDefault(self.patchesPerImage), self.getOrDefault(self.scales)
        size, seed = self.getOrDefault(self.descriptorSize), self.getOrDefault(self.seed)
        desc.check_scales(scales, size)
        kept = [f for f in columns.arrow_schema(dataset) if f.name not in ("image", "mask")]
        schema = pa.schema(kept + DESCRIPTORS)

        def describe(batches):
            for batch in batches:
                out = {"n_patches": [], "descriptors": [], "patch_centres": [], "skip_reason": []}
                rows = zip(batch.column("image_id").to_pylist(), batch.column("image").to_pylist(),
                           batch.column("mask").to_pylist(), batch.column("height").to_pylist(),
                           batch.column("width").to_pylist())
                for image_id, image_bytes, mask_bytes, height, width in rows:
                    image, mask, reason = _decode(image_bytes, mask_bytes, height, width)
                    reason = reason or desc.skip_reason(image, mask, scales)
                    if reason is None:
                        d, c = desc.patch_descriptors(image, mask, n_patches=n, scales=scales, size=size,
                                                      seed=desc.image_seed(seed, image_id))
                        d, c = d.tobytes(), c.tobytes()
                    out["n_patches"].append(0 if reason else n)
                    out["descriptors"].append(None if reason else d)
                    out["patch_centres"].append(None if reason else c)
                    out["skip_reason"].append(reason)
                new = {f.name: pa.array(out[f.name], type=f.type) for f in DESCRIPTORS}
                yield columns.with_columns(batch, schema, new)

        return dataset.mapInArrow(describe, columns.spark_schema(schema))


def _decode(image_bytes, mask_bytes, height, width):
    """(image, mask, None) of one row, or (None, None, reason) when its bytes are unusable."""
    pixels = (height or 0) * (width or 0)
    if not image_bytes or pixels == 0:
        return None, None, "empty: the image has no pixels"
    if len(image_bytes) != 4 * pixels or len(mask_bytes or b"") != pixels:
        return None, None, (f"corrupt: {len(image_bytes)} image bytes and {len(mask_bytes or b'')} mask bytes "
                            f"for {height}x{width} pixels (expected {4 * pixels} and {pixels})")
    image = np.frombuffer(image_bytes, dtype="<f4").reshape(height, width)
    mask = np.frombuffer(mask_bytes, dtype=np.uint8).reshape(height, width).astype(bool)
    return image, mask, None


# ---------------------------------------------------------------- dictionary

class _DictionaryParams(HasInputCol, HasOutputCol):
    chunkRows = _param("chunkRows", "descriptors per GEMM when assigning words", TypeConverters.toInt)

    def _chunk_rows(self) -> int:
        return self.getOrDefault(self.chunkRows)


class VisualDictionary(Estimator, _DictionaryParams, HasSeed, DefaultParamsReadable, DefaultParamsWritable):
    """Descriptors -> a dictionary of k visual words by k-means over a sample (``kmeans``)."""

    k = _param("k", "number of visual words", TypeConverters.toInt)
    maxIter = _param("maxIter", "maximum k-means iterations", TypeConverters.toInt)
    tol = _param("tol", "stop when the inertia improves by less than this (relative)", TypeConverters.toFloat)
    sampleSize = _param("sampleSize", "descriptors sampled for k-means", TypeConverters.toInt)
    initSampleSize = _param("initSampleSize", "descriptors of the driver-side k-means++ sample",
                            TypeConverters.toInt)
    implementation = _param("implementation", "'lloyd' (BLAS-3 Lloyd, k-means++ init) or 'mllib' (MLlib KMeans)",
                            TypeConverters.toString)
    progressInterval = _param("progressInterval", "seconds between progress lines of the k-means stages",
                              TypeConverters.toFloat)

    @keyword_only
    def __init__(self, *, k: int = 2000, maxIter: int = 20, tol: float = 1e-4, sampleSize: int = 1_000_000,
                 initSampleSize: int = 50_000, implementation: str = "lloyd", chunkRows: int = 2048,
                 inputCol: str = "descriptors", outputCol: str = "words", seed: int = 0,
                 progressInterval: float = 30.0):
        super().__init__()
        self._setDefault(k=2000, maxIter=20, tol=1e-4, sampleSize=1_000_000, initSampleSize=50_000,
                         implementation="lloyd", chunkRows=2048, inputCol="descriptors", outputCol="words", seed=0,
                         progressInterval=30.0)
        self._set(**self._input_kwargs)

    def _fit(self, dataset):
        from xray_spark.spark import stage

        get = self.getOrDefault
        k, seed, implementation = get(self.k), get(self.seed), get(self.implementation)
        interval = get(self.progressInterval)
        if implementation not in ("lloyd", "mllib"):
            raise ValueError(f"implementation = {implementation!r}: allowed are 'lloyd' and 'mllib'")
        spark = dataset.sparkSession
        usable = dataset.filter(F.col("skip_reason").isNull()).select("image_id", get(self.inputCol), "n_patches")
        with stage(spark, "dictionary: counting patches", interval):
            total = usable.agg(F.sum("n_patches")).first()[0] or 0
        if total < k:
            raise ValueError(f"{total} patches in the usable images: a dictionary of k = {k} words needs more")
        fraction = min(1.0, get(self.sampleSize) / total)
        init_fraction = min(fraction, max(get(self.initSampleSize), k) / total)
        blocks = usable.rdd.mapPartitions(lambda rows: [_sample_block(rows, fraction, seed)]).cache()
        try:
            with stage(spark, "dictionary: sampling descriptors", interval):
                init = blocks.map(lambda b: (b[0][b[1] < init_fraction], b[1][b[1] < init_fraction])).collect()
            keys = np.concatenate([u for _, u in init])
            sample = np.vstack([x for x, _ in init if len(x)])[np.argsort(keys, kind="stable")]
            descriptors = blocks.map(lambda b: b[0])
            if implementation == "mllib":
                centres = kmeans.mllib(spark, descriptors, k, max_iter=get(self.maxIter), tol=get(self.tol),
                                       seed=seed, interval_s=interval)
            else:
                start = kmeans.kmeans_plusplus_init(sample, k, seed)
                centres, _, _ = kmeans.lloyd(spark, descriptors, start, max_iter=get(self.maxIter), tol=get(self.tol),
                                             chunk_rows=self._chunk_rows(), interval_s=interval)
        finally:
            blocks.unpersist()
        model = VisualDictionaryModel(inputCol=get(self.inputCol), outputCol=get(self.outputCol),
                                      chunkRows=self._chunk_rows())
        model.set_arrays({"centres": centres})
        return self._copyValues(model)


def _sample_block(rows, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors of a partition kept with probability ``fraction`` each, and their uniform keys.

    The keys come from each image's own stream, so the sample does not depend on the partitioning.
    """
    kept, keys = [], []
    for row in rows:
        d = np.frombuffer(row[1], dtype="<f4").reshape(row[2], -1)
        u = np.random.default_rng(desc.image_seed(seed, row[0], stream=1)).random(len(d))
        kept.append(d[u < fraction])
        keys.append(u[u < fraction])
    if not kept:
        return np.empty((0, 0), np.float32), np.empty(0)
    return np.vstack(kept), np.concatenate(keys)


class VisualDictionaryModel(Model, _DictionaryParams, ArraysReadWrite):
    """Descriptors -> the word (nearest centre) of every patch, as a list<int> column."""

    def __init__(self, *, inputCol: str = "descriptors", outputCol: str = "words", chunkRows: int = 2048):
        super().__init__()
        self._setDefault(inputCol="descriptors", outputCol="words", chunkRows=2048)
        self._set(inputCol=inputCol, outputCol=outputCol, chunkRows=chunkRows)
        self.centres = None

    def arrays(self) -> dict:
        return {"centres": self.centres}

    def set_arrays(self, arrays: dict) -> None:
        self.centres = np.asarray(arrays["centres"], dtype=np.float32)

    def _transform(self, dataset):
        centres, chunk = self.centres, self._chunk_rows()
        in_col, out_col = self.getOrDefault(self.inputCol), self.getOrDefault(self.outputCol)
        schema = pa.schema(list(columns.arrow_schema(dataset)) + [pa.field(out_col, pa.list_(pa.int32()))])

        def assign(batches):
            for batch in batches:
                rows = columns.rows_float32(batch.column(in_col), centres.shape[1])
                present = [r for r in rows if r is not None]
                words = assign_words(np.vstack(present), centres, chunk)[0] if present else np.empty(0)
                split = iter(np.split(words, np.cumsum([len(r) for r in present])[:-1]) if present else [])
                out = [None if r is None else next(split) for r in rows]
                yield columns.with_columns(batch, schema, {out_col: columns.list_column(out, pa.int32())})

        return dataset.mapInArrow(assign, columns.spark_schema(schema))


# ---------------------------------------------------------------- pyramid

class SpatialPyramid(Transformer, HasOutputCol, DefaultParamsReadable, DefaultParamsWritable):
    """Words + patch centres -> weighted, L1-normalised spatial-pyramid histogram (list<float>)."""

    numWords = _param("numWords", "dictionary size k", TypeConverters.toInt)
    levels = _param("levels", "pyramid levels (3 = 1x1, 2x2, 4x4)", TypeConverters.toInt)
    wordsCol = _param("wordsCol", "column of the patch words", TypeConverters.toString)

    @keyword_only
    def __init__(self, *, numWords: int = 2000, levels: int = 3, wordsCol: str = "words", outputCol: str = "features"):
        super().__init__()
        self._setDefault(numWords=2000, levels=3, wordsCol="words", outputCol="features")
        self._set(**self._input_kwargs)

    def feature_length(self) -> int:
        return pyramid_length(self.getOrDefault(self.numWords), self.getOrDefault(self.levels))

    def _transform(self, dataset):
        k, levels = self.getOrDefault(self.numWords), self.getOrDefault(self.levels)
        words_col, out_col = self.getOrDefault(self.wordsCol), self.getOrDefault(self.outputCol)
        schema = pa.schema(list(columns.arrow_schema(dataset)) + [pa.field(out_col, pa.list_(pa.float32()))])

        def pool(batches):
            for batch in batches:
                centres = columns.rows_float32(batch.column("patch_centres"), 2)
                out = []
                for words, where in zip(batch.column(words_col).to_pylist(), centres):
                    if words is not None and words and max(words) >= k:
                        raise ValueError(f"word {max(words)} >= numWords = {k}: the pyramid's numWords must "
                                         "be the dictionary's k")
                    out.append(None if words is None else spatial_pyramid(np.asarray(words), where, k, levels))
                yield columns.with_columns(batch, schema, {out_col: columns.list_column(out, pa.float32())})

        return dataset.mapInArrow(pool, columns.spark_schema(schema))
