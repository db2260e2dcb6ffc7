"""`xray-spark stream`: label frames as they land in the detectors' landing directory, exactly once
(``labelling.streaming``); stops on Ctrl-C or SIGTERM, after ``--max-batches`` or ``--timeout``, or,
with ``--available-now``, once what is there is labelled."""
from __future__ import annotations

import argparse
import os
import signal

from xray_spark.io.archive import ArchiveError
from xray_spark.jobs import JobError, embedding_model, model_directory, spark_session
from xray_spark.labelling.streaming import StreamError, run_stream


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--landing", metavar="DIR", help="landing directory <beamtime>/<run>/<files> "
                        "(default: stream.landing, else ingest.archive)")
    parser.add_argument("--checkpoint", metavar="DIR", help="the stream's checkpoint directory; a restart with the "
                        "same one resumes exactly where it stopped (default: stream.checkpoint)")
    parser.add_argument("--available-now", action="store_true",
                        help="label what is in the landing directory now, in batches, then stop (catch-up, tests)")
    parser.add_argument("--max-batches", type=int, metavar="N", help="stop after N micro-batches with files")
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help="stop after this many seconds")


def _stop(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run(config, args) -> int:
    landing = args.landing or config.stream.landing or config.ingest.archive
    if not os.path.isdir(landing):
        source = "--landing" if args.landing else "stream.landing" if config.stream.landing else "ingest.archive"
        raise JobError(f"{source} = {landing!r}: the landing directory does not exist (give --landing DIR, "
                       "or set stream.landing)")
    for name, value in (("--max-batches", args.max_batches), ("--timeout", args.timeout)):
        if value is not None and value <= 0:
            raise JobError(f"{name} {value}: must be > 0")
    models = config.stream.models if config.stream.models is not None else config.nightly.models
    key = "stream.models" if config.stream.models is not None else "nightly.models (stream.models is null)"
    if not models:
        raise JobError(f"{key} = []: the stream needs at least one model to label with (e.g. [cnn-top17])")
    for model in models:
        model_directory(config, model, key)
    if config.stream.embed_interval_s is not None:
        embedding_model(config, "the stream embeds its frames with it; stream.embed_interval_s = null leaves that "
                                "to nightly")
    signal.signal(signal.SIGTERM, _stop)
    with spark_session(config, "stream") as spark:
        try:
            run_stream(spark, config, landing, args.checkpoint, available_now=args.available_now,
                       max_batches=args.max_batches, timeout_s=args.timeout)
        except KeyboardInterrupt:
            pass                                    # stopped: the checkpoint holds where to resume
        except (ArchiveError, StreamError) as e:
            raise JobError(str(e)) from None
    return 0
