"""The bag-of-features stages on a real two-executor cluster: descriptors with skip reasons and
partition-independent bytes, k-means (own Lloyd and MLlib) recovering separated clusters, the
whole Pipeline fitted, saved, loaded and scoring held-out images well above chance, the stages
on a table whose columns are named otherwise, and every Param of a stage surviving save and load."""
import json
from pathlib import Path

import numpy as np
import pytest
from bof_images import FEATURES, toy_frame, toy_image
from pyspark.ml import Pipeline, PipelineModel

from xray_spark import modeldir, schema, tags
from xray_spark.bof import kmeans
from xray_spark.bof.scorer import write_model_dir
from xray_spark.bof.stages import PatchDescriptors, SpatialPyramid, VisualDictionary, VisualDictionaryModel
from xray_spark.bof.svm import ChiSquareSVMModel, ChiSquareSVMs
from xray_spark.metrics import evaluate

K = 16


def _bad_images(batches):
    """Rows the descriptors cannot use: empty, all masked, too small, truncated bytes."""
    for batch in batches:
        records = []
        for i in batch.column("id").to_pylist():
            size = 16 if i == 2 else 64
            mask = np.full((size, size), i == 1)
            record = schema.image_record(image_id=f"bad-{i}", source="synthetic", beamtime="t", run_id="r",
                                         frame=i, image=np.ones((size, size), np.float32), mask=mask,
                                         tag_names=[], provenance={})
            if i == 0:
                record.update(image=b"", height=0, width=0, mask=b"")
            if i == 3:
                record["image"] = record["image"][:100]
            records.append(record)
        yield schema.records_to_arrow(records)


def test_descriptors_skip_bad_images_with_reasons_and_do_not_depend_on_partitioning(spark):
    stage = PatchDescriptors(patchesPerImage=30, scales=[8, 16, 32], descriptorSize=8, seed=5)
    bad = spark.range(0, 4, numPartitions=2).mapInArrow(_bad_images, schema.spark_schema())
    reasons = {r.image_id: r.skip_reason for r in stage.transform(bad).collect()}
    assert reasons["bad-0"].startswith("empty") and reasons["bad-1"].startswith("all masked")
    assert reasons["bad-2"].startswith("too small") and reasons["bad-3"].startswith("corrupt")

    rows = {p: {r.image_id: (r.descriptors, r.patch_centres, r.n_patches)
                for r in stage.transform(toy_frame(spark, 12, partitions=p)).collect()} for p in (1, 3)}
    assert rows[1] == rows[3]
    first = rows[1]["toy-0-00000"]
    assert first[2] == 30 and len(first[0]) == 30 * 66 * 4 and len(first[1]) == 30 * 2 * 4
    assert "image" not in stage.transform(toy_frame(spark, 2)).columns


def test_kmeans_recovers_well_separated_clusters(spark):
    rng = np.random.default_rng(0)
    truth = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], np.float32)
    points = (truth[rng.integers(0, 4, 4000)] + rng.normal(0, 0.3, (4000, 3))).astype(np.float32)
    blocks = spark.sparkContext.parallelize(np.array_split(points, 4), 4).cache()
    start = kmeans.kmeans_plusplus_init(points[:500], 4, seed=1)
    own, inertia, iterations = kmeans.lloyd(spark, blocks, start, max_iter=20, tol=1e-6, chunk_rows=512)
    mllib = kmeans.mllib(spark, blocks, 4, max_iter=20, tol=1e-6, seed=1)
    for centres in (own, mllib):
        order = np.lexsort(np.round(centres).T[::-1])
        np.testing.assert_allclose(centres[order], truth[np.lexsort(truth.T[::-1])], atol=0.05)
    assert iterations < 20 and inertia / len(points) < 0.3 ** 2 * 3 * 1.1


