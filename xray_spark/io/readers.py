"""Detector file readers: every format fabio and h5py read, compressed or not, behind one interface.

``open_detector_file(path, hdf5_datasets)`` yields a :class:`DetectorFile`: the number of frames,
``frame(i)`` as a 2-D array, the geometry the file's own header states (``io.headers``; metres,
beam centre in pixels (row, column) of the raw frame), the file's pixel mask when it has one
(NeXus ``pixel_mask``; True = bad pixel), the HDF5 frame path and the compression.

The format is decided by the content, as fabio decides it (``sniff``):

1. gzip, bzip2 and xz content (whatever the name says) is decompressed in memory, at most
   ``max_bytes``; a truncated or damaged stream is refused.
2. HDF5 (signature at 0 or at a user-block offset) goes to h5py + hdf5plugin (``io.hdf5_frames``).
3. Otherwise fabio's magic numbers (``fabio.openimage``) name the class, and fabio's extension
   registry (``fabio.fabioformats``) is the fallback for formats without a signature (SPE, MPA,
   MRC, ...). TIFF content (TIFF, Pilatus TIFF) is read with tifffile (every page a frame);
   every other class with fabio.
4. The extension is a hint: content that another format's extension names (a TIFF called
   ``.cbf``) is refused as ``wrong_extension``; an unknown extension does not matter.

fabio does not fail on some broken files; what this adds by hand: an EDF shorter than its headers
declare (fabio pads it with zeros), a file with no image data, and (``io.rows``) frames whose
pixels all have one value. Failures raise :class:`UnreadableFile` with a short reason code (the
quarantine table's ``reason``) and a message naming the file.
"""
from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import logging
import lzma
import os
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from xray_spark.io import headers as hdr
from xray_spark.io.errors import UnreadableFile
from xray_spark.io.headers import edf_header, marccd_header, pilatus_header  # noqa: F401  (re-exported)

COMPRESSIONS = [(b"\x1f\x8b", "gz", gzip.open), (b"BZh", "bz2", bz2.open), (b"\xfd7zXZ\x00", "xz", lzma.open)]
COMPRESSED_EXT = {".gz": "gz", ".bz2": "bz2", ".xz": "xz", ".z": "gz"}
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
TIFF_CLASSES = {"TifImage", "PilatusImage"}
HDF5_CLASSES = {"EigerImage", "Hdf5Image", "LimaImage", "LambdaImage", "SparseImage"}
# short names of classes for messages and the ``format`` column (fabio's class name otherwise)
FAMILY = {"TifImage": "tiff", "PilatusImage": "tiff", "MarccdImage": "marccd", "CbfImage": "cbf", "EdfImage": "edf",
          **{name: "hdf5" for name in HDF5_CLASSES}}
MAX_BYTES = 4 << 30


@dataclass
class DetectorPart:
    """The frames of one detector in a file: how many, its header geometry, pixel mask and HDF5 path."""

    n_frames: int
    header: dict = field(default_factory=dict)
    pixel_mask: np.ndarray | None = None
    frame_path: str | None = None       # HDF5 dataset(s) of the frames


@dataclass
class DetectorFile:
    """An open detector file: ``frame(i)`` for i in range(n_frames), header geometry, pixel mask.

    ``header``, ``pixel_mask`` and ``frame_path`` describe the file's (first) detector; a file that
    records several detectors (a NeXus file with a SAXS and a WAXS detector) lists them all in
    ``detectors``, whose frames follow one another in ``frame(i)``: ``detector(i)`` is frame i's."""

    format: str
    n_frames: int
    frame: Callable[[int], np.ndarray]
    header: dict = field(default_factory=dict)
    pixel_mask: np.ndarray | None = None
    frame_path: str | None = None       # HDF5 dataset(s) of the frames
    compression: str = ""               # gz | bz2 | xz | ""
    reader: str = ""                    # fabio class (or h5py / tifffile)
    detectors: list[DetectorPart] = field(default_factory=list)

    def detector(self, i: int) -> DetectorPart:
        """The detector that recorded frame ``i``."""
        for part in self.detectors:
            if i < part.n_frames:
                return part
            i -= part.n_frames
        return DetectorPart(self.n_frames, self.header, self.pixel_mask, self.frame_path)


