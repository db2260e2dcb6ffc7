"""Embeddings of images: the vectors that similar-image search, clusters and change points compare
(the `embeddings` table, ``schema.EMBEDDINGS``, one row per image and CNN).

Per image, on the executors (``embed_batches``, a ``mapInArrow`` function over rows with the
`images` table's columns, so ``embed``, ``nightly`` and the stream share it):

- ``cnn``: the activations of the CNN's penultimate layer (``fc7`` of ``cnn.model``: what the
  network knows about the image just before it names tags), with the model's tag scores (the
  sigmoid outputs; a part of the embedding too) and predicted tags from the same forward pass (the
  detector tags of a real file that states its detector are the file's, as `predict` labels them);
- ``profile`` and ``anisotropy``: the physics descriptors of ``explore.profiles`` (I(q) and its
  spread over azimuth on a fixed log-q grid, pyFAI), or their image-space equivalents;
- ``embedding``: the four parts (penultimate layer, profile, anisotropy, tag scores), each scaled
  to unit length and weighted by the square root of its share of the ``explore.weight_*``,
  concatenated: a unit vector (shorter only when a part is all zeros). The squared distance between
  two embeddings is the weighted mean of the parts' squared distances (each part compares by
  direction, like a cosine). The default weights are those that retrieved frames with the same tags
  best on a validation set (``python -m bench retrieval``); the tag scores and the physics each add
  a little to the penultimate layer there, and the physics alone is far weaker.

Deterministic: a forward pass always runs on a full batch of ``inference_batch`` images (the last
one padded with blank images): TensorFlow's result for an image depends on the batch's size but not
on its position or its neighbours, so the vectors are the same bytes whatever the partitioning, and
the same as a single-process call (``embed_rows``).
"""
from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from xray_spark import geometry as geom
from xray_spark import modeldir, schema
from xray_spark.ensemble import mean_scores, member_dirs
from xray_spark.explore.profiles import ProfileGrid, describe
from xray_spark.io import partitions as parts
from xray_spark.io import tables
from xray_spark.labelling import detector_tags
from xray_spark.spark import stage
from xray_spark.worker import freeze_imports

log = logging.getLogger(__name__)

PARTS = ("cnn", "profile", "anisotropy", "scores")
INPUT_COLUMNS = ["image_id", "beamtime", "run_id", "frame", "provenance", "height", "width", "image", "mask",
                 *geom.COLUMNS]


@dataclass(frozen=True)
class EmbeddingSettings:
    """What an executor needs besides the model: the grids, the weights and the stored images' scale."""
    grid: ProfileGrid
    weights: tuple[float, ...]          # of PARTS: cnn, profile, anisotropy, scores
    full_scale_counts: float
    letterbox: bool

    def __post_init__(self):
        if len(self.weights) != len(PARTS) or min(self.weights) < 0 or sum(self.weights) <= 0:
            raise ValueError(f"explore.weight_cnn, weight_profile, weight_anisotropy, weight_scores = {self.weights}: "
                             "each must be >= 0 and at least one > 0")

    @classmethod
    def from_config(cls, config) -> EmbeddingSettings:
        e = config.explore
        return cls(ProfileGrid.from_config(e), (e.weight_cnn, e.weight_profile, e.weight_anisotropy, e.weight_scores),
                   config.preprocess.full_scale_counts, config.preprocess.letterbox)


