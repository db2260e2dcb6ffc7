"""`xray-spark adapt`: a CNN adapted to an archive of real frames; writes a new model directory.

``--method adabn`` (default) re-estimates its batch-norm statistics on the archive's images
(``cnn.adaptation``); ``--method self-training`` trains it on with its own confident tags on the
archive's images as labels, mixed with generated images (``cnn.self_training``, settings ``adapt``).
Neither reads a label of the archive. ``--method tagged`` trains it on with the tags a scientist gave
some of the archive's frames (``--labels``, a CSV), mixed with generated images (``cnn.tagged_training``)."""
from __future__ import annotations

import time
from pathlib import Path

from xray_spark.cnn.adaptation import AdaptationError, adapt
from xray_spark.cnn.self_training import self_train
from xray_spark.cnn.tagged_training import csv_tags, train_on_tagged
from xray_spark.jobs import JobError, model_directory, spark_session
from xray_spark.logs import summary
from xray_spark.paths import SHIPPED_MODEL


def add_arguments(parser) -> None:
    parser.add_argument("--model", default=SHIPPED_MODEL, metavar="NAME|DIR",
                        help=f"the CNN model directory to adapt, or its name under paths.models (default: {SHIPPED_MODEL})")
    parser.add_argument("--images", metavar="URL",
                        help="images table of the target frames, e.g. an ingested archive (default: paths.images); "
                             "its labels are not used (--method tagged: --labels gives them)")
    parser.add_argument("--output", metavar="NAME", help="name of the adapted model under paths.models "
                                                          "(default: <model name>-adapted)")
    parser.add_argument("--method", choices=["adabn", "self-training", "tagged"], default="adabn",
                        help="adabn: batch-norm statistics of the target frames (minutes); self-training: train on "
                             "with the model's confident tags on the target frames (needs --synthetic); tagged: "
                             "train on with the tags of --labels (needs --synthetic)")
    parser.add_argument("--synthetic", metavar="URL",
                        help="self-training, tagged: images table of generated images with exact tags to mix in "
                             "(xray-spark generate), e.g. the one the model was trained on")
    parser.add_argument("--labels", metavar="CSV",
                        help="tagged: the frames' tags, a CSV with file (relative to the archive root), frame_index "
                             "and a column per tag holding 1, 0 or nothing (as datasets/real_dev/labels.csv)")


def run(config, args) -> int:
    started = time.monotonic()
    directory = model_directory(config, args.model)
    name = args.output or f"{directory.name}-adapted"
    output = config.paths.local("models", name)
    if output.resolve() == directory.resolve():
        raise JobError(f"--output {name}: is the model being adapted; give another name")
    if args.method != "adabn" and not args.synthetic:
        raise JobError(f"--method {args.method} needs --synthetic URL: generated images with exact tags to mix "
                       "with the target frames (make them with xray-spark generate)")
    if (args.method == "tagged") != bool(args.labels):
        raise JobError("--labels CSV goes with --method tagged, and --method tagged needs it: the frames' tags "
                       "(file, frame_index, a column per tag)")
    if args.labels:
        if not Path(args.labels).is_file():
            raise JobError(f"--labels {args.labels}: no such file")
        try:
            csv_tags(args.labels)
        except ValueError as e:
            raise JobError(str(e)) from None
    images = args.images or config.paths.url("images")
    with spark_session(config, "adapt") as spark:
        try:
            if args.method == "adabn":
                manifest = adapt(spark, directory, images, output, name=name, interval_s=config.progress.interval_s)
            elif args.method == "self-training":
                manifest = self_train(spark, config, directory, images, args.synthetic, name=name)
            else:
                manifest = train_on_tagged(spark, config, directory, images, args.labels, args.synthetic, name=name)
        except (AdaptationError, ValueError) as e:
            raise JobError(str(e)) from None
    n = manifest["adaptation"]["images"]
    how = {"adabn": "with the batch-norm statistics of", "self-training": "self-trained on the confident tags of",
           "tagged": "trained on the tagged frames among"}[args.method]
    print(f"model {manifest['model_id']} in {output}: {manifest['adaptation']['source_model_id']} {how} "
          f"{n} images of {images}")
    summary("adapt", time.monotonic() - started, "images", read=n)
    return 0
