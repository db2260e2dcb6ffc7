"""`xray-spark similar --image ID|FILE`: the nearest frames of an image in the `embeddings` table, with
their distance and tags, printed and drawn as a contact sheet PNG (``explore.neighbours``: the faiss
index beside the table when it is current, else an exact search on Spark)."""
from __future__ import annotations

import contextlib
import functools
import os
import re
import time
from pathlib import Path

from xray_spark import modeldir, schema
from xray_spark.explore import contact_sheet
from xray_spark.explore.embeddings import EmbeddingSettings, PenultimateLayer, check_model
from xray_spark.explore.neighbours import search
from xray_spark.explore.query_image import QueryError, query_by_file, query_by_id, rows_by_id
from xray_spark.jobs import JobError, spark_session
from xray_spark.logs import summary


def add_arguments(parser) -> None:
    parser.add_argument("--image", required=True, metavar="ID|FILE",
                        help="an image_id of the images table, or a detector file (read and preprocessed as ingest does)")
    parser.add_argument("--frame", type=int, default=0, help="frame of a multi-frame FILE (default 0)")
    parser.add_argument("--k", type=int, metavar="K", help="neighbours to return (default: explore.k)")
    parser.add_argument("--images", metavar="TABLE", help="images table of the ids and thumbnails (default: paths.images)")
    parser.add_argument("--embeddings", metavar="URL", help="embeddings table searched (default: paths.embeddings)")
    parser.add_argument("--model", metavar="NAME|DIR", help="CNN of the embeddings (default: explore.model)")
    parser.add_argument("--search", choices=["auto", "index", "exact"], default="auto",
                        help="auto: the faiss index when current, else exact on Spark (default); index; exact")
    parser.add_argument("--output", metavar="PNG", help="contact sheet (default: paths.reports/similar/<query>.png)")


def run(config, args) -> int:
    started = time.monotonic()
    k = args.k or config.explore.k
    if k < 1:
        raise JobError(f"--k {k}: must be >= 1")
    directory = config.paths.model_dir(args.model or config.explore.model)
    try:
        model_id = check_model(directory)["model_id"]
        settings = EmbeddingSettings.from_config(config)
    except (modeldir.ModelDirError, ValueError) as e:
        raise JobError(str(e)) from None
    images_url = args.images or config.paths.url("images")
    embeddings_url = args.embeddings or config.paths.url("embeddings")
    network = functools.cache(lambda: PenultimateLayer(directory))
    with contextlib.ExitStack() as stack:
        sessions = functools.cache(lambda: stack.enter_context(spark_session(config, "similar")))
        try:
            if os.path.isfile(args.image):
                query = query_by_file(args.image, args.frame, config, network(), settings)
            else:
                query = query_by_id(args.image, embeddings_url, images_url, model_id, network, settings)
            found = search(embeddings_url, model_id, query.embedding, k, how=args.search,
                           probe=config.explore.index_probe, spark_factory=sessions)
        except (QueryError, FileNotFoundError, ValueError) as e:
            raise JobError(str(e)) from None
    thumbnails = {r["image_id"]: r for r in rows_by_id(images_url, schema.IMAGES, [r["image_id"] for r in found.rows],
                                                        ["image_id", "height", "width", "image", "mask"])}
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(args.image))[:80]
    output = Path(args.output) if args.output else config.paths.local("reports", "similar", f"{slug}.png")
    contact_sheet.draw(query.label, query.image, found.rows, thumbnails, output, found.method)
    print(f"{len(found.rows)} nearest frames of {query.label}, by {found.method}:")
    print(contact_sheet.table(found.rows), end="")
    print(f"contact sheet: {output}")
    summary("similar", time.monotonic() - started, "queries", read=1, written=len(found.rows))
    return 0
