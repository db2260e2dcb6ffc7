"""`xray-spark ensemble`: a model directory that averages the scores of several trained models
(``xray_spark.ensemble``), its thresholds chosen on labelled generated images."""
from __future__ import annotations

import time

from xray_spark import ensemble, modeldir
from xray_spark.jobs import JobError, model_directory, spark_session
from xray_spark.logs import summary


def add_arguments(parser) -> None:
    parser.add_argument("--members", nargs="+", required=True, metavar="NAME|DIR",
                        help="two or more model directories (names under paths.models, or paths) that score the "
                             "same tags, e.g. CNNs trained with other seeds or inputs")
    parser.add_argument("--images", required=True, metavar="URL",
                        help="labelled generated images to choose the thresholds on (xray-spark generate with a "
                             "seed the members were not trained on)")
    parser.add_argument("--output", required=True, metavar="NAME", help="name of the ensemble under paths.models")
    parser.add_argument("--inference-batch", type=int, default=32, metavar="N",
                        help="images per forward pass when embedding (every pass padded to it; default 32)")


def run(config, args) -> int:
    started = time.monotonic()
    if args.inference_batch < 1:
        raise JobError(f"--inference-batch = {args.inference_batch}: must be >= 1")
    if len(args.members) < 2:
        raise JobError(f"--members: {len(args.members)} given; an ensemble averages two or more models")
    members = [model_directory(config, m, f"--members {m}") for m in args.members]
    output = config.paths.local("models", args.output)
    if any(output.resolve() == m.resolve() for m in members):
        raise JobError(f"--output {args.output}: is one of the members; give another name")
    try:
        ensemble.check_members([modeldir.read_manifest(m) for m in members], "--members")
    except modeldir.ModelDirError as e:
        raise JobError(str(e)) from None
    with spark_session(config, "ensemble") as spark:
        try:
            manifest = ensemble.build(spark, members, args.images, output, args.output,
                                      predictions_url=config.paths.under("predictions", f"{args.output}-thresholds"),
                                      inference_batch=args.inference_batch, interval_s=config.progress.interval_s)
        except modeldir.ModelDirError as e:
            raise JobError(str(e)) from None
    validation = manifest["metrics"]["validation"]
    print(f"model {manifest['model_id']} in {output}: the mean of {len(members)} models; validation mAP "
          f"{validation['mAP']:.4f} on {validation['images']} images")
    summary("ensemble", time.monotonic() - started, "images", read=validation["images"])
    return 0
