"""`xray-spark train_cnn`: the AlexNet multi-label CNN trained with Horovod on Spark, fed from the
images table by Petastorm (``cnn.training``); a rerun resumes from the last checkpoint."""
from __future__ import annotations

import time

from xray_spark import tags as tagmod
from xray_spark.cnn.training import train
from xray_spark.jobs import JobError, spark_session
from xray_spark.logs import summary


def add_arguments(parser) -> None:
    parser.add_argument("--images", metavar="URL", help="images table to train on (default: paths.images)")
    parser.add_argument("--stop-after-epochs", type=int, metavar="N",
                        help="train at most N epochs in this invocation, then stop (a rerun resumes)")
    parser.add_argument("--fresh", action="store_true",
                        help="discard this model's checkpoints and split, and start over")


def run(config, args) -> int:
    if args.stop_after_epochs is not None and args.stop_after_epochs < 1:
        raise JobError(f"--stop-after-epochs = {args.stop_after_epochs}: must be >= 1")
    try:
        tagmod.resolve(config.cnn.tag_set)
    except tagmod.UnknownTagError as e:
        raise JobError(f"cnn.tag_set: {e}") from None
    started = time.monotonic()
    with spark_session(config, "train_cnn") as spark:
        try:
            results = train(spark, config, args.images or config.paths.url("images"),
                            stop_after_epochs=args.stop_after_epochs, fresh=args.fresh)
        except (ValueError, OSError) as e:  # no usable split or checkpoint: say why, no traceback
            raise JobError(str(e)) from None
    first = results[0]
    seen = len(first["history"]) * first["steps_per_epoch"] * config.cnn.batch_size * first["ranks"]
    epochs_done = first["initial_epoch"] + len(first["history"])
    if first["finished"]:
        m, directory = first["manifest"], config.paths.local("models", config.cnn.model_name)
        print(f"model {m['model_id']} in {directory}: validation mAP "
              f"{m['metrics']['validation']['mAP']:.4f} on {m['metrics']['validation']['images']} images")
    else:
        print(f"stopped after epoch {epochs_done}/{config.cnn.epochs}; rerun the same command to resume")
    summary("train_cnn", time.monotonic() - started, "images", read=seen)
    return 0
