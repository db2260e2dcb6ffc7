"""Write MarCCD frames in the detector's own layout, for tests (fabio can read MarCCD, not write it).

No real MarCCD file could be found in a public repository small enough to commit (a 2048 x 2048
frame is 8 MB), so this writes the layout the MarCCD software writes, byte for byte where it
matters to readers:

- bytes 0-1023: a little-endian TIFF header and one image directory (uncompressed 16-bit,
  one strip starting at byte 4096), padded with zeros;
- bytes 1024-4095: the 3072-byte MarCCD ``frame_header`` (the C struct of the marCCD
  documentation, which fabio's ``marccdimage`` parses), with the fields a reader of geometry
  needs at their documented offsets, in the documented integer units;
- bytes 4096-: the frame, uint16 little-endian, rows of ``nfast`` pixels.
"""
from __future__ import annotations

import struct

import numpy as np

TIFF_HEADER_BYTES = 1024
FRAME_HEADER_BYTES = 3072
DATA_OFFSET = TIFF_HEADER_BYTES + FRAME_HEADER_BYTES
LITTLE_ENDIAN = 1234                 # the frame header's byte-order flag
# Offsets inside the frame header (its C struct: 256 bytes of format fields, 128 of statistics,
# 256 of percentiles, then goniostat at 640, detector at 768, source and optics at 896).
FIELDS = {                           # name: (offset, struct code)
    "header_type": (0, "I"), "header_name": (4, "16s"), "header_major_version": (20, "I"),
    "header_byte_order": (28, "I"), "data_byte_order": (32, "I"), "header_size": (36, "I"),
    "nheaders": (76, "I"), "nfast": (80, "I"), "nslow": (84, "I"), "depth": (88, "I"),
    "record_length": (92, "I"), "signif_bits": (96, "I"), "saturated_value": (104, "I"), "nimages": (112, "I"),
    "xtal_to_detector": (640, "i"),          # 1000 x distance in mm (micrometres)
    "beam_x": (644, "i"), "beam_y": (648, "i"),  # 1000 x beam position, pixels (x = fast axis = column)
    "exposure_time": (656, "i"),             # milliseconds
    "start_xtal_to_detector": (696, "i"),
    "detector_type": (768, "i"),
    "pixelsize_x": (772, "i"), "pixelsize_y": (776, "i"),   # nanometres
    "source_wavelength": (908, "i"),         # femtometres
}


def tiff_directory(rows: int, cols: int) -> bytes:
    """The 1024 bytes before the frame header: TIFF header, one IFD, zero padding."""
    # (tag, type 3 = SHORT or 4 = LONG, value): width, length, 16 bits, no compression, black is
    # zero, strip offset, 1 sample per pixel, rows per strip, strip bytes
    entries = [(256, 4, cols), (257, 4, rows), (258, 3, 16), (259, 3, 1), (262, 3, 1),
               (273, 4, DATA_OFFSET), (277, 3, 1), (278, 4, rows), (279, 4, rows * cols * 2)]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:           # SHORT values sit left-justified in the 4-byte field
        ifd += struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
    ifd += struct.pack("<I", 0)                # no next directory
    head = b"II*\x00" + struct.pack("<I", 8) + ifd
    return head.ljust(TIFF_HEADER_BYTES, b"\x00")


def frame_header(rows: int, cols: int, geometry: dict, exposure_s: float = 1.0) -> bytes:
    """The 3072-byte MarCCD frame header for a (rows, cols) frame and a geometry in metres/pixels."""
    values = {
        "header_type": 2, "header_name": b"MMX", "header_major_version": 1,
        "header_byte_order": LITTLE_ENDIAN, "data_byte_order": LITTLE_ENDIAN, "header_size": FRAME_HEADER_BYTES,
        "nheaders": 1, "nfast": cols, "nslow": rows, "depth": 2, "record_length": cols, "signif_bits": 16,
        "saturated_value": 2**16 - 1, "nimages": 1,
        "xtal_to_detector": round(geometry["distance_m"] * 1e6),
        "start_xtal_to_detector": round(geometry["distance_m"] * 1e6),
        "beam_x": round(geometry["beam_center_col_px"] * 1e3), "beam_y": round(geometry["beam_center_row_px"] * 1e3),
        "exposure_time": round(exposure_s * 1e3), "detector_type": 3,
        "pixelsize_x": round(geometry["pixel2_m"] * 1e9), "pixelsize_y": round(geometry["pixel1_m"] * 1e9),
        "source_wavelength": round(geometry["wavelength_m"] * 1e15),
    }
    header = bytearray(FRAME_HEADER_BYTES)
    for name, value in values.items():
        offset, code = FIELDS[name]
        struct.pack_into("<" + code, header, offset, value)
    return bytes(header)


def write_marccd(path: str, frame: np.ndarray, geometry: dict) -> None:
    """Write ``frame`` (2-D, values 0..65535) with ``geometry`` (images-table names) as a MarCCD file."""
    frame = np.asarray(frame)
    if frame.ndim != 2 or frame.min() < 0 or frame.max() > 2**16 - 1:
        raise ValueError(f"a MarCCD frame is 2-D uint16, got shape {frame.shape}, range "
                         f"[{frame.min()}, {frame.max()}]")
    rows, cols = frame.shape
    with open(path, "wb") as f:
        f.write(tiff_directory(rows, cols))
        f.write(frame_header(rows, cols, geometry))
        f.write(frame.astype("<u2").tobytes())
