"""`xray-spark adapt`: a CNN adapted to an unlabelled archive by re-estimating its batch-norm
statistics on the archive's images (AdaBN, ``cnn.adaptation``); writes a new model directory."""
from __future__ import annotations

import time

from xray_spark.cnn.adaptation import AdaptationError, adapt
from xray_spark.jobs import JobError, model_directory, spark_session
from xray_spark.logs import summary
from xray_spark.paths import SHIPPED_MODEL


def add_arguments(parser) -> None:
    parser.add_argument("--model", default=SHIPPED_MODEL, metavar="NAME|DIR",
                        help=f"the CNN model directory to adapt, or its name under paths.models (default: {SHIPPED_MODEL})")
    parser.add_argument("--images", metavar="URL",
                        help="images table of the target frames, e.g. an ingested archive (default: paths.images); "
                             "labels are not used")
    parser.add_argument("--output", metavar="NAME", help="name of the adapted model under paths.models "
                                                          "(default: <model name>-adapted)")


def run(config, args) -> int:
    started = time.monotonic()
    directory = model_directory(config, args.model)
    name = args.output or f"{directory.name}-adapted"
    output = config.paths.local("models", name)
    if output.resolve() == directory.resolve():
        raise JobError(f"--output {name}: is the model being adapted; give another name")
    images = args.images or config.paths.url("images")
    with spark_session(config, "adapt") as spark:
        try:
            manifest = adapt(spark, directory, images, output, name=name, interval_s=config.progress.interval_s)
        except AdaptationError as e:
            raise JobError(str(e)) from None
    n = manifest["adaptation"]["images"]
    print(f"model {manifest['model_id']} in {output}: {manifest['adaptation']['source_model_id']} with the "
          f"batch-norm statistics of {n} images of {images}")
    summary("adapt", time.monotonic() - started, "images", read=n)
    return 0
