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

import contextlib
import ctypes
import functools
import hashlib
import json
import os
import signal
import threading
import time
from typing import Iterable, Iterator

import numpy as np
from pyspark.accumulators import AccumulatorParam

from xray_spark import schema
from xray_spark.io import masks
from xray_spark.io.readers import UnreadableFile, open_detector_file
from xray_spark.io.sidecar import resolve_geometry
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
    if _constant(raw):
        raise UnreadableFile("empty_frame", f"{unit['path']} frame {i}: every pixel is {raw.flat[0]!r} (an empty "
                             "frame, or the fill value of data that is missing): not an image")
    part = detector_file.detector(i)
    geometry, sources, flags = resolve_geometry(part.header, sidecar, settings["defaults"],
                                                shape, settings["beam_center_margin"])
    detector, detector_flags = masks.identify(geometry.detector, shape)
    flags = [*flags, *detector_flags]
    user_mask = masks.read_mask_file(sidecar["mask"]) if sidecar.get("mask") else None
    gaps = masks.gap_mask(detector, shape)
    try:
        mask = masks.combine_masks(shape, gaps, part.pixel_mask, user_mask)
    except ValueError as e:
        raise UnreadableFile("bad_mask", f"{unit['path']} frame {i}: {e}") from None
    bad = bad_pixel_count(raw, mask)
    if bad > settings["max_bad_fraction"] * raw.size:
        invalid = bad_pixel_count(raw)
        raise UnreadableFile("invalid_pixels", f"{unit['path']} frame {i}: {bad / raw.size:.1%} of the pixels are "
                             f"bad ({invalid} NaN, infinite or negative, the rest masked); more than "
                             f"ingest.max_bad_fraction = {settings['max_bad_fraction']}")
    turns = sidecar.get("rotate") or 0
    if turns:       # the run's frames are stored turned: store them upright, geometry and masks with them
        raw, mask, geometry = np.rot90(raw, turns), np.rot90(mask, turns), geometry.turned(turns)
    image, out_mask = preprocess(raw, mask, settings["image_size"], full_scale_counts=settings["full_scale_counts"],
                                 mask_threshold=settings["mask_threshold"], letterbox=settings["letterbox"])
    provenance = {"archive": settings["archive"], "path": unit["path"], "size": unit["size"],
                  "mtime": unit["mtime"], "checksum": digest, "frame": i, "format": detector_file.format,
                  "reader": detector_file.reader, "compression": detector_file.compression,
                  "frame_path": part.frame_path,
                  "parts": [p.rsplit("/", 1)[-1] for p in unit["parts"]], "geometry_source": sources,
                  "flags": flags, "bad_pixels": bad, "rotate": turns,
                  "masks": {"detector_gaps": detector.name if gaps is not None else None,
                            "file_pixel_mask": part.pixel_mask is not None,
                            "user_mask": sidecar.get("mask")}}
    record = schema.image_record(
        image_id=image_id(unit["path"], i), source="archive", beamtime=unit["beamtime"], run_id=unit["run_id"],
        frame=i, image=image, mask=out_mask, tag_names=lookup_tags(settings["labels"], unit["path"], i),
        provenance=provenance,
        geometry=geometry.replace(detector=detector.name) if detector is not None else geometry)
    record["tags"] = record["tags"].tolist()
    return {"kind": "image", "path": unit["path"], **record}


class FileTimeout(BaseException):
    """Raised by ``Budget``'s alarm. A BaseException, so readers' ``except Exception`` do not swallow it."""


class Budget:
    """Seconds of reading one file may take, spent only inside ``with budget:`` (not while the
    caller writes the rows). A SIGALRM timer raises ``FileTimeout`` in the code that runs too long;
    pure-C loops are interrupted when they return to Python. Off (no limit) for 0 seconds or off
    the main thread (signals are delivered there only)."""

    def __init__(self, seconds: float):
        self.seconds = float(seconds or 0.0)
        self.left = self.seconds
        self.on = self.seconds > 0 and threading.current_thread() is threading.main_thread()
        self._previous = None

    @staticmethod
    def _alarm(signum, frame):
        raise FileTimeout()

    def __enter__(self):
        if self.on:
            if self.left <= 0:
                raise FileTimeout()
            self._started = time.monotonic()
            self._previous = signal.signal(signal.SIGALRM, self._alarm)
            signal.setitimer(signal.ITIMER_REAL, self.left)
        return self

    def __exit__(self, *exc):
        if self.on:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous or signal.SIG_DFL)
            self.left -= time.monotonic() - self._started
        return False

    @contextlib.contextmanager
    def grace(self, seconds: float = 30.0):
        """A fresh limit for closing the file after the budget is spent."""
        self.left = max(self.left, seconds)
        with self:
            yield


def _constant(raw: np.ndarray) -> bool:
    """Every pixel has one value (0 in an empty frame, the fill value of a missing source)? A strided
    sample first, so a real frame costs microseconds; the whole frame only when the sample is flat.
    (NaN frames are not "constant": they are quarantined as invalid pixels.)"""
    first = raw.flat[0]
    return bool((raw[::61, ::59] == first).all()) and bool((raw == first).all())


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
    """Image and quarantine rows of one input file, then its file row (see module docstring).

    The file is read in a forked child process (``ingest.isolate_reads``; one child per worker, used
    for file after file, forked again after it is killed): a reader that crashes
    (a segmentation fault in a decompression filter on damaged chunks), hangs in C or runs past
    ``ingest.file_timeout_s`` is killed and the file quarantined (``reader_crashed``, ``timeout``),
    instead of taking the Python worker, and with it the Spark task and its retries, down.
    """
    if settings.get("isolate_reads", True) and hasattr(os, "fork"):
        _warm_up()
        yield from _isolated_rows(unit, settings)
    else:
        yield from _file_rows(unit, settings)


