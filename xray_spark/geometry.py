"""The geometry of one exposure, in pyFAI's vocabulary and units: one value used everywhere.

``Geometry`` is what the generator renders (``simulate``), what ingest resolves for an archive
frame (``io.sidecar``), what the detector writers put in headers and what the `images` table
stores (its geometry columns, ``columns()`` / ``from_columns``):

- ``detector``: pyFAI detector name (e.g. ``Pilatus1M``), or None;
- ``distance_m``, ``wavelength_m``: sample-detector distance and X-ray wavelength, metres;
- ``pixel1_m``, ``pixel2_m``: pixel size along the slow (vertical, rows) and fast (horizontal,
  columns) axis, metres;
- ``beam_center_row_px``, ``beam_center_col_px``: the direct beam (the point of normal incidence;
  no detector tilt) in raw pixel coordinates (row, column; pixel centres at integers). It may lie
  outside the frame. pyFAI's ``poni1 = (beam_center_row_px + 0.5) * pixel1``, likewise ``poni2``;
- ``incidence_angle_deg``: grazing incidence angle, degrees, None unless grazing;
- ``shape``: the raw detector frame (rows, columns).

Every value may be None (an archive frame may lack it); the given ones are checked on
construction (finite; lengths and the shape > 0), and a ValueError names the field and value.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

LENGTHS = ("distance_m", "wavelength_m", "pixel1_m", "pixel2_m")
NUMBERS = (*LENGTHS, "beam_center_row_px", "beam_center_col_px", "incidence_angle_deg")
FIELDS = ("detector", *NUMBERS)                         # the values a header or a sidecar may state
COLUMNS = (*FIELDS, "raw_height", "raw_width")          # the `images` table's geometry columns


def check_value(name: str, value):
    """``value`` of geometry field ``name`` as stored (float, str or None), or a ValueError naming both."""
    if value is None:
        return None
    if name == "detector":
        if not isinstance(value, str):
            raise ValueError(f"geometry: detector = {value!r}: expected a pyFAI detector name (a string)")
        return value
    if name not in NUMBERS:
        raise ValueError(f"geometry: unknown field {name!r}; fields: {', '.join(FIELDS)}, shape")
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, (bool, str, bytes)) or not math.isfinite(number):
        raise ValueError(f"geometry: {name} = {value!r}: must be a finite number")
    if name in LENGTHS and number <= 0:
        raise ValueError(f"geometry: {name} = {value!r}: must be > 0 (metres)")
    return number


@dataclass(frozen=True)
class Geometry:
    """One exposure's geometry (see the module docstring); None = unknown."""
    detector: str | None = None
    distance_m: float | None = None
    wavelength_m: float | None = None
    pixel1_m: float | None = None
    pixel2_m: float | None = None
    beam_center_row_px: float | None = None
    beam_center_col_px: float | None = None
    incidence_angle_deg: float | None = None
    shape: tuple[int, int] | None = None

    def __post_init__(self):
        for name in FIELDS:
            object.__setattr__(self, name, check_value(name, getattr(self, name)))
        if self.shape is not None:
            shape = self.shape
            try:
                ok = len(shape) == 2 and all(not isinstance(s, (bool, str)) and int(s) == s >= 1 for s in shape)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"geometry: shape = {shape!r}: expected (rows, columns), positive integers")
            object.__setattr__(self, "shape", (int(shape[0]), int(shape[1])))

    # ------------------------------------------------------------ conversions

    @classmethod
    def from_columns(cls, columns: Mapping) -> Geometry:
        """The geometry of an `images` row (or any mapping with its column names; others are ignored)."""
        rows, cols = columns.get("raw_height"), columns.get("raw_width")
        return cls(**{k: columns.get(k) for k in FIELDS},
                   shape=(rows, cols) if rows is not None and cols is not None else None)

    def columns(self) -> dict:
        """The `images` table's geometry columns (``COLUMNS``) of this geometry."""
        rows, cols = self.shape if self.shape is not None else (None, None)
        return {**{k: getattr(self, k) for k in FIELDS}, "raw_height": rows, "raw_width": cols}

    @classmethod
    def from_header(cls, header: Mapping, shape: tuple[int, int] | None = None) -> Geometry:
        """The geometry a reader's header dict states (the table's names; other keys are ignored)."""
        return cls(**{k: header.get(k) for k in FIELDS}, shape=shape)

    def replace(self, **changes) -> Geometry:
        return dataclasses.replace(self, **changes)

    def missing(self, *names: str) -> list[str]:
        """Those of ``names`` that are unknown (None)."""
        return [n for n in names if getattr(self, n) is None]

    def _require(self, what: str, *names: str) -> None:
        missing = self.missing(*names)
        if missing:
            raise ValueError(f"geometry: {what} needs {', '.join(missing)}, unknown in {self}")

    # ------------------------------------------------------------ derived values

    @property
    def poni1(self) -> float:
        """pyFAI's poni1: the beam centre's distance from the frame's first row edge, metres."""
        self._require("poni1", "beam_center_row_px", "pixel1_m")
        return (self.beam_center_row_px + 0.5) * self.pixel1_m

    @property
    def poni2(self) -> float:
        """pyFAI's poni2: the beam centre's distance from the frame's first column edge, metres."""
        self._require("poni2", "beam_center_col_px", "pixel2_m")
        return (self.beam_center_col_px + 0.5) * self.pixel2_m

    @property
    def wavenumber(self) -> float:
        """k = 2 pi / lambda, inverse angstrom."""
        self._require("wavenumber", "wavelength_m")
        return 2 * math.pi / (self.wavelength_m * 1e10)

    @property
    def beam_in_frame(self) -> bool:
        """Whether the direct beam hits the frame (a raw pixel's area)."""
        self._require("beam_in_frame", "beam_center_row_px", "beam_center_col_px", "shape")
        rows, cols = self.shape
        return (-0.5 <= self.beam_center_row_px < rows - 0.5
                and -0.5 <= self.beam_center_col_px < cols - 0.5)

    def resampled(self, grid: tuple[int, int]) -> Geometry:
        """The same exposure sampled on ``grid`` (rows, cols) pixels spanning the frame (same poni)."""
        self._require("resampled", "pixel1_m", "pixel2_m", "beam_center_row_px", "beam_center_col_px", "shape")
        zoom_row, zoom_col = grid[0] / self.shape[0], grid[1] / self.shape[1]
        return self.replace(pixel1_m=self.pixel1_m / zoom_row, pixel2_m=self.pixel2_m / zoom_col,
                            beam_center_row_px=(self.beam_center_row_px + 0.5) * zoom_row - 0.5,
                            beam_center_col_px=(self.beam_center_col_px + 0.5) * zoom_col - 0.5,
                            shape=tuple(grid))

    def turned(self, quarter_turns: int) -> Geometry:
        """The geometry of ``numpy.rot90(frame, quarter_turns)``, the frame turned counter-clockwise:
        raw pixel (r, c) of a (rows, cols) frame goes to (cols - 1 - c, r) at each quarter turn."""
        self._require("turned", "shape")
        out = self
        for _ in range(quarter_turns % 4):
            rows, cols = out.shape
            row, col = out.beam_center_row_px, out.beam_center_col_px
            out = out.replace(pixel1_m=out.pixel2_m, pixel2_m=out.pixel1_m, shape=(cols, rows),
                              beam_center_row_px=None if col is None else cols - 1 - col, beam_center_col_px=row)
        return out

    def integrator(self):
        """pyFAI's ``AzimuthalIntegrator`` of this geometry (no tilts).

        Its detector is pyFAI's ``detector`` (binned to ``shape``) when pyFAI knows the name and its
        pixel size is this geometry's; otherwise a plain detector of this pixel size and shape.
        """
        self._require("integrator", "distance_m", "wavelength_m", "pixel1_m", "pixel2_m",
                      "beam_center_row_px", "beam_center_col_px")
        try:
            from pyFAI.integrator.azimuthal import AzimuthalIntegrator
        except ImportError:             # pyFAI < 2024
            from pyFAI.azimuthalIntegrator import AzimuthalIntegrator
        return AzimuthalIntegrator(dist=self.distance_m, poni1=self.poni1, poni2=self.poni2,
                                   wavelength=self.wavelength_m, detector=self._pyfai_detector())

    def _pyfai_detector(self):
        from pyFAI.detectors import Detector

        known = pyfai_detector(self.detector) if self.detector else None
        det = type(known)() if known is not None else None        # a fresh one: binning changes it
        if det is not None and self.shape is not None and tuple(det.shape) != self.shape:
            if not det.guess_binning(self.shape) or tuple(det.shape) != self.shape:
                det = None
        if det is None or not (math.isclose(det.pixel1, self.pixel1_m, rel_tol=1e-6)
                               and math.isclose(det.pixel2, self.pixel2_m, rel_tol=1e-6)):
            det = Detector(self.pixel1_m, self.pixel2_m, max_shape=self.shape)
        return det


@lru_cache(maxsize=32)
def pyfai_detector(name: str):
    """pyFAI's detector for a header or configured name ('PILATUS 1M', 'Eiger2_4M'), or None.

    pyFAI logs its whole registry at ERROR for every name it does not know ('marccd', 'Lambda'); an
    unknown name is an expected answer here (the frame is flagged), so that log is held back."""
    from pyFAI.detectors import detector_factory

    # PILATUS3 modules have the PILATUS layout; pyFAI names only the latter
    words = [w[:-1] if w.lower() == "pilatus3" else w
             for w in name.replace("-", " ").split() if w.lower() not in ("dectris", "si", "cdte")]
    logger = logging.getLogger("pyFAI.detectors")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        for candidate in (name, "".join(words), "_".join(words)):
            try:
                return detector_factory(candidate)
            except (RuntimeError, KeyError, ValueError):
                continue
        return None
    finally:
        logger.setLevel(level)
