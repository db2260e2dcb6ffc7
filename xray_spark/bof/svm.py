"""One SVM per tag on spatial-pyramid histograms, with the exponential chi-square kernel.

``K(x, y) = exp(-gamma * chi2(x, y))``, ``chi2(x, y) = sum_i (x_i - y_i)^2 / (x_i + y_i)``
(Zhang et al., IJCV 2007), the kernel of the paper's baseline. The chi-square distances of the
training images are computed once, in blocks on the executors (a cartesian product of row
blocks, each pair by scikit-learn's compiled ``additive_chi2_kernel``), and collected as the
(n, n) matrix; every kernel for every gamma is then one ``exp`` of it.

Tags are trained in parallel: one Spark task per tag, with the distance matrix broadcast.
Each fits ``sklearn.svm.SVC(kernel='precomputed', class_weight='balanced')`` (balanced weights
for rare tags) and chooses C and gamma (a multiple of 1 / mean chi-square distance) by
cross-validated average precision on the training split, with folds grouped by run when there
are enough runs. The fitted model keeps the support vectors of all tags once, and scores new
images on executors: distances to the support vectors, ``exp`` per distinct gamma, one matrix
product for the tags sharing it.

The columns are Params, as in ``pyspark.ml``: ``featuresCol`` (features), ``labelCol`` (the tags
vector, ``tags``), ``imageIdCol`` (``image_id``: orders the training rows), ``groupCol``
(``run_id``), ``outputCol`` (scores).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.param import TypeConverters
from pyspark.ml.param.shared import HasFeaturesCol, HasLabelCol, HasOutputCol, HasSeed
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable

from xray_spark import tags as tagmod
from xray_spark.bof import columns
from xray_spark.bof.params import HasImageIdCol, HasProgressInterval, param
from xray_spark.bof.persistence import ArraysReadWrite


def label_spec(text: str):
    """A label set as ``tags.labels`` takes it: a set name, or tag names separated by '|'."""
    return text.split("|") if "|" in text else text


def chi2_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Chi-square distances between non-negative rows: (n, d) and (m, d) -> (n, m) float64."""
    from sklearn.metrics.pairwise import additive_chi2_kernel

    return -additive_chi2_kernel(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))


def _folds(y: np.ndarray, groups: np.ndarray, n_folds: int, seed: int):
    """(train, validation) index pairs: grouped by run when there are enough runs, else stratified."""
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    if len(np.unique(groups)) >= n_folds:
        return list(GroupKFold(n_folds).split(y, y, groups))
    splits = min(n_folds, int(min(y.sum(), len(y) - y.sum())))
    if splits < 2:
        return []
    return list(StratifiedKFold(splits, shuffle=True, random_state=seed).split(y, y))