class PenultimateLayer:
    """A CNN model directory's network with two outputs: its penultimate layer and its tag scores.

    For an ensemble of CNNs (``xray_spark.ensemble``) the penultimate layers of its members,
    concatenated, and the ensemble's (mean) scores."""

    def __init__(self, directory: str | Path):
        manifest = check_model(directory)
        scorer = modeldir.load(directory)
        from tensorflow import keras

        members = getattr(scorer, "members", [scorer])
        self.models = [keras.Model(m.model.inputs, [m.model.layers[-1].input, m.model.output]) for m in members]
        self.columns = getattr(scorer, "columns", [list(range(len(scorer.tags)))])
        self.manifest, self.tags, self.thresholds = manifest, scorer.tags, scorer.thresholds
        self.batch = scorer.batch

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(penultimate (n, units), scores (n, n_tags)) of stored images (n, H, W), float32."""
        n, features, scores = len(images), [], []
        for start in range(0, n, self.batch):
            block = np.zeros((self.batch, *images.shape[1:], 1), np.float32)     # always a full batch
            chunk = images[start:start + self.batch]
            block[:len(chunk), ..., 0] = chunk
            outputs = [model(block, training=False) for model in self.models]
            features.append(np.concatenate([hidden.numpy()[:len(chunk)] for hidden, _ in outputs], axis=1))
            scores.append(mean_scores([tag_scores.numpy()[:len(chunk)] for _, tag_scores in outputs], self.columns))
        return np.concatenate(features), np.concatenate(scores)


def cnn_manifests(directory: str | Path, manifest: dict) -> list[dict]:
    """The manifests of the CNNs behind ``directory``: itself, or an ensemble's members."""
    if manifest["kind"] != "ensemble":
        return [manifest]
    return [modeldir.read_manifest(d) for d in member_dirs(directory, manifest)]


def check_model(directory: str | Path) -> dict:
    """The manifest of ``directory`` when it is a model with a penultimate layer (a CNN, or an
    ensemble of CNNs), else a ``ModelDirError`` saying what the model is and what is needed."""
    manifest = modeldir.read_manifest(directory)
    for m in cnn_manifests(directory, manifest):
        if m["kind"] != "cnn":
            raise modeldir.ModelDirError(
                f"{directory}: model {m['model_id']!r} is of kind {m['kind']!r}, which has no "
                "penultimate layer; embeddings need a CNN model directory (kind 'cnn', or an ensemble of "
                "CNNs), e.g. cnn-top17")
    return manifest


@functools.lru_cache(maxsize=2)
def network_of(directory: str, model_id: str) -> PenultimateLayer:
    """Loaded once per Python worker (keyed by model id too: a retrained model is reloaded)."""
    return PenultimateLayer(directory)


def unit_parts(parts: list[np.ndarray], weights) -> np.ndarray:
    """The combined embedding of (n, d_i) parts: each row of each part scaled to unit length, times
    sqrt(weight / sum of weights), concatenated; float32 (n, sum d_i).

    A row is unit length unless one of its parts is all zeros (a blank frame's profile, say: it
    stays zero and the row shorter), so the squared distance of two rows is always the weighted mean
    of their parts' squared distances.
    """
    total = float(sum(weights))
    scaled = []
    for part, weight in zip(parts, weights):
        part = np.asarray(part, np.float64)
        norm = np.linalg.norm(part, axis=1, keepdims=True)
        scaled.append(np.sqrt(weight / total) * part / np.where(norm > 0, norm, 1.0))
    return np.concatenate(scaled, axis=1).astype(np.float32)


def _valid(image: bytes, mask: bytes, height: int, width: int) -> bool:
    return height > 0 and width > 0 and len(image) == 4 * height * width and len(mask) == height * width