@functools.cache
def _warm_up() -> None:
    """Import the readers and build pyFAI's shape index once in this process, so that each forked
    child starts with them (imported in a child, they would be imported again for every file)."""
    import fabio.openimage  # noqa: F401
    import h5py  # noqa: F401
    import hdf5plugin  # noqa: F401
    import tifffile  # noqa: F401

    masks._modular_shapes()


class _Reader:
    """A forked child process that reads files for this process, one at a time, until it dies."""

    current = None

    def __init__(self):
        from multiprocessing.connection import Pipe

        self.conn, child = Pipe()
        self.settings = None                 # the settings the child has (held, so no other object gets its id)
        self.pid = os.fork()
        if self.pid == 0:                                              # the child: serve, never return
            code = 0
            try:
                self.conn.close()
                _serve(child)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        child.close()

    def stop(self) -> int:
        """Kill the child; its wait status."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.conn.close()
        _Reader.current = None
        return os.waitpid(self.pid, 0)[1]


def _serve(conn) -> None:
    settings = {}
    while True:
        unit, new_settings = conn.recv()
        settings = new_settings if new_settings is not None else settings
        for row in _file_rows(unit, {**settings, "file_timeout_s": 0.0}):
            conn.send(row)


def _isolated_rows(unit: dict, settings: dict) -> Iterator[dict]:
    """``_file_rows`` in the reader child, which sends each row through a pipe; the time limit counts
    the time spent waiting for the child (not the caller's time with the rows)."""
    limit = float(settings.get("file_timeout_s", 0.0)) or None
    reader = _Reader.current or _Reader()
    _Reader.current = reader
    reader.conn.send((unit, settings if reader.settings is not settings else None))
    reader.settings = settings
    counts = {"image": 0, "quarantine": 0}
    waited, problem, done, digest = 0.0, None, False, None
    try:
        while True:
            started = time.monotonic()
            ready = reader.conn.poll(None if limit is None else max(limit - waited, 0.0))
            waited += time.monotonic() - started
            if not ready:
                problem = ("timeout", f"reading took longer than ingest.file_timeout_s = {limit:g} s")
                break
            try:
                row = reader.conn.recv()
            except (EOFError, OSError):
                problem = ("reader_crashed", "the reader process died")
                break
            digest = row.get("checksum") or digest
            if row["kind"] == "file":
                done = True
                yield row
                return
            counts[row["kind"]] += 1 if row["kind"] == "image" or row["frame"] is not None else 0
            yield row
    finally:
        status = 0 if done else reader.stop()           # timed out, crashed, or the caller stopped early
    if os.WIFSIGNALED(status) and problem[0] == "reader_crashed":
        number = os.WTERMSIG(status)
        problem = ("reader_crashed", f"the reader died of signal {number} ({signal.Signals(number).name})")
    yield _quarantine(unit, None, problem[0], f"{unit['path']}: {problem[1]} after {counts['image']} frame(s); "
                      "the rest of the file is not read", digest)
    written, quarantined = counts["image"], counts["quarantine"]
    yield {"kind": "file", "path": unit["path"], "beamtime": unit["beamtime"], "run_id": unit["run_id"],
           "size": unit["size"], "mtime": unit["mtime"], "checksum": digest,
           "status": "partial" if written else "quarantined", "frames": written, "quarantined_frames": quarantined}


def _file_rows(unit: dict, settings: dict) -> Iterator[dict]:
    """``file_rows`` in this process.

    Nothing a file holds raises out of here: a reader error, a damaged frame, a memory error or
    running past ``ingest.file_timeout_s`` of reading (``Budget``) is a quarantine row."""
    keep_freed_memory()
    digest = None
    written = quarantined = 0
    budget = Budget(settings.get("file_timeout_s", 0.0))
    max_bytes = int(settings.get("max_decompressed_mb", 4096)) << 20
    try:
        digest = checksum([unit["abspath"], *unit["parts"]])
        sidecar = json.loads(unit["sidecar"])
        with budget:
            opened = open_detector_file(unit["abspath"], settings["hdf5_datasets"], max_bytes)
            detector_file = opened.__enter__()
        try:
            if detector_file.n_frames == 0:
                raise UnreadableFile("no_frames", f"{unit['path']}: the file holds no frames")
            for i in range(detector_file.n_frames):
                try:
                    with budget:
                        row = _frame_row(unit, settings, detector_file, i, sidecar, digest)
                except UnreadableFile as e:
                    quarantined += 1
                    yield _quarantine(unit, i, e.reason, str(e), digest)
                except Exception as e:  # a damaged chunk of one frame: that frame only
                    quarantined += 1
                    yield _quarantine(unit, i, "unreadable", f"{unit['path']} frame {i}: {type(e).__name__}: {e}", digest)
                else:
                    written += 1
                    yield row
        finally:
            with budget.grace():
                opened.__exit__(None, None, None)
    except FileTimeout:
        yield _quarantine(unit, None, "timeout", f"{unit['path']}: reading took longer than ingest.file_timeout_s = "
                          f"{budget.seconds:g} s (after {written} frame(s)); the rest of the file is not read", digest)
    except UnreadableFile as e:
        yield _quarantine(unit, None, e.reason, str(e), digest)
    except Exception as e:  # whatever a damaged file makes a library raise: never the task's failure
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

