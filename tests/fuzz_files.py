"""Damaged detector files derived from the real fixtures (tests/fixtures/formats), for the fuzz test.

``write_mutants(out, seed)`` copies a set of valid fixtures of every format into ``out/<key>/``
(``orig.<name>``) and writes beside each its derived files: truncated at random offsets, bits
flipped in the header or in the pixel data, a number in the header changed (wrong sizes), zeroed
blocks, the wrong extension, gzip of garbage or of a truncated file; and a few HDF5 files with
broken links and virtual datasets without their sources. Returns ``{relative path: kind}``; a kind
starting with ``data_flip`` changes pixel bytes on purpose (the pixels may then differ, only there).
"""
from __future__ import annotations

import bz2
import gzip
import os
import re
import shutil

import numpy as np

FORMATS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "formats")
# (fixture, mutants): small, fast files of every format fabio and h5py read
SOURCES = [
    ("adsc/AgBe_Quantum.img", 30), ("bruker/apex_frame.sfrm", 50), ("bruker/image.0000", 50),
    ("bruker/mo_DK_Zucker2_01_0001.sfrm", 30), ("cbf/phi_scan_001.cbf", 60), ("edf/pilatus300k.edf", 60),
    ("kcd/i01f0001.kcd.gz", 40), ("mar345/agbe_60sec_006.mar1200", 50), ("marccd/somedata_0001.mccd", 40),
    ("oxd/b191_1_9_1.img", 60), ("spe/CeO2_PI_CCD_Mo.SPE", 40), ("tiff/Pilatus100K_scan030_033.tiff", 60),
    ("tiff/GI2_A9_19_001_0000.tiff", 40), ("tiff/testmap1_0002.tif", 60), ("tiff/original.tif", 40),
    ("fit2dmask/fit2d_click.msk", 30), ("nexus/336502.nxs", 50), ("hdf5/ceria_50x30_740mm_000005_Pilatus2M_0_0.hdf5", 50),
    ("eiger/eiger2_simread7_2datafiles_4images_bslz4_data_000001.h5", 40), ("nexus/AgBehenate_228.hdf5", 40),
    ("oxd/b191_1_9_1.img.gz", 30),
]
OTHER_EXT = [".cbf", ".edf", ".tif", ".h5", ".img", ".sfrm", ".mccd", ".mar2300", ".spe", ".kcd"]


def _header_end(blob: bytes) -> int:
    """Rough end of the header: HDF5/TIFF: the first 1 KB; text headers: the first NUL, '}' or form feed."""
    if blob[:4] in (b"II*\x00", b"MM\x00*") or blob[:8] == b"\x89HDF\r\n\x1a\n":
        return 1024
    ends = [i for i in (blob.find(b"}"), blob.find(b"\x0c\x1a"), blob.find(b"\x00")) if i > 0]
    return max(64, min(ends + [4096]))