def test_pipeline_fits_saves_loads_and_scores_well_above_chance(spark, tmp_path):
    train, test = toy_frame(spark, 160, seed=0), toy_frame(spark, 64, seed=1)
    pipeline = Pipeline(stages=[
        PatchDescriptors(patchesPerImage=50, scales=[8, 16, 32], descriptorSize=8, seed=1),
        VisualDictionary(k=K, maxIter=10, sampleSize=4000, initSampleSize=500, seed=1),
        SpatialPyramid(numWords=K, levels=3),
        ChiSquareSVMs(labelSet="|".join(FEATURES), cGrid=[1.0, 10.0], gammaScales=[1.0], folds=2, kernelBlocks=2)])
    model = pipeline.fit(train)
    path = str(tmp_path / "bof")
    model.write().save(path)
    loaded = PipelineModel.load(path)

    assert isinstance(loaded.stages[1], VisualDictionaryModel)
    np.testing.assert_array_equal(loaded.stages[1].centres, model.stages[1].centres)
    assert loaded.stages[1].centres.shape == (K, 66)
    rows = sorted(loaded.transform(test).select("image_id", "tags", "words", "features", "scores").collect())
    again = sorted(model.transform(test).select("image_id", "scores").collect())
    np.testing.assert_allclose([r.scores for r in rows], [r.scores for r in again], rtol=1e-5)

    features = np.array([r.features for r in rows])
    assert features.shape == (64, K * 21)
    np.testing.assert_allclose(features.sum(axis=1), 1.0, rtol=1e-5)
    assert all(len(r.words) == 50 and max(r.words) < K for r in rows)
    labels, names = tags.labels(np.array([r.tags for r in rows]), list(FEATURES))
    results = evaluate(np.array([r.scores for r in rows]), labels, names, method="BoF", label_set="toy")
    chance = labels.mean()
    assert results.n_scored == 3 and results.mean_ap > 0.8 > chance + 0.25, results

    # The same model as a model directory scores the same images the same way, without Spark.
    write_model_dir(tmp_path / "model", loaded, model_id="bof-toy", image_size=64, preprocessing={},
                    training={"images": 160})
    scorer = modeldir.load(tmp_path / "model")
    assert scorer.tags == list(FEATURES) and scorer.manifest["kind"] == "bof"
    images, masks, _ = zip(*(toy_image(int(r.image_id[-5:]), seed=1) for r in rows[:8]))
    np.testing.assert_allclose(scorer.score(np.stack(images), np.stack(masks), [r.image_id for r in rows[:8]]),
                               [r.scores for r in rows[:8]], rtol=1e-4, atol=1e-5)
    by_content = scorer.score(np.stack(images), np.stack(masks))     # no ids: seeded by the image bytes
    np.testing.assert_array_equal(scorer.score(np.stack(images[2:4]), np.stack(masks[2:4])), by_content[2:4])


def test_dictionary_rejects_too_few_patches(spark):
    descriptors = PatchDescriptors(patchesPerImage=4, scales=[8], descriptorSize=8).transform(toy_frame(spark, 2))
    with pytest.raises(ValueError, match="k = 50 words needs more"):
        VisualDictionary(k=50).fit(descriptors)


# Every column the stages read or write, renamed: a stage that used a name of its own would fail.
RENAMED = {"image_id": "frame_key", "image": "pixels", "mask": "bad_pixels", "height": "rows", "width": "cols",
           "tags": "labels", "run_id": "run"}
OUTPUTS = {"descriptors": "desc", "patch_centres": "where", "n_patches": "count", "skip_reason": "why",
           "words": "vocab", "features": "hist", "scores": "svm"}


def _small_pipeline(**cols) -> Pipeline:
    """The four stages, small, with the column Params ``cols`` gives (the default names when empty)."""
    c = {**{k: k for k in [*RENAMED, *OUTPUTS]}, **cols}
    return Pipeline(stages=[
        PatchDescriptors(patchesPerImage=20, scales=[8, 16], descriptorSize=8, seed=2, inputCol=c["image"],
                         maskCol=c["mask"], heightCol=c["height"], widthCol=c["width"], imageIdCol=c["image_id"],
                         outputCol=c["descriptors"], centresCol=c["patch_centres"], patchCountCol=c["n_patches"],
                         skipReasonCol=c["skip_reason"]),
        VisualDictionary(k=8, maxIter=2, sampleSize=2000, initSampleSize=300, seed=2, inputCol=c["descriptors"],
                         outputCol=c["words"], imageIdCol=c["image_id"], patchCountCol=c["n_patches"],
                         skipReasonCol=c["skip_reason"]),
        SpatialPyramid(numWords=8, levels=2, wordsCol=c["words"], centresCol=c["patch_centres"],
                       outputCol=c["features"]),
        ChiSquareSVMs(labelSet="|".join(FEATURES), cGrid=[1.0], gammaScales=[1.0], folds=2, kernelBlocks=2,
                      featuresCol=c["features"], labelCol=c["tags"], imageIdCol=c["image_id"], groupCol=c["run_id"],
                      outputCol=c["scores"])])