def embed_rows(rows: dict, network: PenultimateLayer, settings: EmbeddingSettings) -> pa.RecordBatch:
    """Rows of the `images` table (a dict of columns, ``INPUT_COLUMNS`` at least) -> a batch of the
    `embeddings` table. A row whose image bytes do not match its shape gets null vectors."""
    n = len(rows["image_id"])
    out = {name: [None] * n for name in ("cnn", "profile_axis", "profile", "anisotropy", "embedding", "scores",
                                         "tag_names")}
    ok = [_valid(*r) for r in zip(rows["image"], rows["mask"], rows["height"], rows["width"])]
    for h, w in sorted({(rows["height"][i], rows["width"][i]) for i in range(n) if ok[i]}):
        members = [i for i in range(n) if ok[i] and (rows["height"][i], rows["width"][i]) == (h, w)]
        images = schema.decode_images([rows["image"][i] for i in members], h, w)
        masks = schema.decode_masks([rows["mask"][i] for i in members], h, w)
        hidden, scores = network(images)
        scores = np.stack([detector_tags.with_stated_detector(scores[j], network.tags, detector_tags.stated_detector(
            rows["provenance"][i], rows["detector"][i])) for j, i in enumerate(members)])    # as `predict` labels
        physics = [describe(images[j], masks[j], {c: rows[c][i] for c in geom.COLUMNS}, settings.grid,
                            full_scale_counts=settings.full_scale_counts, letterbox=settings.letterbox)
                   for j, i in enumerate(members)]
        profiles, anisotropies = np.stack([p[1] for p in physics]), np.stack([p[2] for p in physics])
        embedding = unit_parts([hidden, profiles, anisotropies, scores], settings.weights)
        predicted = modeldir.predicted_tags(scores, network.thresholds, network.tags)
        for j, i in enumerate(members):
            out["cnn"][i], out["scores"][i], out["tag_names"][i] = hidden[j], scores[j], predicted[j]
            out["profile_axis"][i], out["profile"][i], out["anisotropy"][i] = physics[j]
            out["embedding"][i] = embedding[j]
    return pa.RecordBatch.from_pydict({
        "image_id": rows["image_id"], "beamtime": rows["beamtime"], "run_id": rows["run_id"],
        "frame": rows["frame"], "path": [json.loads(p or "{}").get("path") for p in rows["provenance"]],
        "frame_in_file": rows["frame"], "model_id": [network.manifest["model_id"]] * n, **out,
        "scored_tags": [network.tags] * n}, schema=schema.EMBEDDINGS)


def embed_batches(batches, directory: str, model_id: str, settings: EmbeddingSettings):
    """mapInArrow function: load (or reuse) the network, embed every batch of image rows."""
    freeze_imports()
    network = network_of(directory, model_id)
    for batch in batches:
        yield embed_rows(batch.to_pydict(), network, settings)


def embed_images(images, directory: str | Path, settings: EmbeddingSettings):
    """The lazy `embeddings` DataFrame of a DataFrame of image rows (the `images` table's columns)."""
    manifest = check_model(directory)
    return images.select(*INPUT_COLUMNS).mapInArrow(
        functools.partial(embed_batches, directory=str(directory), model_id=manifest["model_id"], settings=settings),
        schema.spark_schema(schema.EMBEDDINGS))


def in_run_order(embeddings):
    """``embeddings`` with ``frame`` = each image's place in its run's acquisition order, from 0: by
    file path (detectors number their files), then frame within the file. An archive run of
    single-frame files has frame 0 in every file; change points and timelines need the run's order."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = Window.partitionBy("beamtime", "run_id").orderBy(F.col("path").asc_nulls_first(), "frame_in_file",
                                                             "image_id")
    return embeddings.withColumn("frame", (F.row_number().over(order) - 1).cast("long")).select(
        *schema.EMBEDDINGS.names)


def as_matrix(vectors) -> np.ndarray:
    """An Arrow list column of equal-length vectors (no nulls; Array or ChunkedArray) as (n, d) float32."""
    if isinstance(vectors, pa.ChunkedArray):
        vectors = pa.concat_arrays(vectors.chunks) if vectors.num_chunks else pa.array([], vectors.type)
    values = np.asarray(vectors.flatten(), np.float32)
    if len(vectors) and values.size % len(vectors):
        raise ValueError(f"embedding: {len(vectors)} vectors of unequal lengths ({values.size} numbers); "
                         "one table holds the embeddings of one model")
    return values.reshape(len(vectors), -1)


def read_embeddings(spark, url: str):
    """The `embeddings` table at ``url`` with its contract's types (partition columns as strings)."""
    return spark.read.schema(schema.spark_schema(schema.EMBEDDINGS)).parquet(url)