def _mutate(blob: bytes, kind: str, rng) -> bytes:
    data = bytearray(blob)
    head = _header_end(blob)
    if kind == "truncate":
        return bytes(data[: int(rng.integers(1, len(data)))])
    if kind == "truncate_tail":                                    # the last pixels missing
        return bytes(data[: len(data) - int(rng.integers(1, max(2, len(data) // 20)))])
    if kind == "header_flip":
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(0, min(head, len(data))))
            data[i] ^= 1 << int(rng.integers(0, 8))
        return bytes(data)
    if kind == "data_flip":
        i = int(rng.integers(max(head, len(data) // 2), len(data)))
        data[i] ^= 1 << int(rng.integers(0, 8))
        return bytes(data)
    if kind == "header_size":                                      # a number of the header changed
        numbers = [m for m in re.finditer(rb"\d+", bytes(data[:head]))]
        if numbers:
            m = numbers[int(rng.integers(0, len(numbers)))]
            new = str(int(m.group()) * int(rng.choice([0, 2, 7, 1000])) + int(rng.integers(0, 3))).encode()
            return bytes(data[: m.start()] + new + data[m.end():])
        return bytes(data[:head])
    if kind == "zero_block":
        i = int(rng.integers(0, len(data)))
        n = int(rng.integers(16, 4096))
        data[i: i + n] = bytes(len(data[i: i + n]))
        return bytes(data)
    if kind == "zeros":
        return bytes(len(data))
    raise ValueError(kind)


KINDS = ["truncate", "truncate", "truncate_tail", "header_flip", "header_flip", "data_flip", "header_size",
         "header_size", "zero_block", "rename", "gzip_truncated", "bz2_of_file"]


def write_mutants(out: str, seed: int = 0) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    made = {}
    for source, count in SOURCES:
        key = re.sub(r"[^A-Za-z0-9]+", "_", source)
        folder = os.path.join(out, key)
        os.makedirs(folder, exist_ok=True)
        name = os.path.basename(source)
        raw = open(os.path.join(FORMATS, source), "rb").read()
        blob = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        inner = name[:-3] if name.endswith(".gz") else name
        shutil.copyfile(os.path.join(FORMATS, source), os.path.join(folder, "orig." + name))
        made[f"{key}/orig.{name}"] = "original"
        for n in range(count):
            kind = KINDS[n % len(KINDS)]
            target = f"m{n:03d}_{kind}.{inner}"
            if kind == "rename":
                ext = OTHER_EXT[int(rng.integers(0, len(OTHER_EXT)))]
                target, body = f"m{n:03d}_{kind}.{inner}{ext}", blob
            elif kind == "gzip_truncated":
                packed = gzip.compress(blob, 1)
                target, body = target + ".gz", packed[: int(rng.integers(10, len(packed)))]
            elif kind == "bz2_of_file":
                target, body = target + ".bz2", bz2.compress(_mutate(blob, "truncate_tail", rng), 1)
            else:
                body = _mutate(blob, kind, rng)
            with open(os.path.join(folder, target), "wb") as f:
                f.write(body)
            made[f"{key}/{target}"] = kind
    extra = os.path.join(out, "extra")
    os.makedirs(extra, exist_ok=True)
    for n in range(20):                                        # garbage, gzipped or not, under detector names
        ext = OTHER_EXT[n % len(OTHER_EXT)]
        garbage = rng.integers(0, 256, int(rng.integers(1, 50000)), dtype=np.uint8).tobytes()
        body = gzip.compress(garbage) if n % 2 else garbage
        target = f"garbage_{n:02d}{ext}" + (".gz" if n % 2 else "")
        open(os.path.join(extra, target), "wb").write(body)
        made[f"extra/{target}"] = "garbage"
    for n, ext in enumerate(OTHER_EXT[:5]):
        open(os.path.join(extra, f"empty_{n}{ext}"), "wb").close()
        made[f"extra/empty_{n}{ext}"] = "empty"
    made.update(_broken_hdf5(extra))
    return made


def _broken_hdf5(folder: str) -> dict[str, str]:
    import h5py

    made = {}
    frames = np.random.default_rng(1).poisson(50, (3, 64, 48)).astype(np.uint32)
    with h5py.File(os.path.join(folder, "source.h5"), "w") as h5:
        h5["entry/data/data"] = frames
    made["extra/source.h5"] = "original"
    for n, how in enumerate(["external", "vds", "soft", "external_dataset"]):
        path = os.path.join(folder, f"broken_{how}.h5")
        with h5py.File(path, "w") as h5:
            entry = h5.create_group("entry/data")
            if how == "external":
                entry["data"] = h5py.ExternalLink("missing_data_000001.h5", "/entry/data/data")
            elif how == "external_dataset":                    # file exists, the dataset does not
                entry["data"] = h5py.ExternalLink("source.h5", "/entry/nothing/here")
            elif how == "soft":
                entry["data"] = h5py.SoftLink("/entry/nowhere")
            else:
                layout = h5py.VirtualLayout(shape=frames.shape, dtype=frames.dtype)
                layout[:] = h5py.VirtualSource("missing_source.h5", "/entry/data/data", shape=frames.shape)
                entry.create_virtual_dataset("data", layout, fillvalue=0)
        made[f"extra/broken_{how}.h5"] = "broken_hdf5"
    return made
