"""Grazing-incidence geometry (GISAXS, GIWAXS): exit angles, q_xy / q_z, refraction, Fresnel factors.

The film lies horizontally and is tilted by the incidence angle ``alpha_i`` towards the beam, so
on the detector (rows grow downwards) the direct beam is at the beam centre, the sample horizon
(exit angle 0) at ``distance * tan(alpha_i)`` above it, the specular reflection at ``2 alpha_i``
above it. Scattering from the film is the distorted-wave Born approximation at its simplest: the
film's scattering is evaluated at the refraction-corrected q_z inside the film, and multiplied
by the Fresnel transmission of the exit wave ``|t(alpha_f)|^2``, which peaks at the critical
angle (the Yoneda band) and vanishes below the horizon, where the substrate absorbs.

References: Renaud, Lazzari, Leroy, Surf. Sci. Rep. 64, 255 (2009), sections 2.2 and 3.2;
Müller-Buschbaum, Anal. Bioanal. Chem. 376, 3 (2003).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xray_spark.geometry import Geometry
from xray_spark.simulate.pixel_geometry import pixel_offsets


@dataclass(frozen=True)
class GrazingMaps:
    """Grazing-incidence maps, separable: row quantities (rows, 1), column quantities (1, cols); float32."""
    alpha_f: np.ndarray        # exit angle above the film surface, radians; (rows, 1)
    q_xy: np.ndarray           # in-plane momentum transfer, signed (right positive), 1/angstrom; (1, cols)
    q_z_film: np.ndarray       # refraction-corrected q_z inside the film, 1/angstrom; (rows, 1)
    transmission: np.ndarray   # |t(alpha_f)|^2, exit Fresnel factor, 0 below the horizon; (rows, 1)


def fresnel_transmission(alpha: np.ndarray, alpha_c: float) -> np.ndarray:
    """|t|^2 of a wave leaving (or entering) a surface at grazing angle ``alpha`` (radians).

    ``t = 2 sin(a) / (sin(a) + sqrt(sin(a)^2 - sin(a_c)^2))`` without absorption: 4 at the
    critical angle, 1 far above it, 0 at and below the horizon (alpha <= 0).
    """
    s = np.sin(np.maximum(alpha, 0.0))
    kz_film = np.sqrt((s * s - np.sin(alpha_c) ** 2).astype(np.complex128))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(s > 0, 2 * s / (s + kz_film), 0.0)
    return np.abs(t) ** 2


def film_qz(alpha_f: np.ndarray, alpha_i: float, alpha_c: float, wavenumber: float) -> np.ndarray:
    """q_z inside the film: ``k (Re sqrt(sin^2 a_f - sin^2 a_c) + Re sqrt(sin^2 a_i - sin^2 a_c))``.

    A film peak at in-film q_z therefore appears at a larger exit angle than the vacuum q_z
    would put it: the refraction shift, largest near the critical angle.
    """
    sc2 = np.sin(alpha_c) ** 2
    out = np.sqrt(np.maximum(np.sin(np.maximum(alpha_f, 0.0)) ** 2 - sc2, 0.0))
    return wavenumber * (out + np.sqrt(max(np.sin(alpha_i) ** 2 - sc2, 0.0)))


def exit_angle_of(qz_film: float, alpha_i: float, alpha_c: float, wavenumber: float) -> float:
    """Exit angle (radians) at which in-film ``qz_film`` appears; inverse of ``film_qz``."""
    sc2 = np.sin(alpha_c) ** 2
    s_out = max(qz_film / wavenumber - np.sqrt(max(np.sin(alpha_i) ** 2 - sc2, 0.0)), 0.0)
    return float(np.arcsin(min(np.sqrt(s_out * s_out + sc2), 1.0)))


def grazing_maps(geometry: Geometry, grid: tuple[int, int], alpha_i: float, alpha_c: float) -> GrazingMaps:
    """Exit angles, q_xy, film q_z and Fresnel factor of the rendered pixels for incidence ``alpha_i``.

    Rows and columns separate (the usual flat-detector approximation, exact on the lines through
    the beam): the exit angle depends on the row only, ``q_xy = k sin(2theta_f)`` on the column
    only. Film features then cost outer products instead of per-pixel trigonometry.
    """
    up, right = pixel_offsets(geometry, grid)
    k = geometry.wavenumber
    alpha_f = np.arctan2(up, geometry.distance_m) - alpha_i                       # (rows, 1)
    q_xy = k * np.sin(np.arctan2(right, geometry.distance_m))                      # (1, cols)
    return GrazingMaps(alpha_f=alpha_f.astype(np.float32), q_xy=q_xy.astype(np.float32),
                       q_z_film=film_qz(alpha_f, alpha_i, alpha_c, k).astype(np.float32),
                       transmission=fresnel_transmission(alpha_f, alpha_c).astype(np.float32))


def horizon_row(geometry: Geometry, alpha_i: float) -> float:
    """Raw-pixel row of the sample horizon (exit angle 0)."""
    return geometry.beam_center_row_px - geometry.distance_m * np.tan(alpha_i) / geometry.pixel1_m


def exit_row(geometry: Geometry, alpha_i: float, alpha_f: float) -> float:
    """Raw-pixel row of exit angle ``alpha_f`` (specular: ``alpha_f = alpha_i``; Yoneda: ``alpha_c``)."""
    return geometry.beam_center_row_px - geometry.distance_m * np.tan(alpha_i + alpha_f) / geometry.pixel1_m
