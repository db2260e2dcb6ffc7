"""`xray-spark embed`: the CNN and physics embeddings of every image of an images table into the
`embeddings` table (``explore.embeddings``), then the faiss index beside it for interactive
similar-image search (``explore.vector_index``, kind ``explore.index``)."""
from __future__ import annotations

import time

from xray_spark import modeldir
from xray_spark.explore.embeddings import EmbeddingSettings, check_model, embed
from xray_spark.explore.vector_index import build_index
from xray_spark.jobs import JobError, spark_session
from xray_spark.logs import summary


def add_arguments(parser) -> None:
    parser.add_argument("--model", metavar="NAME|DIR",
                        help="CNN model directory, or its name under paths.models (default: explore.model)")
    parser.add_argument("--images", metavar="URL", help="images table to embed (default: paths.images)")
    parser.add_argument("--output", metavar="URL", help="embeddings table to write (default: paths.embeddings)")
    parser.add_argument("--index-only", action="store_true",
                        help="only (re)build the index of the existing embeddings table")


def run(config, args) -> int:
    started = time.monotonic()
    directory = config.paths.model_dir(args.model or config.explore.model)
    try:
        manifest = check_model(directory)      # fail before Spark starts
        settings = EmbeddingSettings.from_config(config)
    except (modeldir.ModelDirError, ValueError) as e:
        raise JobError(str(e)) from None
    output = args.output or config.paths.url("embeddings")
    result = {"rows": 0, "embedded": 0, "image_space": 0}
    with spark_session(config, "embed") as spark:
        if not args.index_only:
            result = embed(spark, directory, args.images or config.paths.url("images"), output, settings,
                           row_group_size_mb=config.tables.row_group_size_mb, interval_s=config.progress.interval_s)
            print(f"embeddings of {result['model_id']} ({result['dimension']} numbers each) written to {output}")
        if config.explore.index != "none":
            facts = build_index(spark, output, manifest["model_id"], config.explore.index)
            print(f"faiss {facts['kind']} index of {facts['rows']} embeddings written beside {output}")
    summary("embed", time.monotonic() - started, "images", read=result["rows"], written=result["embedded"],
            image_space=result["image_space"])
    return 0