def embed(spark, directory: str | Path, images_url: str, output_url: str, settings: EmbeddingSettings, *,
          row_group_size_mb: int = 32, interval_s: float = 30.0) -> dict:
    """Embed every image of ``images_url`` with the CNN of ``directory`` into the `embeddings` table at
    ``output_url`` (partitioned by beamtime and run, as the images; a rerun replaces it)."""
    manifest = check_model(directory)       # a bad model directory fails here, on the driver
    images = spark.read.schema(schema.spark_schema()).parquet(images_url)
    with stage(spark, f"embed: {manifest['model_id']}", interval_s):
        tables.write_table(in_run_order(embed_images(images, directory, settings)), output_url, row_group_size_mb,
                           partition_by=schema.PARTITION_KEYS)
    counts = read_embeddings(spark, output_url).selectExpr(
        "count(*) AS rows", "count(embedding) AS embedded", "count_if(profile_axis = 'radius') AS image_space").first()
    return {"model_id": manifest["model_id"], "rows": counts["rows"], "embedded": counts["embedded"],
            "image_space": counts["image_space"], "dimension": embedding_dimension(directory, settings)}


def embedding_dimension(directory: str | Path, settings: EmbeddingSettings) -> int:
    """Length of the combined embedding: the penultimate layers' units, the two grids, the tags."""
    manifest = check_model(directory)
    units = sum(int(m["architecture"]["dense_units"]) for m in cnn_manifests(directory, manifest))
    return units + 2 * settings.grid.bins + len(manifest["tags"])


def embed_new_images(spark, config, read_paths) -> int:
    """Embed the archive images that the `embeddings` table (``paths.embeddings``) lacks for the
    ``explore.model`` CNN, or whose file ingest has just read again (``read_paths``), and rewrite
    their runs' partitions with them (``nightly``); returns the images embedded.

    What is missing is computed from the tables, so a night killed midway embeds the rest next time.
    """
    from pyspark.sql import functions as F

    directory = config.paths.model_dir(config.explore.model)
    model_id = check_model(directory)["model_id"]
    images_url, url = config.paths.url("images"), config.paths.url("embeddings")
    keys = (spark.read.schema(schema.spark_schema()).parquet(images_url).filter(F.col("source") == "archive")
            .select("image_id", "beamtime", "run_id", F.get_json_object("provenance", "$.path").alias("path")))
    todo = keys
    if tables.table_exists(url):
        done = read_embeddings(spark, url).filter(F.col("model_id") == model_id).select("image_id")
        todo = keys.join(done, "image_id", "left_anti").unionByName(keys.filter(F.col("path").isin(list(read_paths))))
    todo = todo.select("image_id", "beamtime", "run_id").distinct().cache()
    try:
        runs = [(r["beamtime"], r["run_id"]) for r in todo.select("beamtime", "run_id").distinct().collect()]
        if not runs:
            return 0
        rows = parts.read_partitions(spark, images_url, runs).join(todo.select("image_id"), "image_id", "left_semi")
        added = todo.count()
        add_embeddings(spark, config, embed_images(rows, directory, EmbeddingSettings.from_config(config)), runs,
                       f"nightly: embed {added} images with {model_id}")
        return added
    finally:
        todo.unpersist()


def add_embeddings(spark, config, new, runs: list[tuple[str, str]], what: str) -> None:
    """Put the `embeddings` rows ``new`` (of the runs ``runs``) into the table at ``paths.embeddings``:
    each run's partition is rewritten with its kept rows (all but those of an image and model in
    ``new``) and the new ones, in run order (``in_run_order``)."""
    url = config.paths.url("embeddings")
    new = new.select(*schema.EMBEDDINGS.names).cache()
    try:
        kept = parts.read_partitions(spark, url, runs, schema.EMBEDDINGS).join(
            new.select("image_id", "model_id"), ["image_id", "model_id"], "left_anti")
        with stage(spark, what, config.progress.interval_s):
            ordered = in_run_order(kept.select(*schema.EMBEDDINGS.names).unionByName(new))
            parts.rewrite_partitions(spark, url, ordered, runs, config.tables.row_group_size_mb,
                                     keys=schema.PARTITION_KEYS)
    finally:
        new.unpersist()