def test_stages_run_on_a_table_whose_columns_are_named_otherwise(spark):
    train, test = toy_frame(spark, 32, seed=0), toy_frame(spark, 8, seed=1)
    model = _small_pipeline(**RENAMED, **OUTPUTS).fit(train.withColumnsRenamed(RENAMED))
    out = model.transform(test.withColumnsRenamed(RENAMED))
    assert not set(out.columns) & {*RENAMED, *OUTPUTS, "pixels", "bad_pixels"}, out.columns
    assert {*RENAMED.values(), *OUTPUTS.values()} - {"pixels", "bad_pixels"} <= set(out.columns)
    renamed = sorted(out.select("frame_key", *OUTPUTS.values()).collect())
    # the same stages under the default names give the same descriptors (bytes) and nearly the same words:
    # two k-means fits may round their distributed sums differently (the partial sums arrive in task order)
    default = sorted(_small_pipeline().fit(train).transform(test).select("image_id", *OUTPUTS).collect())
    assert [tuple(r)[:5] for r in renamed] == [tuple(r)[:5] for r in default]
    words = np.array([w for r in renamed for w in r.vocab]), np.array([w for r in default for w in r.words])
    assert (words[0] == words[1]).mean() > 0.9
    # scores: finite and of the right shape; their values are not compared, since a few different words
    # can make the SVMs' cross-validation pick another C and gamma (seen once in a full run: scale 7 vs 0.4)
    assert np.isfinite([r.svm for r in renamed]).all() and np.isfinite([r.scores for r in default]).all()
    assert all(r.why is None and r["count"] == 20 and len(r.svm) == 3 for r in renamed)


def _other_than(value):
    """A value of the same type as a Param's default, different from it."""
    if isinstance(value, str):
        return f"{value}_x"
    if isinstance(value, int):
        return value + 3
    if isinstance(value, float):
        return value * 2 + 0.25
    return [*value[::-1], value[0] if value else "x"]


STAGES = [(PatchDescriptors, {}), (VisualDictionary, {"implementation": "mllib"}), (SpatialPyramid, {}),
          (ChiSquareSVMs, {"labelSet": "top17"}),
          (VisualDictionaryModel, {"centres": np.arange(6, dtype=np.float32).reshape(2, 3)}),
          (ChiSquareSVMModel, {"support_features": np.ones((2, 4), np.float32), "intercepts": np.array([0.5])})]


def _named(param_map: dict) -> dict:
    return {p.name: v for p, v in param_map.items()}


@pytest.mark.parametrize("cls, special", STAGES, ids=[cls.__name__ for cls, _ in STAGES])
def test_a_saved_and_reloaded_stage_keeps_every_param_value(spark, tmp_path, cls, special):
    defaults = cls()
    values = {p.name: special.get(p.name, _other_than(defaults.getOrDefault(p))) for p in defaults.params}
    stage = cls(**values)
    assert all(stage.getOrDefault(p) != defaults.getOrDefault(p.name) for p in stage.params)
    arrays = {k: v for k, v in special.items() if k not in values}
    for s in (stage, defaults):
        if arrays:
            s.set_arrays(arrays)
        s.save(str(tmp_path / s.uid))

    loaded = cls.load(str(tmp_path / stage.uid))
    assert loaded.uid == stage.uid and _named(loaded.extractParamMap()) == values
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded.arrays()[name], array)
    again = cls.load(str(tmp_path / defaults.uid))       # a stage saved with its defaults keeps them as defaults
    assert _named(again.extractParamMap()) == _named(defaults.extractParamMap())
    assert [again.isSet(p) for p in again.params] == [defaults.isSet(p) for p in defaults.params]


# The Params the stages did not have before they named every column: a stage saved then loads with
# them at today's defaults (the names it used to hard-code).
BEFORE = {PatchDescriptors: {"inputCol", "maskCol", "heightCol", "widthCol", "imageIdCol", "outputCol", "centresCol",
                              "patchCountCol", "skipReasonCol"},
          VisualDictionary: {"imageIdCol", "patchCountCol", "skipReasonCol"}, SpatialPyramid: {"centresCol"},
          ChiSquareSVMs: {"labelCol", "imageIdCol", "progressInterval"}}


@pytest.mark.parametrize("cls", list(BEFORE), ids=[cls.__name__ for cls in BEFORE])
def test_a_stage_saved_before_the_column_params_loads_with_the_old_names(spark, tmp_path, cls):
    defaults = cls()
    stage = cls(**{p.name: _other_than(defaults.getOrDefault(p)) for p in defaults.params if p.name not in BEFORE[cls]})
    stage.save(str(tmp_path / "stage"))
    part = next((tmp_path / "stage" / "metadata").glob("part-*"))
    metadata = json.loads(part.read_text())
    for key in ("paramMap", "defaultParamMap"):
        metadata[key] = {k: v for k, v in metadata[key].items() if k not in BEFORE[cls]}
    part.write_text(json.dumps(metadata))
    for crc in Path(part.parent).glob(".*.crc"):
        crc.unlink()
    loaded = cls.load(str(tmp_path / "stage"))
    assert _named(loaded.extractParamMap()) == _named(stage.extractParamMap())
    assert all(not loaded.isSet(loaded.getParam(name)) for name in BEFORE[cls])