@dataclass
class Sniffed:
    """What ``sniff`` found: the fabio class name (or 'hdf5'), the compression, the bytes when decompressed."""

    klass: str
    compression: str
    name: str                  # the file name without its compression extension
    data: bytes | None = None  # decompressed content (None: read the file itself)
    size: int = 0              # bytes of (decompressed) content

    @property
    def format(self) -> str:
        return FAMILY.get(self.klass, self.klass.lower().removesuffix("image"))

    def source(self, path: str):
        from fabio.fabioutils import BytesIO  # a BytesIO with the lock fabio's readers take

        return BytesIO(self.data) if self.data is not None else path


def family(name: str) -> str:
    return FAMILY.get(name, name.lower().removesuffix("image"))


def _decompress(path: str, kind: str, opener, max_bytes: int) -> bytes:
    try:
        with opener(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except EOFError as e:
        raise UnreadableFile("truncated", f"{path}: the {kind} stream ends early ({e}): the file is truncated") from e
    except (OSError, lzma.LZMAError, ValueError) as e:
        raise UnreadableFile("bad_compression", f"{path}: not a valid {kind} stream ({e})") from e
    if len(data) > max_bytes:
        raise UnreadableFile("too_large", f"{path}: decompresses to more than {max_bytes >> 20} MB "
                             "(ingest.max_decompressed_mb)")
    return data


def _extension(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def _magic_class(head: bytes, name: str) -> str | None:
    """fabio's class for the first bytes (``fabio.openimage``'s magic numbers), or None."""
    from fabio import openimage

    if any(head[offset:offset + 8] == HDF5_MAGIC for offset in (0, 512, 1024, 2048, 4096)):
        return "hdf5"
    try:
        kind = openimage._do_magic(head, name)
    except Exception:  # no signature fabio knows
        return None
    from fabio import fabioformats

    klass = fabioformats.get_class_by_name((kind + "image").lower())
    return klass.__name__ if klass is not None else None


def sniff(path: str, max_bytes: int = MAX_BYTES) -> Sniffed:
    """The reader of ``path`` by its content (module docstring, steps 1-4)."""
    from fabio import fabioformats

    with open(path, "rb") as f:
        head = f.read(8192)
    if not head:
        raise UnreadableFile("empty_file", f"{path}: the file is empty (0 bytes)")
    name, data, compression = os.path.basename(path), None, ""
    size = os.path.getsize(path)
    ext = _extension(name)
    for magic, kind, opener in COMPRESSIONS:
        if head.startswith(magic):
            compression, data = kind, _decompress(path, kind, opener, max_bytes)
            if ext in COMPRESSED_EXT:
                name = name[: -len(ext)]
            head, size = data[:8192], len(data)
            if not head:
                raise UnreadableFile("empty_file", f"{path}: the {kind} stream holds 0 bytes")
            break
    else:
        if ext in COMPRESSED_EXT:
            raise UnreadableFile("wrong_extension", f"{path}: extension {ext!r} says {COMPRESSED_EXT[ext]} but "
                                 "the content is not compressed; rename the file")
    ext = _extension(name)
    hinted = [c.__name__ for c in fabioformats.get_classes_from_extension(ext)] if ext else []
    hinted += ["hdf5"] if ext in (".h5", ".hdf5", ".hdf", ".nxs", ".nx5", ".cxi") else []
    numbered = not hinted and ext[1:].isdigit()            # Bruker/SMART frames: name.0026
    found = _magic_class(head, name)
    if found is not None and found == "GeImage" and not head.startswith(b"ADEPT") and hinted:
        found = None                       # ten zero bytes is GE's weak signature: the extension decides
    if found is None and numbered:
        found = "BrukerImage"
    if found is None:
        if not hinted:
            raise UnreadableFile("unsupported_format", f"{path}: extension {ext or '(none)'!r} and content "
                                 f"(starts with {head[:8]!r}) match no format fabio or h5py reads")
        found = hinted[0]
    elif hinted and family(found) not in {family(h) for h in hinted}:
        raise UnreadableFile("wrong_extension", f"{path}: extension {ext!r} says "
                             f"{'/'.join(sorted({family(h) for h in hinted}))} but the content is {family(found)}; "
                             "rename the file to its format's extension")
    return Sniffed(found, compression, name, data, size)


def detect_format(path: str) -> str:
    """The format of ``path`` by its content ('tiff', 'cbf', 'hdf5', 'mar345', ...)."""
    return sniff(path).format


@contextlib.contextmanager
def open_detector_file(path: str, hdf5_datasets: Sequence[str], max_bytes: int = MAX_BYTES) -> Iterator[DetectorFile]:
    """Open ``path`` with the reader of its content; frames are read lazily, one at a time."""
    found = sniff(path, max_bytes)
    try:
        if found.klass == "hdf5" or found.klass in HDF5_CLASSES:
            with _open_hdf5(path, found, hdf5_datasets) as detector_file:
                yield detector_file
        elif found.klass in TIFF_CLASSES:
            with _open_tiff(path, found) as detector_file:
                yield detector_file
        else:
            yield _open_fabio(path, found)
    except (UnreadableFile, GeneratorExit):
        raise
    except Exception as e:  # any library error on a damaged file is this file's reason
        raise UnreadableFile("unreadable", f"{path}: {found.format} reader failed: {type(e).__name__}: {e}") from e


# ---------------------------------------------------------------- formats

def _checked(data, path: str, index: int) -> np.ndarray:
    if data is None:
        raise UnreadableFile("no_data", f"{path} frame {index}: the reader found no pixel data")
    data = np.asarray(data)
    if data.ndim != 2:
        raise UnreadableFile("bad_shape", f"{path} frame {index}: shape {data.shape} is not a 2-D image")
    return data


def marccd_frame_header(source, path: str) -> dict:
    """The 3072-byte MarCCD frame header at byte 1024, parsed by fabio's ``marccdimage`` struct.

    Read here because ``fabio.open`` replaces it with the TIFF tags when it reads the pixels
    (fabio issue #203); its ``header_byte_order`` field (1234 little, 4321 big) sets the byte order.
    """
    from fabio.marccdimage import HEADER_FORMAT, HEADER_NAMES, interpret_header

    raw = source[1024:4096] if isinstance(source, bytes) else None
    if raw is None:
        with open(path, "rb") as f:
            f.seek(1024)
            raw = f.read(3072)
    if len(raw) < 3072:
        raise UnreadableFile("truncated", f"{path}: {1024 + len(raw)} bytes, shorter than the MarCCD "
                             "headers (4096 bytes): the file is truncated")
    order = ">" if int.from_bytes(raw[28:32], "little") == 4321 else "<"
    return interpret_header(raw, order + HEADER_FORMAT, HEADER_NAMES)


def _open_fabio(path: str, found: Sniffed) -> DetectorFile:
    from fabio import fabioformats

    logging.getLogger("fabio").setLevel(logging.CRITICAL)   # fabio logs (and pads) instead of raising
    image = fabioformats.factory(found.klass)
    with contextlib.redirect_stdout(io.StringIO()):          # some fabio readers print
        image = image.read(found.source(path)) or image
    if image.data is None:
        raise UnreadableFile("no_data", f"{path}: fabio ({found.klass}) found no image data")
    if found.klass == "MarccdImage":
        header = marccd_header(marccd_frame_header(found.data, path))
    else:
        header = hdr.geometry_of(found.klass, dict(image.header))
    if found.klass == "EdfImage":
        _check_edf_size(path, image, found.size)
    elif found.klass in ("CbfImage", "Mar345Image"):
        blob = found.data if found.data is not None else open(path, "rb").read()
        (_check_cbf_md5 if found.klass == "CbfImage" else _check_mar345_length)(path, blob, image)
    n_frames = int(getattr(image, "nframes", 1) or 1)

    def frame(i: int) -> np.ndarray:
        if i == 0:
            return _checked(image.data, path, i)
        try:
            data = image.getframe(i).data
        except Exception:  # fabio's getframe fails for some classes (MRC): read that frame anew
            data = type(image)().read(found.source(path), frame=i).data
        return _checked(data, path, i)

    return DetectorFile(found.format, n_frames, frame, header, compression=found.compression, reader=found.klass)


def _check_edf_size(path: str, image, actual: int) -> None:
    """fabio pads a truncated EDF with zeros (and only logs it): refuse it instead.

    Each frame is a header of at least 512 bytes plus ``Size`` bytes of data.
    """
    headers = [image.header] + [image.getframe(i).header for i in range(1, image.nframes)]
    declared = sum(512 + int(h.get("Size", 0)) for h in headers)
    if actual < declared:
        raise UnreadableFile("truncated", f"{path}: {actual} bytes, but its {len(headers)} EDF frame "
                             f"header(s) declare at least {declared}: the file is truncated")
    size, compressed = image.header.get("Size"), str(image.header.get("Compression", "none")).lower()
    if size is not None and compressed in ("none", "no", "") and image.data is not None \
            and image.data.nbytes != int(size):
        raise UnreadableFile("bad_header", f"{path}: Dim_1 x Dim_2 x DataType give {image.data.nbytes} bytes, "
                             f"but Size says {size}: the header is inconsistent")


def _check_cbf_md5(path: str, blob: bytes, image) -> None:
    """A CBF's binary section against its ``Content-MD5`` (fabio does not check it): a damaged
    byte-offset stream decodes to plausible but wrong pixels."""
    import base64
    import hashlib
    import re

    start = blob.find(b"\x0c\x1a\x04\xd5")
    head = blob[max(0, start - 2048):start]
    md5 = re.search(rb"Content-MD5:\s*(\S+)", head)
    size = re.search(rb"X-Binary-Size:\s*(\d+)", head)
    if start < 0 or md5 is None or size is None:
        return
    data = blob[start + 4:start + 4 + int(size.group(1))]
    if base64.b64encode(hashlib.md5(data).digest()) != md5.group(1):
        raise UnreadableFile("bad_checksum", f"{path}: the binary section does not match its Content-MD5 "
                             f"({len(data)} of {int(size.group(1))} bytes): the pixel data is damaged or truncated")


def _check_mar345_length(path: str, blob: bytes, image) -> None:
    """fabio decodes a truncated mar345 packed image without error (the missing part comes back
    as zeros): repacking the decoded frame (fabio's ``compress_pck``, the writers' algorithm) must
    not need more bytes than the file holds after its header."""
    from fabio.ext import mar345_IO

    start = blob.find(b"CCP4 packed image")
    if start < 0:
        return
    packed = mar345_IO.compress_pck(np.ascontiguousarray(image.data, dtype=np.int32), use_CCP4=False)
    if len(packed.lstrip(b"\n")) > len(blob) - start:
        raise UnreadableFile("truncated", f"{path}: {len(blob) - start} bytes of packed pixels, but the frame "
                             f"needs {len(packed)}: the file is truncated")


@contextlib.contextmanager
def _open_tiff(path: str, found: Sniffed) -> Iterator[DetectorFile]:
    import tifffile

    with tifffile.TiffFile(found.source(path)) as tif:
        pages = tif.pages
        if not len(pages):
            raise UnreadableFile("no_data", f"{path}: the TIFF holds no image (no readable page)")
        header = hdr.tiff_description(pages[0].description or "")

        def frame(i: int) -> np.ndarray:
            page = pages[i]
            expected = int(np.prod(page.shape)) * page.dtype.itemsize if page.dtype is not None else 0
            held = sum(page.databytecounts)
            if held == 0 and page.dataoffsets:  # StripByteCounts of 0 (QXRD writes them): read on from the offset,
                held = tif.filehandle.size - page.dataoffsets[0]           # as libtiff, tifffile and fabio do
            if page.compression == 1 and held < expected:
                raise UnreadableFile("truncated", f"{path} frame {i}: its strips hold {held} "
                                     f"bytes, the image needs {expected}")
            return _checked(page.asarray(), path, i)

        yield DetectorFile("tiff", len(pages), frame, header, compression=found.compression, reader=found.klass)


@contextlib.contextmanager
def _open_hdf5(path: str, found: Sniffed, patterns: Sequence[str]) -> Iterator[DetectorFile]:
    import h5py
    import hdf5plugin  # noqa: F401  registers bitshuffle/LZ4 and the other HDF5 filters

    from xray_spark.io import hdf5_frames

    with h5py.File(found.source(path), "r") as h5:
        index, parts = [], []  # (dataset, leading index) per frame; one DetectorPart per detector
        for datasets in hdf5_frames.detector_stacks(h5, path, patterns):
            first = len(index)
            for ds in datasets:
                index.extend((ds, np.unravel_index(i, ds.shape[:-2])) for i in range(int(np.prod(ds.shape[:-2]))))
            names = [ds.name for ds in datasets]
            parts.append(DetectorPart(len(index) - first, hdf5_frames.nexus_header(h5, datasets),
                                      hdf5_frames.pixel_mask(h5, datasets),
                                      names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]} ({len(names)} datasets)"))

        def frame(i: int) -> np.ndarray:
            ds, k = index[i]
            return _checked(np.asarray(ds[k + (slice(None), slice(None))]), path, i)

        yield DetectorFile("hdf5", len(index), frame, parts[0].header, parts[0].pixel_mask, parts[0].frame_path,
                           found.compression, "h5py", parts if len(parts) > 1 else [])
