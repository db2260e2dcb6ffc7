"""Every table's contract: the columns and types of the `images`, `predictions`, `nightly`,
`features`, `descriptors`, `embeddings`, `manifest` and `quarantine` tables, and the encoding of an image row.
Writing lives in ``io.tables``; reading into tf.data in ``cnn.data``.

The table is plain Parquet that Spark, pandas and Petastorm's ``make_batch_reader`` read without
custom codecs: the image is raw little-endian float32 bytes with ``height`` and ``width`` beside
it, the mask raw uint8 bytes (1 = bad pixel: module gap, beamstop, dead or hot pixel), the tags a
multi-hot int8 list over the whole vocabulary in rank order (``tags.names()``) with the names
beside it for people and SQL. Geometry columns use pyFAI's vocabulary and units (metres;
``pixel1`` is the slow/vertical axis) of the raw detector frame; the beam centre is in raw
detector pixels (row, column) and may lie outside the frame.
"""
from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
import pyarrow as pa

from xray_spark import tags as tagmod

if TYPE_CHECKING:
    from xray_spark.geometry import Geometry

log = logging.getLogger(__name__)

IMAGES = pa.schema([
    pa.field("image_id", pa.string(), nullable=False),      # stable hash of source + index or path + frame
    pa.field("source", pa.string(), nullable=False),        # synthetic | archive
    pa.field("beamtime", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("frame", pa.int64(), nullable=False),          # generator index, or frame within the file
    pa.field("detector", pa.string()),                      # pyFAI detector name, e.g. Pilatus1M
    pa.field("distance_m", pa.float64()),                   # sample-detector distance
    pa.field("wavelength_m", pa.float64()),
    pa.field("pixel1_m", pa.float64()),                     # pixel size, slow (vertical) axis
    pa.field("pixel2_m", pa.float64()),                     # pixel size, fast (horizontal) axis
    pa.field("beam_center_row_px", pa.float64()),           # direct beam on the raw frame (row)
    pa.field("beam_center_col_px", pa.float64()),           # direct beam on the raw frame (column)
    pa.field("incidence_angle_deg", pa.float64()),          # grazing incidence only, else null
    pa.field("raw_height", pa.int32()),                     # raw detector frame shape
    pa.field("raw_width", pa.int32()),
    pa.field("height", pa.int32(), nullable=False),         # stored (preprocessed) image shape
    pa.field("width", pa.int32(), nullable=False),
    pa.field("image", pa.binary(), nullable=False),         # float32 little-endian, height*width
    pa.field("mask", pa.binary(), nullable=False),          # uint8, height*width, 1 = bad pixel
    pa.field("tags", pa.list_(pa.int8()), nullable=False),  # multi-hot over tags.names()
    pa.field("tag_names", pa.list_(pa.string()), nullable=False),
    pa.field("labelled", pa.bool_(), nullable=False),       # False: tags unknown (unlabelled archive)
    pa.field("provenance", pa.string(), nullable=False),    # JSON: generator params, or file facts
])

# The `predictions` table (xray-spark predict): one row per image and model. ``scores`` and
# ``labels`` are aligned with ``scored_tags`` (the model's tags, in its output order).
PREDICTIONS = pa.schema([
    pa.field("image_id", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("model_id", pa.string(), nullable=False),       # manifest model_id of the scoring model
    pa.field("model_kind", pa.string(), nullable=False),     # cnn | bof
    pa.field("scored_tags", pa.list_(pa.string()), nullable=False),
    pa.field("scores", pa.list_(pa.float32())),              # null when the image could not be scored
    pa.field("tag_names", pa.list_(pa.string())),            # tags at or above their threshold
    pa.field("labels", pa.list_(pa.int8())),                 # true multi-hot over scored_tags; null if unlabelled
    pa.field("error", pa.string()),                          # why the image could not be scored, else null
])


# The nightly predictions table (``<paths.predictions>/nightly``, partitioned by night): the
# predictions of archive images with the beamtime and the file checksum they were scored for.
NIGHTLY = pa.schema([*PREDICTIONS, pa.field("beamtime", pa.string()), pa.field("checksum", pa.string()),
                     pa.field("night", pa.string())])
NIGHTLY_KEYS = ("night",)

# The `embeddings` table (xray-spark embed, nightly, stream): one row per image and CNN model, the
# vectors that clusters, change points and similar-image search use (``xray_spark.explore``).
EMBEDDINGS = pa.schema([
    pa.field("image_id", pa.string(), nullable=False),
    pa.field("beamtime", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("frame", pa.int64(), nullable=False),          # place in the run's acquisition order, from 0
    pa.field("path", pa.string()),                           # the archive file (null: synthetic)
    pa.field("frame_in_file", pa.int64()),                   # the images table's frame (within its file)
    pa.field("model_id", pa.string(), nullable=False),       # the CNN whose penultimate layer is `cnn`
    pa.field("cnn", pa.list_(pa.float32())),                 # penultimate-layer activations
    pa.field("profile_axis", pa.string()),                   # q (geometry known) | radius (image space)
    pa.field("profile", pa.list_(pa.float32())),             # log10 I on the fixed profile grid
    pa.field("anisotropy", pa.list_(pa.float32())),          # azimuthal contrast per profile bin
    pa.field("embedding", pa.list_(pa.float32())),           # the combined unit vector (cnn, profile, anisotropy,
                                                             # scores; explore.embeddings): search, clusters
    pa.field("scored_tags", pa.list_(pa.string())),
    pa.field("scores", pa.list_(pa.float32())),
    pa.field("tag_names", pa.list_(pa.string())),            # tags at or above the model's thresholds
])

# The `clusters` table (xray-spark atlas, partitioned by beamtime): one row per k-means cluster of
# a beamtime's embeddings (``explore.clusters``). Lists of tags and runs are aligned with their values.
CLUSTERS = pa.schema([
    pa.field("beamtime", pa.string(), nullable=False),
    pa.field("model_id", pa.string(), nullable=False),
    pa.field("cluster", pa.int32(), nullable=False),          # 0 = the largest cluster
    pa.field("k", pa.int32(), nullable=False),
    pa.field("criterion", pa.string(), nullable=False),       # how k was chosen, e.g. "silhouette 0.41 over k=2..12"
    pa.field("size", pa.int64(), nullable=False),
    pa.field("centre", pa.list_(pa.float32())),               # the k-means centre in embedding space
    pa.field("medoid_ids", pa.list_(pa.string())),            # the frames nearest the centre, nearest first
    pa.field("medoid_runs", pa.list_(pa.string())),
    pa.field("medoid_frames", pa.list_(pa.int64())),
    pa.field("tags", pa.list_(pa.string())),                  # tags of the cluster's frames, most frequent first
    pa.field("tag_fractions", pa.list_(pa.float32())),        # fraction of the cluster's frames carrying each
    pa.field("profile_axis", pa.string()),                    # axis of mean_profile: the cluster's most common
    pa.field("mean_profile", pa.list_(pa.float32())),         # mean log10 I of its frames on that axis
    pa.field("runs", pa.list_(pa.string())),
    pa.field("run_sizes", pa.list_(pa.int64())),              # frames of the cluster in each run
])

# The `run_events` table (xray-spark atlas, partitioned by beamtime): the change points along each
# run in frame order, where the embedding or the tag mix shifts (``explore.run_events``).
RUN_EVENTS = pa.schema([
    pa.field("beamtime", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("frame", pa.int64(), nullable=False),            # the first frame after the change
    pa.field("image_id", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),            # "embedding shift", or "Ring: Isotropic appears; ..."
    pa.field("signal", pa.string(), nullable=False),          # embedding | tags | embedding+tags
    pa.field("score", pa.float32()),                          # embedding shift in units of the run's frame noise
    pa.field("tags_before", pa.list_(pa.string())),           # tags of most frames in the window before
    pa.field("tags_after", pa.list_(pa.string())),
])

# The `manifest` table: one row per archive file ever seen (see ``io.manifest``).
MANIFEST = pa.schema([
    pa.field("path", pa.string()), pa.field("beamtime", pa.string()), pa.field("run_id", pa.string()),
    pa.field("size", pa.int64()), pa.field("mtime", pa.float64()), pa.field("setup", pa.string()),
    pa.field("checksum", pa.string()), pa.field("status", pa.string()), pa.field("frames", pa.int64()),
    pa.field("quarantined_frames", pa.int64()), pa.field("ingested_at", pa.string()),
    pa.field("deleted_at", pa.string()),
])
# The `quarantine` table: what could not become an image, per file (frame null) or per frame.
QUARANTINE = pa.schema([
    pa.field("path", pa.string()), pa.field("beamtime", pa.string()), pa.field("run_id", pa.string()),
    pa.field("frame", pa.int64()), pa.field("reason", pa.string()), pa.field("error", pa.string()),
    pa.field("size", pa.int64()), pa.field("mtime", pa.float64()), pa.field("checksum", pa.string()),
    pa.field("quarantined_at", pa.string()),
])

# The columns the bag of features' ``PatchDescriptors`` adds to an images batch.
DESCRIPTORS = [pa.field("n_patches", pa.int32()), pa.field("descriptors", pa.binary()),
               pa.field("patch_centres", pa.binary()), pa.field("skip_reason", pa.string())]
# The `features` table (spm_features): one spatial pyramid per image, with the split by run.
FEATURE_COLUMNS = ["image_id", "run_id", "frame", "source", "labelled", "tags", "tag_names", "split",
                   "n_patches", "skip_reason", "features"]


def spark_schema(schema: pa.Schema = IMAGES):
    """The Spark StructType of an Arrow table schema (for mapInPandas output)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def encode_image(image: np.ndarray) -> bytes:
    """Raw little-endian float32 bytes of a 2-D image."""
    return np.ascontiguousarray(image, dtype="<f4").tobytes()


def encode_mask(mask: np.ndarray) -> bytes:
    return np.ascontiguousarray(mask, dtype=np.uint8).tobytes()


def decode_images(blobs: Sequence[bytes], height: int, width: int) -> np.ndarray:
    """Stack raw image bytes of one batch into an array of shape (n, height, width), float32."""
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), height, width)


def decode_masks(blobs: Sequence[bytes], height: int, width: int) -> np.ndarray:
    return np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), height, width).astype(bool)


def image_record(*, image_id: str, source: str, beamtime: str, run_id: str, frame: int,
                 image: np.ndarray, mask: np.ndarray, tag_names: Iterable[str] | None,
                 provenance: dict, detector: str | None = None, distance_m: float | None = None,
                 wavelength_m: float | None = None, pixel1_m: float | None = None,
                 pixel2_m: float | None = None, beam_center_row_px: float | None = None,
                 beam_center_col_px: float | None = None, incidence_angle_deg: float | None = None,
                 raw_height: int | None = None, raw_width: int | None = None,
                 geometry: Geometry | None = None) -> dict:
    """One row of the `images` table; ``tag_names=None`` means unlabelled.

    ``geometry`` (an ``xray_spark.geometry.Geometry``) gives all the geometry columns at once, in
    place of the keyword arguments of the same names.
    """
    if image.ndim != 2 or image.shape != mask.shape:
        raise ValueError(f"image {image_id}: image shape {image.shape} and mask shape {mask.shape} "
                         "must be the same 2-D shape")
    if geometry is not None:
        columns = geometry.columns()
        detector, distance_m, wavelength_m = columns["detector"], columns["distance_m"], columns["wavelength_m"]
        pixel1_m, pixel2_m = columns["pixel1_m"], columns["pixel2_m"]
        beam_center_row_px, beam_center_col_px = columns["beam_center_row_px"], columns["beam_center_col_px"]
        incidence_angle_deg = columns["incidence_angle_deg"]
        raw_height, raw_width = columns["raw_height"], columns["raw_width"]
    names = [] if tag_names is None else tagmod.check_names(tag_names, where=f"image {image_id}")
    return {
        "image_id": image_id, "source": source, "beamtime": beamtime, "run_id": run_id,
        "frame": int(frame), "detector": detector, "distance_m": distance_m,
        "wavelength_m": wavelength_m, "pixel1_m": pixel1_m, "pixel2_m": pixel2_m,
        "beam_center_row_px": beam_center_row_px, "beam_center_col_px": beam_center_col_px,
        "incidence_angle_deg": incidence_angle_deg, "raw_height": raw_height, "raw_width": raw_width,
        "height": image.shape[0], "width": image.shape[1],
        "image": encode_image(image), "mask": encode_mask(mask),
        "tags": tagmod.encode(names), "tag_names": [n for n in tagmod.names() if n in set(names)],
        "labelled": tag_names is not None,
        "provenance": json.dumps(provenance, sort_keys=True, default=str),
    }


def records_to_arrow(records: list[dict], schema: pa.Schema = IMAGES) -> pa.RecordBatch:
    """An Arrow batch in the table's exact column order and types (for mapInArrow)."""
    columns = {f.name: [r[f.name] for r in records] for f in schema}
    columns["tags"] = [np.asarray(t, dtype=np.int8) for t in columns["tags"]] if "tags" in columns else None
    return pa.RecordBatch.from_pydict({k: v for k, v in columns.items() if v is not None}, schema=schema)


# A partitioned table's files hold every column but the partition keys (they are in the directory
# names), as Spark writes them.
PARTITION_KEYS = ("beamtime", "run_id")
IMAGE_FILE = pa.schema([f for f in IMAGES if f.name not in PARTITION_KEYS])
