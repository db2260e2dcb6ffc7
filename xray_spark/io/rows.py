"""One archive file to rows, on an executor: image rows, quarantine rows and one file row.

``file_rows(unit, settings)`` checksums the file (SHA-256, the tool scientists can check with
``sha256sum``), opens it with its reader, resolves each frame's geometry and mask, preprocesses it
through the shared ``preprocess`` into an `images` row (``source='archive'``) and yields, beside
the images, a ``quarantine`` row for every frame (or the whole file) that cannot become an image,
and one ``file`` row with the file's checksum, frame counts and status for the manifest.

On Spark, ``io.staging.write_task`` runs it in the Python workers, writes the image rows to
Parquet there and hands the file and quarantine rows, a few hundred bytes per file, to the driver
through a ``FileFacts`` accumulator. So one pass reads every file once, with no cached copy of the
images and no second job for the facts. ``bench ingest``'s one-process baseline runs the same task
function (``io.staging.write_task``), so both sides do the same work.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import json
from typing import Iterable, Iterator

import numpy as np
from pyspark.accumulators import AccumulatorParam

from xray_spark import schema
from xray_spark.io import geometry as geom
from xray_spark.io import masks
from xray_spark.io.readers import UnreadableFile, open_detector_file
from xray_spark.preprocess import bad_pixel_count, preprocess

# Rows of kind ``quarantine`` have path, beamtime, run_id, frame (None = the whole file), size,
# mtime, checksum, reason (short code) and error (the message); the one row of kind ``file`` has
# path, beamtime, run_id, size, mtime, checksum, status (ingested | partial | quarantined), frames
# (written to the images table) and quarantined_frames.
READ_CHUNK = 1 << 20                              # stays in the core's cache
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3       # glibc mallopt parameters (malloc.h)


def image_id(path: str, frame: int) -> str:
    """Stable id of frame ``frame`` of the archive file ``path`` (relative to the root)."""
    return hashlib.sha1(f"archive:{path}#{frame}".encode()).hexdigest()[:20]


def checksum(paths: Iterable[str]) -> str:
    """SHA-256 over the bytes of ``paths`` in order (a file and its companion files), read into one
    reused buffer of ``READ_CHUNK`` bytes (a new 8 MB chunk each read was a fresh allocation)."""
    digest = hashlib.sha256()
    buffer = bytearray(READ_CHUNK)
    view = memoryview(buffer)
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buffer):
                digest.update(view[:n])
    return digest.hexdigest()


def lookup_tags(labels: dict, path: str, frame: int) -> list[str] | None:
    """Expert tags of a frame: by image id, else by ``path#frame``, else by file path; None = unlabelled."""
    for key in (image_id(path, frame), f"{path}#{frame}", path):
        if key in labels:
            return labels[key]
    return None


def _quarantine(unit: dict, frame: int | None, reason: str, error: str, digest: str | None) -> dict:
    return {"kind": "quarantine", "path": unit["path"], "beamtime": unit["beamtime"], "run_id": unit["run_id"],
            "frame": frame, "size": unit["size"], "mtime": unit["mtime"], "checksum": digest,
            "reason": reason, "error": error}