def fit_tag(distances: np.ndarray, y: np.ndarray, groups: np.ndarray, *, c_grid, gammas, n_folds: int,
            seed: int) -> dict:
    """Cross-validate (C, gamma) and fit one tag's SVM on the precomputed chi-square distances.

    Parameters
    ----------
    distances : (n, n) chi-square distances of the training images.
    y : (n,) 0/1 labels of the tag. groups : (n,) run of every image.

    Returns
    -------
    dict with ``support`` (indices into the n images), ``dual`` (their coefficients), ``intercept``,
    ``gamma``, ``C`` and ``cv_ap`` (NaN when it could not be cross-validated). A tag with a single
    class in training gets no support vectors and a constant score of +-1.
    """
    from sklearn.metrics import average_precision_score
    from sklearn.svm import SVC

    if y.min() == y.max():
        return {"support": np.empty(0, np.int64), "dual": np.empty(0), "intercept": 1.0 if y[0] else -1.0,
                "gamma": float(gammas[0]), "C": float(c_grid[0]), "cv_ap": float("nan")}
    folds = _folds(y, groups, n_folds, seed)
    best = (-1.0, float(c_grid[len(c_grid) // 2]), float(gammas[len(gammas) // 2]))
    for gamma in gammas:
        kernel = np.exp(-gamma * distances)
        for c in c_grid:
            aps = []
            for train, valid in folds:
                if y[train].min() == y[train].max() or not y[valid].any():
                    continue
                svc = SVC(kernel="precomputed", C=c, class_weight="balanced")
                svc.fit(kernel[np.ix_(train, train)], y[train])
                aps.append(average_precision_score(y[valid], svc.decision_function(kernel[np.ix_(valid, train)])))
            if aps and np.mean(aps) > best[0]:
                best = (float(np.mean(aps)), float(c), float(gamma))
    cv_ap, c, gamma = best
    svc = SVC(kernel="precomputed", C=c, class_weight="balanced").fit(np.exp(-gamma * distances), y)
    return {"support": svc.support_.astype(np.int64), "dual": svc.dual_coef_[0].astype(np.float64),
            "intercept": float(svc.intercept_[0]), "gamma": gamma, "C": c,
            "cv_ap": cv_ap if cv_ap >= 0 else float("nan")}


def decision_scores(distances: np.ndarray, dual: np.ndarray, intercepts: np.ndarray,
                    gammas: np.ndarray) -> np.ndarray:
    """SVM scores (n, m) from distances (n, s) to the s support vectors, dual (s, m), per-tag gamma (m,)."""
    scores = np.empty((len(distances), len(intercepts)))
    for gamma in np.unique(gammas):
        tags = np.flatnonzero(gammas == gamma)
        scores[:, tags] = np.exp(-gamma * distances) @ dual[:, tags] + intercepts[tags]
    return scores


def svm_scores(features: np.ndarray, arrays: dict) -> np.ndarray:
    """(n, m) float32 scores of (n, d) features with a fitted model's arrays (support_features, dual,
    intercepts, gammas); only the intercepts when no tag kept a support vector."""
    support = arrays["support_features"]
    if not len(support) or not len(features):
        return np.tile(arrays["intercepts"], (len(features), 1)).astype(np.float32)
    return decision_scores(chi2_distances(features, support), arrays["dual"], arrays["intercepts"],
                           arrays["gammas"]).astype(np.float32)


def training_distances(blocks, n: int) -> np.ndarray:
    """(n, n) chi-square distances from an RDD of (row indices, (n_i, d) features) blocks.

    Each unordered pair of blocks is one task; only the upper triangle of blocks is computed.
    """
    pairs = (blocks.cartesian(blocks).filter(lambda ab: ab[0][0][0] <= ab[1][0][0])
             .map(lambda ab: (ab[0][0], ab[1][0], chi2_distances(ab[0][1], ab[1][1]).astype(np.float32))))
    out = np.zeros((n, n), dtype=np.float64)
    for rows, cols, block in pairs.collect():
        out[np.ix_(rows, cols)] = block
        out[np.ix_(cols, rows)] = block.T
    return out


class _SVMParams(HasFeaturesCol, HasOutputCol):
    """Params of the SVMs and their model: features (``featuresCol``) -> scores (``outputCol``)."""


class ChiSquareSVMs(Estimator, _SVMParams, HasLabelCol, HasSeed, HasImageIdCol, HasProgressInterval,
                    DefaultParamsReadable, DefaultParamsWritable):
    """Features + tags (``labelCol``: the tag vector of ``tags``) -> one exponential chi-square kernel
    SVM per label of ``labelSet``."""

    labelSet = param("labelSet", "'attributes20', 'top17', 'all', a group 'G1'..'G7', or tag names separated "
                     "by '|'", TypeConverters.toString)
    cGrid = param("cGrid", "SVM C values tried", TypeConverters.toListFloat)
    gammaScales = param("gammaScales", "gamma values tried, in units of 1 / mean chi-square distance",
                        TypeConverters.toListFloat)
    folds = param("folds", "cross-validation folds", TypeConverters.toInt)
    groupCol = param("groupCol", "column grouping near-duplicate images (folds never split a group)",
                     TypeConverters.toString)
    kernelBlocks = param("kernelBlocks", "row blocks of the training distance matrix", TypeConverters.toInt)

    @keyword_only
    def __init__(self, *, labelSet: str = "attributes20", cGrid=(0.1, 1.0, 10.0, 100.0), gammaScales=(0.5, 1.0, 2.0),
                 folds: int = 3, groupCol: str = "run_id", kernelBlocks: int = 4, featuresCol: str = "features",
                 outputCol: str = "scores", seed: int = 0, labelCol: str = "tags", imageIdCol: str = "image_id",
                 progressInterval: float = 30.0):
        super().__init__()
        self._setDefault(labelSet="attributes20", cGrid=[0.1, 1.0, 10.0, 100.0], gammaScales=[0.5, 1.0, 2.0],
                         folds=3, groupCol="run_id", kernelBlocks=4, featuresCol="features", outputCol="scores",
                         seed=0, labelCol="tags", imageIdCol="image_id", progressInterval=30.0)
        self._set(**self._input_kwargs)

    def label_spec(self):
        return label_spec(self.getOrDefault(self.labelSet))

    def _fit(self, dataset):
        from pyspark.sql import functions as F

        from xray_spark.spark import stage

        get = self.getOrDefault
        features_col, group_col, id_col = get(self.featuresCol), get(self.groupCol), get(self.imageIdCol)
        interval = get(self.progressInterval)
        usable = dataset.filter(F.col(features_col).isNotNull())
        meta = usable.select(id_col, group_col, get(self.labelCol)).orderBy(id_col).collect()   # (id, group, tags)
        if len(meta) < 2:
            raise ValueError(f"{len(meta)} training images with features: an SVM needs at least 2")
        index = {r[0]: i for i, r in enumerate(meta)}
        labels, names = tagmod.labels(np.array([r[2] for r in meta], dtype=np.int8), self.label_spec())
        groups = np.array([r[1] for r in meta])
        spark = dataset.sparkSession
        sc = spark.sparkContext
        shared_index = sc.broadcast(index)

        def to_block(rows):
            rows = list(rows)
            if rows:
                yield (np.array([shared_index.value[r[0]] for r in rows]), np.array([r[1] for r in rows], np.float32))

        blocks = (usable.select(id_col, features_col).repartition(get(self.kernelBlocks), id_col)
                  .rdd.mapPartitions(to_block).cache())
        with stage(spark, f"svm: chi-square distances of {len(meta)} training images", interval):
            distances = training_distances(blocks, len(meta))
        blocks.unpersist()
        mean = float(distances[np.triu_indices(len(meta), 1)].mean()) or 1.0
        gammas = [s / mean for s in get(self.gammaScales)]
        shared = sc.broadcast((distances.astype(np.float32), labels, groups))
        options = dict(c_grid=get(self.cGrid), gammas=gammas, n_folds=get(self.folds), seed=get(self.seed))

        def fit_one(j):
            d, y, g = shared.value
            return j, fit_tag(d.astype(np.float64), y[:, j].astype(int), g, **options)

        with stage(spark, f"svm: {len(names)} tags, C x gamma cross-validated", interval):
            fitted = dict(sc.parallelize(range(len(names)), len(names)).map(fit_one).collect())
        shared.destroy()
        support = np.unique(np.concatenate([fitted[j]["support"] for j in range(len(names))]))
        position = {s: p for p, s in enumerate(support)}
        dual = np.zeros((len(support), len(names)))
        for j in range(len(names)):
            dual[[position[s] for s in fitted[j]["support"]], j] = fitted[j]["dual"]
        support_ids = [meta[s][0] for s in support]
        rows = {r[0]: r[1] for r in usable.filter(F.col(id_col).isin(support_ids))
                .select(id_col, features_col).collect()}
        model = ChiSquareSVMModel(featuresCol=features_col, outputCol=get(self.outputCol), labelNames=names)
        model.set_arrays({
            "support_features": np.array([rows[i] for i in support_ids], np.float32).reshape(len(support), -1),
            "dual": dual, "intercepts": np.array([fitted[j]["intercept"] for j in range(len(names))]),
            "gammas": np.array([fitted[j]["gamma"] for j in range(len(names))]),
            "C": np.array([fitted[j]["C"] for j in range(len(names))]),
            "cv_ap": np.array([fitted[j]["cv_ap"] for j in range(len(names))]),
            "n_train": np.array([len(meta)])})
        return model


class ChiSquareSVMModel(Model, _SVMParams, ArraysReadWrite):
    """Features -> one SVM score per label (list<float> column, ``labelNames`` order)."""

    labelNames = param("labelNames", "names of the scored labels, in score order", TypeConverters.toListString)

    def __init__(self, *, featuresCol: str = "features", outputCol: str = "scores", labelNames=()):
        super().__init__()
        self._setDefault(featuresCol="features", outputCol="scores", labelNames=[])
        self._set(featuresCol=featuresCol, outputCol=outputCol, labelNames=list(labelNames))
        self.model_arrays = {}

    def arrays(self) -> dict:
        return self.model_arrays

    def set_arrays(self, arrays: dict) -> None:
        self.model_arrays = dict(arrays)

    def _transform(self, dataset):
        arrays = self.model_arrays
        in_col, out_col = self.getOrDefault(self.featuresCol), self.getOrDefault(self.outputCol)
        schema = pa.schema(list(columns.arrow_schema(dataset)) + [pa.field(out_col, pa.list_(pa.float32()))])

        def score(batches):
            for batch in batches:
                rows = batch.column(in_col).to_pylist()
                present = [np.asarray(r, np.float32) for r in rows if r is not None]
                width = arrays["support_features"].shape[1]
                it = iter(svm_scores(np.vstack(present) if present else np.empty((0, width), np.float32), arrays))
                out = [None if r is None else next(it) for r in rows]
                yield columns.with_columns(batch, schema, {out_col: columns.list_column(out, pa.float32())})

        return dataset.mapInArrow(score, columns.spark_schema(schema))
