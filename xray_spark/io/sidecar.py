"""A run's sidecar and the geometry of an archive frame, with where each value came from.

The sidecar (``run.yaml`` in a run directory, ``ingest.sidecar``) is written by beamline staff.
It is a versioned mapping (``version``, current ``SIDECAR_VERSION``) checked by the configuration
machinery (``config_types.build``: types, limits, unknown keys refused with the allowed list), so
an error names the file, the key, the value and what is allowed. Keys: ``RunSidecar``'s fields.
A file without ``version`` is version 0 (the unversioned format of before) and is migrated step by
step by ``MIGRATIONS``, like the configuration's; a version newer than this xray_spark knows fails.

Geometry (``xray_spark.geometry.Geometry``: pyFAI's vocabulary, metres, pixel1 = slow/vertical
axis, beam centre in raw pixels (row, column)) is taken, value by value, from the file's own header
or NeXus fields, else from the run's sidecar, else from the configured defaults (beam centre: the
frame's centre). Every value's source is recorded (``header`` | ``sidecar`` | ``default`` |
``none``) so a fallback is never silent. A header value that is not a usable number (not finite, a
length <= 0) is ignored and flagged, as is a header beam centre of exactly (0, 0), the detector
software's "not set". A final beam centre of (0, 0), or further outside the frame than
``ingest.beam_center_margin`` of its size, is flagged (GISAXS beams may sit just below the frame).
Header and sidecar values describe the frame as stored; ``rotate`` then turns a run's frames upright
before they are stored (geometry and masks with them): some beamlines write frames turned by 90 degrees.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Callable

import yaml

from xray_spark.config_types import ConfigError, build, migrated, option
from xray_spark.geometry import FIELDS, Geometry, check_value

SIDECAR_VERSION = 2


class SidecarError(ConfigError):
    """A sidecar that cannot be used: names the file, the key, the value and what is allowed."""


@dataclass(frozen=True)
class RunSidecar:
    """The validated contents of a run's sidecar; None = not set (header or default applies)."""
    version: int = option(SIDECAR_VERSION, "sidecar schema version; a file without it is version 0",
                          min=0, max=SIDECAR_VERSION)
    detector: str | None = option(None, "pyFAI detector name, e.g. Pilatus1M")
    distance_m: float | None = option(None, "sample-detector distance, metres", gt=0.0, finite=True)
    wavelength_m: float | None = option(None, "X-ray wavelength, metres", gt=0.0, finite=True)
    pixel1_m: float | None = option(None, "pixel size, slow (vertical) axis, metres", gt=0.0, finite=True)
    pixel2_m: float | None = option(None, "pixel size, fast (horizontal) axis, metres", gt=0.0, finite=True)
    beam_center_row_px: float | None = option(None, "direct beam, raw pixel row (may lie outside the frame)",
                                              finite=True)
    beam_center_col_px: float | None = option(None, "direct beam, raw pixel column", finite=True)
    incidence_angle_deg: float | None = option(None, "grazing incidence angle, degrees", finite=True)
    mask: str | None = option(None, "user mask file (non-zero = bad), a regular file in the run directory")
    rotate: int | None = option(None, "quarter turns counter-clockwise (numpy.rot90) that bring the stored frames "
                                "upright (q_z up, a film's horizon horizontal), e.g. 1 for NSLS-II SMI WAXS frames",
                                min=0, max=3)

    def values(self) -> dict:
        """The keys the file sets (all but ``version``), JSON-able: what ingest carries to executors."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "version" and getattr(self, f.name) is not None}


def _same_keys(data: dict) -> dict:
    """0 -> 1 and 1 -> 2 keep every key and its meaning: version 0 (no ``version`` key) had version 1's
    keys, and version 2 added ``rotate`` (a version 1 sidecar: frames upright as stored)."""
    return dict(data)


MIGRATIONS: dict[int, Callable[[dict], dict]] = {0: _same_keys, 1: _same_keys}


def migrate(data: dict, source: str) -> dict:
    """Bring a raw sidecar mapping of any known version up to ``SIDECAR_VERSION``."""
    version = data.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise SidecarError(f"{source}: version = {version!r}: expected an integer sidecar schema version "
                           f"0..{SIDECAR_VERSION} (none = 0)")
    if version > SIDECAR_VERSION:
        raise SidecarError(f"{source}: version = {version}: this xray_spark reads sidecar versions "
                           f"0..{SIDECAR_VERSION}; upgrade xray_spark to read it")
    return migrated(data, version, SIDECAR_VERSION, MIGRATIONS, source, SidecarError)


def load_sidecar(path: str) -> RunSidecar:
    """The validated sidecar at ``path`` (all keys unset when the file does not exist)."""
    if not os.path.exists(path):
        return RunSidecar()
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise SidecarError(f"{path}: not readable YAML: {e}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        keys = ", ".join(f.name for f in dataclasses.fields(RunSidecar))
        raise SidecarError(f"{path}: expected a mapping of keys ({keys}), got {type(data).__name__}")
    try:
        sidecar = build(RunSidecar, migrate({str(k): v for k, v in data.items()}, path))
    except SidecarError:
        raise
    except ConfigError as e:
        raise SidecarError(f"{path}: {e}") from None
    if sidecar.mask is not None:
        run_dir = os.path.dirname(os.path.abspath(path))
        mask = os.path.normpath(os.path.join(run_dir, sidecar.mask))
        if os.path.dirname(mask) != run_dir or os.path.islink(mask) or not os.path.isfile(mask):
            raise SidecarError(f"{path}: mask = {sidecar.mask!r}: must name a regular file in the run "
                               "directory (no links, no other directories)")
        sidecar = dataclasses.replace(sidecar, mask=mask)
    return sidecar


def read_sidecar(path: str) -> dict:
    """The keys the sidecar at ``path`` sets (``{}`` when there is none), validated; ``mask`` absolute."""
    return load_sidecar(path).values()


def resolve_geometry(header: dict, sidecar: dict, defaults: dict, shape: tuple[int, int],
                     margin: float) -> tuple[Geometry, dict, list[str]]:
    """(geometry, source of each value, flags) of one frame of shape ``(rows, columns)``.

    ``header`` is the reader's dict, ``sidecar`` ``read_sidecar``'s, ``defaults`` maps geometry
    fields to configured values; missing beam-centre defaults mean the frame's centre.
    """
    flags = []
    header = dict(header)
    if header.get("beam_center_row_px") == 0 and header.get("beam_center_col_px") == 0:
        flags.append("header beam centre (0, 0) ignored as not set")
        del header["beam_center_row_px"], header["beam_center_col_px"]
    for key in FIELDS:
        if header.get(key) not in (None, ""):
            try:
                check_value(key, header[key])
            except ValueError as e:
                flags.append(f"header {key} = {header.pop(key)!r} ignored: {str(e).split(': ', 2)[-1]}")
    centre = {"beam_center_row_px": (shape[0] - 1) / 2, "beam_center_col_px": (shape[1] - 1) / 2}
    values, sources = {}, {}
    for key in FIELDS:
        for source, given in (("header", header), ("sidecar", sidecar), ("default", {**centre, **defaults})):
            if given.get(key) not in (None, ""):
                values[key], sources[key] = given[key], source
                break
        else:
            values[key], sources[key] = None, "none"
    geometry = Geometry(**values, shape=shape)
    row, col = geometry.beam_center_row_px, geometry.beam_center_col_px
    if row == 0 and col == 0:
        flags.append("beam centre at (0, 0)")
    elif not (-margin * shape[0] <= row <= (1 + margin) * shape[0]
              and -margin * shape[1] <= col <= (1 + margin) * shape[1]):
        flags.append(f"beam centre ({row:g}, {col:g}) is implausibly far outside the "
                     f"{shape[0]}x{shape[1]} frame")
    return geometry, sources, flags
