"""`xray-spark train_svm`: one chi-square SVM per label of ``bof.label_set`` on the training runs'
features, saved under ``<models>/bof/svm-<labels>``, and the whole fitted bag-of-features
``PipelineModel`` (descriptors, dictionary, pyramid, SVMs) under ``<models>/bof/pipeline-<labels>``
to score any images table in one step; for a label set of vocabulary tags also the model directory
``<models>/bof/model-<labels>`` (``modeldir``, kind ``bof``) that ``predict`` and ``nightly`` load."""
from __future__ import annotations

import time

from pyspark.ml import PipelineModel
from pyspark.sql import functions as F

from xray_spark.bof import pipeline
from xray_spark.bof.scorer import write_model_dir
from xray_spark.bof.stages import VisualDictionaryModel
from xray_spark.config import to_dict
from xray_spark.logs import summary


def add_arguments(parser) -> None:
    parser.add_argument("--features", metavar="URL", help="features table (default: paths.features)")


def n_train_images(model) -> int:
    return int(model.arrays()["n_train"][0])


def run(config, args) -> int:
    from xray_spark.spark import build_session

    started = time.monotonic()
    spark = build_session(config, "train_svm")
    try:
        features = spark.read.parquet(args.features or config.paths.url("features"))
        train = features.filter((F.col("split") == "train") & F.col("labelled") & F.col("features").isNotNull())
        descriptors, _, pyramid, svms = pipeline.stages(config)
        model = svms.fit(train)
        slug = pipeline.label_slug(config.bof.label_set)
        model.write().overwrite().save(pipeline.model_url(config, f"svm-{slug}"))
        dictionary = VisualDictionaryModel.load(pipeline.model_url(config, "dictionary"))
        fitted = PipelineModel([descriptors, dictionary, pyramid, model])
        fitted.write().overwrite().save(pipeline.model_url(config, f"pipeline-{slug}"))
        if config.bof.label_set != "attributes20":   # a model directory scores vocabulary tags
            manifest = write_model_dir(
                pipeline.model_url(config, f"model-{slug}"), fitted, model_id=f"bof-{slug}",
                image_size=config.tables.image_size, preprocessing=to_dict(config)["preprocess"],
                training={"features": args.features or config.paths.url("features"), "images": n_train_images(model),
                          "bof": to_dict(config)["bof"]},
                metrics={"cv_ap": dict(zip(model.getOrDefault(model.labelNames), model.arrays()["cv_ap"].tolist()))})
            print(f"model directory for predict/nightly: {manifest.parent}")
        summary("train_svm", time.monotonic() - started, read=n_train_images(model),
                written=len(model.getOrDefault(model.labelNames)))
        for name, c, gamma, ap in zip(model.getOrDefault(model.labelNames), model.arrays()["C"],
                                      model.arrays()["gammas"], model.arrays()["cv_ap"]):
            print(f"{name}: C={c:g} gamma={gamma:.4g} cross-validated AP={ap:.4f}")
    finally:
        spark.stop()
    return 0