def _frame_row(unit: dict, settings: dict, detector_file, i: int, sidecar: dict, digest: str) -> dict:
    raw = detector_file.frame(i)
    shape = raw.shape
    if min(shape) < settings["min_side"]:
        raise UnreadableFile("bad_shape", f"{unit['path']} frame {i}: shape {shape} is smaller than "
                             f"ingest.min_side = {settings['min_side']}")
    if not np.issubdtype(raw.dtype, np.number) or np.issubdtype(raw.dtype, np.complexfloating):
        raise UnreadableFile("bad_dtype", f"{unit['path']} frame {i}: dtype {raw.dtype} is not real counts")
    geometry, sources, flags = geom.resolve_geometry(detector_file.header, sidecar, settings["defaults"],
                                                     shape, settings["beam_center_margin"])
    detector = masks.pyfai_detector(geometry["detector"]) if geometry["detector"] else None
    if detector is not None and shape not in masks.expected_shapes(detector):
        raise UnreadableFile("bad_shape", f"{unit['path']} frame {i}: shape {shape} is not one that "
                             f"{detector.name} writes ({detector.shape[0]}x{detector.shape[1]} or binned)")
    user_mask = masks.read_mask_file(sidecar["mask"]) if sidecar.get("mask") else None
    gaps = masks.gap_mask(detector, shape)
    try:
        mask = masks.combine_masks(shape, gaps, detector_file.pixel_mask, user_mask)
    except ValueError as e:
        raise UnreadableFile("bad_mask", f"{unit['path']} frame {i}: {e}") from None
    bad = bad_pixel_count(raw, mask)
    if bad > settings["max_bad_fraction"] * raw.size:
        invalid = bad_pixel_count(raw)
        raise UnreadableFile("invalid_pixels", f"{unit['path']} frame {i}: {bad / raw.size:.1%} of the pixels are "
                             f"bad ({invalid} NaN, infinite or negative, the rest masked); more than "
                             f"ingest.max_bad_fraction = {settings['max_bad_fraction']}")
    image, out_mask = preprocess(raw, mask, settings["image_size"], full_scale_counts=settings["full_scale_counts"],
                                 mask_threshold=settings["mask_threshold"])
    provenance = {"archive": settings["archive"], "path": unit["path"], "size": unit["size"],
                  "mtime": unit["mtime"], "checksum": digest, "frame": i, "format": detector_file.format,
                  "parts": [p.rsplit("/", 1)[-1] for p in unit["parts"]], "geometry_source": sources,
                  "flags": flags, "bad_pixels": bad,
                  "masks": {"detector_gaps": detector.name if gaps is not None else None,
                            "file_pixel_mask": detector_file.pixel_mask is not None,
                            "user_mask": sidecar.get("mask")}}
    record = schema.image_record(
        image_id=image_id(unit["path"], i), source="archive", beamtime=unit["beamtime"], run_id=unit["run_id"],
        frame=i, image=image, mask=out_mask, tag_names=lookup_tags(settings["labels"], unit["path"], i),
        provenance=provenance, detector=detector.name if detector is not None else geometry["detector"],
        distance_m=geometry["distance_m"], wavelength_m=geometry["wavelength_m"],
        pixel1_m=geometry["pixel1_m"], pixel2_m=geometry["pixel2_m"],
        beam_center_row_px=geometry["beam_center_row_px"], beam_center_col_px=geometry["beam_center_col_px"],
        incidence_angle_deg=geometry["incidence_angle_deg"], raw_height=shape[0], raw_width=shape[1])
    record["tags"] = record["tags"].tolist()
    return {"kind": "image", "path": unit["path"], **record}


@functools.cache
def keep_freed_memory() -> bool:
    """Have the C library keep freed memory for reuse instead of returning it to the kernel.

    A Pilatus 1M frame goes through a dozen float64 temporaries of 8 MB each. glibc serves such
    blocks from fresh ``mmap`` pages and unmaps them when freed, so every frame paid tens of
    thousands of page faults: a fifth of the CPU time of reading an archive was the kernel zeroing
    pages (measured with ``python -m bench ingest``, in the executors and in a plain loop alike).
    Raising the mmap threshold to glibc's maximum (32 MB) and turning heap trimming off lets the
    temporaries reuse the heap. Applied once per process; returns False where ``mallopt`` does not
    exist (not glibc) and nothing changes.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))


def file_rows(unit: dict, settings: dict) -> Iterator[dict]:
    """Image and quarantine rows of one input file, then its file row (see module docstring)."""
    keep_freed_memory()
    digest = None
    written = quarantined = 0
    try:
        digest = checksum([unit["abspath"], *unit["parts"]])
        sidecar = json.loads(unit["sidecar"])
        with open_detector_file(unit["abspath"], settings["hdf5_datasets"]) as detector_file:
            if detector_file.n_frames == 0:
                raise UnreadableFile("no_frames", f"{unit['path']}: the file holds no frames")
            for i in range(detector_file.n_frames):
                try:
                    yield _frame_row(unit, settings, detector_file, i, sidecar, digest)
                    written += 1
                except UnreadableFile as e:
                    quarantined += 1
                    yield _quarantine(unit, i, e.reason, str(e), digest)
                except Exception as e:  # a damaged chunk of one frame: that frame only
                    quarantined += 1
                    yield _quarantine(unit, i, "unreadable", f"{unit['path']} frame {i}: {type(e).__name__}: {e}", digest)
    except UnreadableFile as e:
        yield _quarantine(unit, None, e.reason, str(e), digest)
    except OSError as e:
        yield _quarantine(unit, None, "unreadable", f"{unit['path']}: {type(e).__name__}: {e}", digest)
    status = "ingested" if written and not quarantined else "partial" if written else "quarantined"
    yield {"kind": "file", "path": unit["path"], "beamtime": unit["beamtime"], "run_id": unit["run_id"],
           "size": unit["size"], "mtime": unit["mtime"], "checksum": digest, "status": status,
           "frames": written, "quarantined_frames": quarantined}


class FileFacts(AccumulatorParam):
    """Accumulator of the non-image rows of the files read: ``{path: [quarantine rows..., file row]}``.

    Keyed by path, so a task that runs twice (a retry, a recomputed stage) replaces its files'
    rows instead of adding them again.
    """

    def zero(self, value: dict) -> dict:
        return {}

    def addInPlace(self, facts: dict, more: dict) -> dict:
        facts.update(more)
        return facts

