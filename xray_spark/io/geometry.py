"""Geometry of an archive frame, with where each value came from.

Geometry (pyFAI's vocabulary: metres, pixel1 = slow/vertical axis, beam centre in raw pixels
(row, column)) is taken, value by value, from the file's own header or NeXus fields, else from the
run's sidecar file, else from the configured defaults (beam centre: the frame's centre). Every
value's source is recorded (``header`` | ``sidecar`` | ``default``) so a fallback is never silent.
A header beam centre of exactly (0, 0) is the detector software's "not set": it is ignored, and
flagged. A final beam centre of (0, 0), or further outside the frame than
``ingest.beam_center_margin`` of its size, is flagged (GISAXS beams may sit just below the frame).

The sidecar (``run.yaml`` in the run directory) may set: detector, distance_m, wavelength_m,
pixel1_m, pixel2_m, beam_center_row_px, beam_center_col_px, incidence_angle_deg, mask.
"""
from __future__ import annotations

import math
import os

import yaml

LENGTHS = ("distance_m", "wavelength_m", "pixel1_m", "pixel2_m")
NUMBERS = LENGTHS + ("beam_center_row_px", "beam_center_col_px", "incidence_angle_deg")
SIDECAR_KEYS = ("detector", *NUMBERS, "mask")
GEOMETRY_KEYS = ("detector", *NUMBERS)


class SidecarError(ValueError):
    """A sidecar that cannot be used: names the file, the field, the value and what is allowed."""


def read_sidecar(path: str) -> dict:
    """The validated fields of a run's sidecar YAML (``{}`` when the file does not exist)."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        raise SidecarError(f"{path}: not readable YAML: {e}") from None
    if not isinstance(data, dict):
        raise SidecarError(f"{path}: expected a mapping of fields ({', '.join(SIDECAR_KEYS)}), "
                           f"got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - set(SIDECAR_KEYS))
    if unknown:
        raise SidecarError(f"{path}: unknown field(s) {', '.join(map(repr, unknown))}; "
                           f"allowed: {', '.join(SIDECAR_KEYS)}")
    for key in NUMBERS:
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SidecarError(f"{path}: field {key!r} = {value!r}: expected a finite number")
            if key in LENGTHS and value <= 0:
                raise SidecarError(f"{path}: field {key!r} = {value!r}: must be > 0 (metres)")
            data[key] = float(value)
    for key in ("detector", "mask"):
        if key in data and not isinstance(data[key], str):
            raise SidecarError(f"{path}: field {key!r} = {data[key]!r}: expected a string")
    if "mask" in data:
        run_dir = os.path.dirname(os.path.abspath(path))
        mask = os.path.normpath(os.path.join(run_dir, data["mask"]))
        if os.path.dirname(mask) != run_dir or os.path.islink(mask) or not os.path.isfile(mask):
            raise SidecarError(f"{path}: field 'mask' = {data['mask']!r}: must name a regular file "
                               "in the run directory (no links, no other directories)")
        data["mask"] = mask
    return data


def resolve_geometry(header: dict, sidecar: dict, defaults: dict, shape: tuple[int, int],
                     margin: float) -> tuple[dict, dict, list[str]]:
    """(geometry, source of each value, flags) of one frame of shape ``(rows, columns)``.

    ``defaults`` maps the geometry keys to configured values; missing beam-centre defaults mean
    the frame's centre.
    """
    flags = []
    header = dict(header)
    if header.get("beam_center_row_px") == 0 and header.get("beam_center_col_px") == 0:
        flags.append("header beam centre (0, 0) ignored as not set")
        del header["beam_center_row_px"], header["beam_center_col_px"]
    centre = {"beam_center_row_px": (shape[0] - 1) / 2, "beam_center_col_px": (shape[1] - 1) / 2}
    geometry, sources = {}, {}
    for key in GEOMETRY_KEYS:
        for source, values in (("header", header), ("sidecar", sidecar), ("default", {**centre, **defaults})):
            if values.get(key) not in (None, ""):
                geometry[key], sources[key] = values[key], source
                break
        else:
            geometry[key], sources[key] = None, "none"
    row, col = geometry["beam_center_row_px"], geometry["beam_center_col_px"]
    if row == 0 and col == 0:
        flags.append("beam centre at (0, 0)")
    elif not (-margin * shape[0] <= row <= (1 + margin) * shape[0]
              and -margin * shape[1] <= col <= (1 + margin) * shape[1]):
        flags.append(f"beam centre ({row:g}, {col:g}) is implausibly far outside the "
                     f"{shape[0]}x{shape[1]} frame")
    return geometry, sources, flags
