"""Physics descriptors of a stored image: the azimuthally integrated profile I(q) and the anisotropy
over azimuth on one fixed log-q grid, computed with pyFAI's integrators.

Every image gets vectors of the same length on the same grid, so that frames of different
detectors, distances and wavelengths compare bin by bin:

- ``profile``: log10(1 + I), I the mean counts of the valid pixels in each bin (pyFAI
  ``integrate1d``); 0 where the frame does not reach that q;
- ``anisotropy``: the spread of I over ``sectors`` azimuthal sectors in each bin (pyFAI
  ``integrate2d``), std / (mean + 1 count): 0 for an isotropic ring, up to sqrt(sectors - 1) for
  a single spot; the one count keeps the noise of empty background from looking anisotropic.

The geometry is the stored image's: the row's raw detector geometry (``Geometry.from_columns``)
resampled onto the stored grid (``Geometry.resampled``; letterboxed frames shifted into their
square). When a value the integration needs is unknown, the same descriptors are taken in image
space instead (``axis = "radius"``): log radius in stored pixels about the beam centre (or the
image's centre when that is unknown too), through a stand-in pyFAI geometry of 1 mm pixels and a
radial unit ``log(r.px)`` registered here.

Counts are recovered from the stored log scale (``preprocess.log_scale`` inverted); a stored pixel
is the mean of the log over its detector area, so the counts are a geometric-mean estimate: close
enough for a descriptor, and the same for every image.
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from xray_spark.geometry import Geometry
from xray_spark.preprocess import stored_shape

Q_UNIT = "log(q.nm)_None"           # pyFAI's natural log of q in nm^-1
RADIUS_UNIT = "log(r.px)_None"      # registered below: natural log of the radius in stored pixels
METHOD = ("no", "histogram", "cython")   # no pixel splitting: 256 x 256 stored pixels, 8 ms for both integrations
INTEGRATION = ("distance_m", "wavelength_m", "pixel1_m", "pixel2_m", "beam_center_row_px", "beam_center_col_px")
STAND_IN_PIXEL_M = 1e-3             # image space: 1 mm pixels at 1 m, so 1000 * r (metres) = r in pixels


@dataclass(frozen=True)
class ProfileGrid:
    """The fixed grids (``explore.*`` configuration): log q (nm^-1) or log radius (stored pixels)."""
    q_min_nm: float
    q_max_nm: float
    radius_min_px: float
    radius_max_px: float
    bins: int
    sectors: int

    def __post_init__(self):
        if not 0 < self.q_min_nm < self.q_max_nm:
            raise ValueError(f"explore.q_min_nm = {self.q_min_nm} and q_max_nm = {self.q_max_nm}: need 0 < min < max")
        if not 0 < self.radius_min_px < self.radius_max_px:
            raise ValueError(f"explore.radius_min_px = {self.radius_min_px} and radius_max_px = "
                             f"{self.radius_max_px}: need 0 < min < max")
        if self.bins < 2 or self.sectors < 2:
            raise ValueError(f"explore.profile_bins = {self.bins}, azimuth_sectors = {self.sectors}: both must be >= 2")

    @classmethod
    def from_config(cls, explore) -> ProfileGrid:
        return cls(explore.q_min_nm, explore.q_max_nm, explore.radius_min_px, explore.radius_max_px,
                   explore.profile_bins, explore.azimuth_sectors)

    def centres(self, axis: str) -> np.ndarray:
        """Bin centres of ``axis`` (``q`` in nm^-1 or ``radius`` in stored pixels), as pyFAI bins them."""
        low, high = (self.q_min_nm, self.q_max_nm) if axis == "q" else (self.radius_min_px, self.radius_max_px)
        edges = np.linspace(math.log(low), math.log(high), self.bins + 1)
        return np.exp((edges[:-1] + edges[1:]) / 2)


def on_stored_grid(geometry: Geometry, shape: tuple[int, int], letterbox: bool) -> Geometry:
    """``geometry`` of a raw frame as seen on the stored image of ``shape`` (pixels of the stored grid;
    a letterboxed frame covers the centred part of the square ``preprocess.stored_shape`` gives)."""
    covered = stored_shape(geometry.shape, shape[0], letterbox) if shape[0] == shape[1] else shape
    top, left = (shape[0] - covered[0]) // 2, (shape[1] - covered[1]) // 2
    resampled = geometry.resampled(covered)
    return resampled.replace(beam_center_row_px=resampled.beam_center_row_px + top,
                             beam_center_col_px=resampled.beam_center_col_px + left, shape=tuple(shape))


def stored_geometry(columns: Mapping, shape: tuple[int, int], letterbox: bool) -> Geometry | None:
    """The stored image's geometry from an `images` row's columns, or None when integration in q
    needs a value the row does not have."""
    geometry = Geometry.from_columns(columns)
    if geometry.missing(*INTEGRATION) or geometry.shape is None:
        return None
    return on_stored_grid(geometry, shape, letterbox)


def beam_on_stored_grid(columns: Mapping, shape: tuple[int, int], letterbox: bool) -> tuple[float, float]:
    """The direct beam in stored pixels when the row gives it and the raw shape, else the image centre."""
    geometry = Geometry.from_columns(columns)
    if geometry.missing("beam_center_row_px", "beam_center_col_px") or geometry.shape is None:
        return (shape[0] - 1) / 2, (shape[1] - 1) / 2
    stored = on_stored_grid(geometry.replace(pixel1_m=1.0, pixel2_m=1.0), shape, letterbox)
    return stored.beam_center_row_px, stored.beam_center_col_px


@functools.cache
def _register_radius_unit() -> None:
    import pyFAI.units

    pyFAI.units.register_radial_unit(
        RADIUS_UNIT, scale=1.0, label="log($r$.px)", short_name="log(r.px)", unit_symbol="?", positive=False,
        equation=lambda x, y, z=None, wavelength=None: np.log(np.sqrt(x * x + y * y) / STAND_IN_PIXEL_M),
        formula=f"log(sqrt(x * x + y * y) / {STAND_IN_PIXEL_M})")


@functools.lru_cache(maxsize=16)     # frames of a run share their geometry; pyFAI keeps its q arrays
def _integrator(geometry: Geometry):
    detectors_log = logging.getLogger("pyFAI.detectors")
    level = detectors_log.level
    detectors_log.setLevel(logging.ERROR)       # "Impossible binning" of every stored grid: expected here
    try:
        return geometry.integrator()
    finally:
        detectors_log.setLevel(level)


def _stand_in(beam: tuple[float, float], shape: tuple[int, int]) -> Geometry:
    """Image space: a geometry whose ``log(r.px)`` is the log radius in stored pixels about ``beam``."""
    return Geometry(distance_m=1.0, wavelength_m=1e-10, pixel1_m=STAND_IN_PIXEL_M, pixel2_m=STAND_IN_PIXEL_M,
                    beam_center_row_px=beam[0], beam_center_col_px=beam[1], shape=shape)


def describe(image: np.ndarray, mask: np.ndarray, columns: Mapping, grid: ProfileGrid, *,
             full_scale_counts: float, letterbox: bool) -> tuple[str, np.ndarray, np.ndarray]:
    """(axis, profile, anisotropy) of one stored image (see the module docstring).

    Parameters
    ----------
    image, mask : (H, W) stored image (log scale in [0, 1]) and its bad pixels (True = bad).
    columns : the row's geometry columns (``geometry.COLUMNS``); missing or None = unknown.
    grid : the fixed grids.
    full_scale_counts, letterbox : the ``preprocess`` settings the image was stored with.

    Returns
    -------
    axis : ``"q"`` or ``"radius"``; profile, anisotropy : (grid.bins,) float32.
    """
    shape = tuple(image.shape)
    counts = np.expm1(np.asarray(image, np.float64) * math.log1p(full_scale_counts))
    geometry = stored_geometry(columns, shape, letterbox)
    if geometry is not None:
        axis, unit, low, high = "q", Q_UNIT, grid.q_min_nm, grid.q_max_nm
    else:
        _register_radius_unit()
        geometry = _stand_in(beam_on_stored_grid(columns, shape, letterbox), shape)
        axis, unit, low, high = "radius", RADIUS_UNIT, grid.radius_min_px, grid.radius_max_px
    integrator = _integrator(geometry)
    common = {"unit": unit, "radial_range": (math.log(low), math.log(high)), "mask": np.asarray(mask, np.int8),
              "method": METHOD, "correctSolidAngle": axis == "q"}
    one = integrator.integrate1d(counts, grid.bins, **common)
    two = integrator.integrate2d(counts, grid.bins, grid.sectors, **common)
    profile = np.where(one.count > 0, np.log10(1.0 + np.maximum(one.intensity, 0.0)), 0.0)
    valid = two.count > 0                                       # (sectors, bins)
    n = valid.sum(axis=0)
    mean = np.where(valid, two.intensity, 0.0).sum(axis=0) / np.maximum(n, 1)
    spread = np.sqrt(np.where(valid, (two.intensity - mean) ** 2, 0.0).sum(axis=0) / np.maximum(n, 1))
    anisotropy = np.where(n >= 2, spread / (np.maximum(mean, 0.0) + 1.0), 0.0)
    return axis, profile.astype(np.float32), anisotropy.astype(np.float32)
