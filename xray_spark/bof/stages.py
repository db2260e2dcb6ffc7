"""The bag-of-features stages as pyspark.ml Transformers and Estimators.

``PatchDescriptors`` (images -> descriptors) -> ``VisualDictionary`` (fits a
``VisualDictionaryModel``: descriptors -> words) -> ``SpatialPyramid`` (words -> features) ->
``svm.ChiSquareSVMs`` (fits a ``ChiSquareSVMModel``: features -> scores) compose in one
``pyspark.ml.Pipeline`` that saves and loads like any MLlib pipeline.

Every stage works on executors over Arrow batches (``mapInArrow``) and passes its input columns
through, except ``PatchDescriptors``, which drops the (large) image and mask. Per-patch arrays
travel as raw little-endian bytes: descriptors (n_patches x d float32) and patch centres
(n_patches x 2 float32, row/column fractions). An image that yields no patch keeps its row with
a skip reason set and null outputs in the later stages: nothing is lost silently, and the jobs
write those rows to the skipped table.

As in ``pyspark.ml``, a stage's whole configuration is its Params (the shared mixins of
``pyspark.ml.param.shared`` where one exists, else those of ``bof.params``): every column it
reads or writes is named by a Param whose default is the name in the images and features tables
(``image``, ``mask``, ``height``, ``width``, ``image_id``, ``descriptors``, ``patch_centres``,
``n_patches``, ``skip_reason``, ``words``, ``features``), so the stages run on tables named
otherwise. The fitted models keep their arrays outside Params (``persistence.ArraysReadWrite``).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyspark import keyword_only
from pyspark.ml import Estimator, Model, Transformer
from pyspark.ml.param import TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasMaxIter, HasOutputCol, HasSeed, HasTol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import functions as F

from xray_spark.bof import columns, kmeans, params
from xray_spark.bof import descriptors as desc
from xray_spark.bof.params import param
from xray_spark.bof.persistence import ArraysReadWrite
from xray_spark.bof.pyramid import assign_words, pyramid_length, spatial_pyramid
from xray_spark.schema import DESCRIPTORS

# ---------------------------------------------------------------- descriptors


class PatchDescriptors(Transformer, HasInputCol, HasOutputCol, HasSeed, params.HasImageIdCol,
                       params.HasCentresCol, params.HasPatchCountCol, params.HasSkipReasonCol,
                       DefaultParamsReadable, DefaultParamsWritable):
    """Images -> random multi-scale patch descriptors (``descriptors.patch_descriptors``).

    Reads ``inputCol`` (the image: raw little-endian float32), ``maskCol`` (uint8), ``heightCol``,
    ``widthCol`` and ``imageIdCol`` (seeds the patch positions); drops the image and the mask and
    adds ``outputCol`` (descriptors), ``centresCol``, ``patchCountCol`` and ``skipReasonCol``.
    """

    patchesPerImage = param("patchesPerImage", "patches sampled per image", TypeConverters.toInt)
    scales = param("scales", "patch sides in pixels (multiples of descriptorSize)", TypeConverters.toListInt)
    descriptorSize = param("descriptorSize", "side of the area-averaged patch", TypeConverters.toInt)
    maskCol = param("maskCol", "column of the masks (raw uint8, nonzero = masked pixel)", TypeConverters.toString)
    heightCol = param("heightCol", "column of the image heights", TypeConverters.toString)
    widthCol = param("widthCol", "column of the image widths", TypeConverters.toString)

    @keyword_only
    def __init__(self, *, patchesPerImage: int = 1000, scales=(8, 16, 32), descriptorSize: int = 8, seed: int = 0,
                 inputCol: str = "image", maskCol: str = "mask", heightCol: str = "height", widthCol: str = "width",
                 imageIdCol: str = "image_id", outputCol: str = "descriptors", centresCol: str = "patch_centres",
                 patchCountCol: str = "n_patches", skipReasonCol: str = "skip_reason"):
        super().__init__()
        self._setDefault(patchesPerImage=1000, scales=[8, 16, 32], descriptorSize=8, seed=0, inputCol="image",
                         maskCol="mask", heightCol="height", widthCol="width", imageIdCol="image_id",
                         outputCol="descriptors", centresCol="patch_centres", patchCountCol="n_patches",
                         skipReasonCol="skip_reason")
        self._set(**self._input_kwargs)

    def descriptor_length(self) -> int:
        return desc.descriptor_length(self.getOrDefault(self.descriptorSize))

    def _transform(self, dataset):
        get = self.getOrDefault
        n, scales, size, seed = get(self.patchesPerImage), get(self.scales), get(self.descriptorSize), get(self.seed)
        desc.check_scales(scales, size)
        image_col, mask_col = get(self.inputCol), get(self.maskCol)
        inputs = [get(self.imageIdCol), image_col, mask_col, get(self.heightCol), get(self.widthCol)]
        # the DESCRIPTORS fields (types, order) under the names this stage's Params give them
        names = {"n_patches": get(self.patchCountCol), "descriptors": get(self.outputCol),
                 "patch_centres": get(self.centresCol), "skip_reason": get(self.skipReasonCol)}
        kept = [f for f in columns.arrow_schema(dataset) if f.name not in (image_col, mask_col)]
        schema = pa.schema(kept + [pa.field(names[f.name], f.type) for f in DESCRIPTORS])

        def describe(batches):
            for batch in batches:
                out = {name: [] for name in names}
                rows = zip(*(batch.column(c).to_pylist() for c in inputs))
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
                new = {names[f.name]: pa.array(out[f.name], type=f.type) for f in DESCRIPTORS}
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
    """Params of the dictionary and its model: descriptors (``inputCol``) -> words (``outputCol``)."""

    chunkRows = param("chunkRows", "descriptors per GEMM when assigning words", TypeConverters.toInt)

    def _chunk_rows(self) -> int:
        return self.getOrDefault(self.chunkRows)


class VisualDictionary(Estimator, _DictionaryParams, HasMaxIter, HasTol, HasSeed, params.HasImageIdCol,
                       params.HasPatchCountCol, params.HasSkipReasonCol, params.HasProgressInterval,
                       DefaultParamsReadable, DefaultParamsWritable):
    """Descriptors -> a dictionary of k visual words by k-means over a sample (``kmeans``).

    Reads ``inputCol`` (descriptors), ``patchCountCol``, ``imageIdCol`` (seeds the sample) and
    ``skipReasonCol`` (rows where it is set are left out); ``maxIter`` and ``tol`` are k-means's.
    """

    k = param("k", "number of visual words", TypeConverters.toInt)
    sampleSize = param("sampleSize", "descriptors sampled for k-means", TypeConverters.toInt)
    initSampleSize = param("initSampleSize", "descriptors of the driver-side k-means++ sample", TypeConverters.toInt)
    implementation = param("implementation", "'lloyd' (BLAS-3 Lloyd, k-means++ init) or 'mllib' (MLlib KMeans)",
                           TypeConverters.toString)

    @keyword_only
    def __init__(self, *, k: int = 2000, maxIter: int = 20, tol: float = 1e-4, sampleSize: int = 1_000_000,
                 initSampleSize: int = 50_000, implementation: str = "lloyd", chunkRows: int = 2048,
                 inputCol: str = "descriptors", outputCol: str = "words", seed: int = 0,
                 progressInterval: float = 30.0, imageIdCol: str = "image_id", patchCountCol: str = "n_patches",
                 skipReasonCol: str = "skip_reason"):
        super().__init__()
        self._setDefault(k=2000, maxIter=20, tol=1e-4, sampleSize=1_000_000, initSampleSize=50_000,
                         implementation="lloyd", chunkRows=2048, inputCol="descriptors", outputCol="words", seed=0,
                         progressInterval=30.0, imageIdCol="image_id", patchCountCol="n_patches",
                         skipReasonCol="skip_reason")
        self._set(**self._input_kwargs)

    def _fit(self, dataset):
        from xray_spark.spark import stage

        get = self.getOrDefault
        k, seed, implementation = get(self.k), get(self.seed), get(self.implementation)
        interval = get(self.progressInterval)
        if implementation not in ("lloyd", "mllib"):
            raise ValueError(f"implementation = {implementation!r}: allowed are 'lloyd' and 'mllib'")
        spark = dataset.sparkSession
        count_col = get(self.patchCountCol)
        usable = (dataset.filter(F.col(get(self.skipReasonCol)).isNull())
                  .select(get(self.imageIdCol), get(self.inputCol), count_col))
        with stage(spark, "dictionary: counting patches", interval):
            total = usable.agg(F.sum(count_col)).first()[0] or 0
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

class SpatialPyramid(Transformer, HasOutputCol, params.HasCentresCol, DefaultParamsReadable, DefaultParamsWritable):
    """Words (``wordsCol``) + patch centres (``centresCol``) -> weighted, L1-normalised spatial-pyramid
    histogram (list<float> ``outputCol``)."""

    numWords = param("numWords", "dictionary size k", TypeConverters.toInt)
    levels = param("levels", "pyramid levels (3 = 1x1, 2x2, 4x4)", TypeConverters.toInt)
    wordsCol = param("wordsCol", "column of the patch words", TypeConverters.toString)

    @keyword_only
    def __init__(self, *, numWords: int = 2000, levels: int = 3, wordsCol: str = "words", outputCol: str = "features",
                 centresCol: str = "patch_centres"):
        super().__init__()
        self._setDefault(numWords=2000, levels=3, wordsCol="words", outputCol="features", centresCol="patch_centres")
        self._set(**self._input_kwargs)

    def feature_length(self) -> int:
        return pyramid_length(self.getOrDefault(self.numWords), self.getOrDefault(self.levels))

    def _transform(self, dataset):
        k, levels = self.getOrDefault(self.numWords), self.getOrDefault(self.levels)
        words_col, out_col = self.getOrDefault(self.wordsCol), self.getOrDefault(self.outputCol)
        centres_col = self.getOrDefault(self.centresCol)
        schema = pa.schema(list(columns.arrow_schema(dataset)) + [pa.field(out_col, pa.list_(pa.float32()))])

        def pool(batches):
            for batch in batches:
                centres = columns.rows_float32(batch.column(centres_col), 2)
                out = []
                for words, where in zip(batch.column(words_col).to_pylist(), centres):
                    if words is not None and words and max(words) >= k:
                        raise ValueError(f"word {max(words)} >= numWords = {k}: the pyramid's numWords must "
                                         "be the dictionary's k")
                    out.append(None if words is None else spatial_pyramid(np.asarray(words), where, k, levels))
                yield columns.with_columns(batch, schema, {out_col: columns.list_column(out, pa.float32())})

        return dataset.mapInArrow(pool, columns.spark_schema(schema))
