"""Render a sampled scene into expected counts, then through the detector into a noisy frame.

``render(scene, grid)`` evaluates every scattering feature on the rendered grid (transmission:
q and chi of the pixel; grazing incidence: the refraction-corrected film q and chi, times the
exit Fresnel factor), adds background, beamstop shadow, direct and reflected beams, then the
detector: gaps, Poisson counting noise, CCD read noise and dark offset, saturation at the
counter limit (with column blooming on CCDs), dead and hot pixels.

It keeps each feature's own expected counts so that ``labels`` can decide what is visible.

Noise of a rendered pixel that stands for ``k`` raw pixels is that of the mean of k raw
pixels: ``Poisson(k * lambda) / k``; above ``k * lambda = 50`` the Poisson law is replaced by its
normal approximation (indistinguishable on the stored log scale, ~5x faster).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xray_spark.simulate import features as F
from xray_spark.simulate.detectors import detector, inactive_fraction
from xray_spark.simulate.geometry import Geometry, q_chi, solid_angle
from xray_spark.simulate.grazing import exit_row, grazing_maps, horizon_row

DEG = np.pi / 180
NORMAL_APPROX_COUNTS = 50.0
GAP_THRESHOLD = 0.5      # a rendered pixel more than half gap is bad, as preprocess decides for stored pixels


@dataclass
class Rendered:
    """A rendered exposure on the (rows, cols) grid; counts are per raw pixel."""
    counts: np.ndarray                   # noisy detector frame, float32
    expected: np.ndarray                 # noise-free expected counts, float32
    bad: np.ndarray                      # bool: gap, inactive or dead (the stored mask)
    shadow: np.ndarray                   # bool: beamstop and obstruction shadows
    saturated: np.ndarray                # bool: at the counter limit
    feature_counts: list[np.ndarray]     # expected counts of each scene feature (same order)
    raw_per_pixel: float                 # raw pixels per rendered pixel
    extras: dict = field(default_factory=dict)   # GI rows, beam positions, ... for labels


def scene_geometry(scene: dict) -> Geometry:
    det = detector(scene["detector"])
    return Geometry(distance_m=scene["distance_m"], wavelength_m=scene["wavelength_m"],
                    pixel1_m=det.pixel1_m, pixel2_m=det.pixel2_m, shape=det.shape,
                    beam_row_px=scene["beam_row_px"], beam_col_px=scene["beam_col_px"])


def to_grid(raw: float, raw_size: int, grid_size: int) -> float:
    """Raw-pixel coordinate -> rendered-grid coordinate (pixel centres at integers)."""
    return (raw + 0.5) * grid_size / raw_size - 0.5


def evaluate(feature: dict, q: np.ndarray, chi: np.ndarray) -> np.ndarray:
    """Intensity of one isotropic or oriented feature on (q, chi) maps; peak about ``amp``."""
    kind = feature["kind"]
    if kind == "ring":
        out = F.ring(q, feature["q0"], feature["sigma"])
    elif kind == "halo":
        out = F.halo(q, feature["q0"], feature["xi"])
    elif kind == "diffuse":
        out = F.diffuse(q, feature["xi"], feature["exponent"])
    elif kind == "form_factor":
        out = F.sphere_form_factor(q, feature["radius"], feature["polydispersity"])
    else:
        raise ValueError(f"feature kind {kind!r} is not a function of (q, chi)")
    if feature.get("kappa"):
        out = out * F.orientation(chi, feature["chi0"], feature["kappa"], feature.get("fold", 2))
    return out * np.float32(feature["amp"])


def beamstop_shadow(scene: dict, geometry: Geometry, grid: tuple[int, int]) -> np.ndarray:
    """Bool (rows, cols) shadow of the beamstop: a disk on a thin arm, or a rod from the frame edge."""
    stop = scene.get("beamstop")
    shape = np.zeros(grid, bool)
    if not stop:
        return shape
    rows, cols = geometry.shape
    r = ((np.arange(grid[0]) + 0.5) * rows / grid[0] - 0.5)[:, None] - stop.get("row_px", geometry.beam_row_px)
    c = ((np.arange(grid[1]) + 0.5) * cols / grid[1] - 0.5)[None, :] - stop.get("col_px", geometry.beam_col_px)
    y, x = r * geometry.pixel1_m, c * geometry.pixel2_m                  # metres from the stop's centre
    direction = stop["direction_deg"] * DEG                              # arm/rod direction, 0 = down
    along = y * np.cos(direction) + x * np.sin(direction)
    across = np.abs(-y * np.sin(direction) + x * np.cos(direction))
    if stop["kind"] == "Circular beamstop":
        arm = (along >= 0) & (across <= stop["arm_width_m"] / 2)
        return arm | (y * y + x * x <= stop["radius_m"] ** 2)
    return (along >= -stop["radius_m"]) & (across <= stop["radius_m"])


def _film_maps(scene, geometry, grid):
    """(q, chi, multiplier) of film scattering in grazing incidence, and the GI maps."""
    alpha_i, alpha_c = scene["incidence_deg"] * DEG, scene["critical_deg"] * DEG
    gi = grazing_maps(geometry, grid, alpha_i, alpha_c)
    q = np.sqrt(gi.q_xy * gi.q_xy + gi.q_z_film * gi.q_z_film)
    chi = np.arctan2(gi.q_xy, np.broadcast_to(gi.q_z_film, q.shape))
    return q, chi, gi


def _add_spot(image, geometry, grid, row_px, col_px, sigma_px, amp):
    """Add a Gaussian spot centred at raw pixel (row_px, col_px) with raw-pixel sigma, in place."""
    rows, cols = geometry.shape
    r0, c0 = to_grid(row_px, rows, grid[0]), to_grid(col_px, cols, grid[1])
    sr, sc = max(sigma_px * grid[0] / rows, 0.4), max(sigma_px * grid[1] / cols, 0.4)
    lo_r, hi_r = int(max(np.floor(r0 - 4 * sr), 0)), int(min(np.ceil(r0 + 4 * sr) + 1, grid[0]))
    lo_c, hi_c = int(max(np.floor(c0 - 4 * sc), 0)), int(min(np.ceil(c0 + 4 * sc) + 1, grid[1]))
    if lo_r >= hi_r or lo_c >= hi_c:
        return
    window = F.spot(np.arange(lo_r, hi_r)[:, None], np.arange(lo_c, hi_c)[None, :], r0, c0, sr, sc)
    image[lo_r:hi_r, lo_c:hi_c] += np.float32(amp) * window


def render(scene: dict, grid: tuple[int, int], rng: np.random.Generator) -> Rendered:
    """Expected and noisy counts of ``scene`` on ``grid``, with each feature's expected counts."""
    det = detector(scene["detector"])
    geometry = scene_geometry(scene)
    k = det.shape[0] * det.shape[1] / (grid[0] * grid[1])
    grazing = scene["geometry"].startswith("GI")
    q_lab, chi_lab = q_chi(geometry, grid)
    scale = solid_angle(geometry, grid).astype(np.float32) * np.float32(scene["exposure"])
    extras = {}
    if grazing:
        q, chi, gi = _film_maps(scene, geometry, grid)
        film_scale = scale * gi.transmission
        extras.update(horizon_row=horizon_row(geometry, scene["incidence_deg"] * DEG),
                      yoneda_row=exit_row(geometry, scene["incidence_deg"] * DEG, scene["critical_deg"] * DEG),
                      specular_row=exit_row(geometry, scene["incidence_deg"] * DEG, scene["incidence_deg"] * DEG))
    else:
        q, chi, film_scale = q_lab, chi_lab, scale
    feature_counts = []
    for feature in scene["features"]:
        if feature["kind"] == "specular_rod":
            rod = F.ring(gi.q_xy, 0.0, feature["sigma"]) * F.diffuse(gi.q_z_film, feature["xi"], 2.0)
            counts = rod * np.float32(feature["amp"]) * film_scale
        elif feature["kind"] == "film_diffuse":
            counts = F.diffuse(np.abs(gi.q_xy), feature["xi"], 3.0) * F.diffuse(gi.q_z_film, feature["xi_z"], 2.0) \
                * np.float32(feature["amp"]) * film_scale
        elif feature["kind"] == "spots":
            counts = np.zeros(grid, np.float32)
            for row_px, col_px, amp in feature["positions"]:
                _add_spot(counts, geometry, grid, row_px, col_px, feature["sigma_px"], amp * scene["exposure"])
        else:
            counts = evaluate(feature, q, chi) * film_scale
        feature_counts.append(np.broadcast_to(counts, grid).astype(np.float32, copy=False))
    background = scene["background"] * (0.3 + 0.7 * F.diffuse(q_lab, scene["air_xi"], 2.0)) * scale
    expected = background + (sum(feature_counts) if feature_counts else np.float32(0.0))
    beams = np.zeros(grid, np.float32)
    for row_px, col_px, counts in scene.get("beams", []):
        _add_spot(beams, geometry, grid, row_px, col_px, scene["beam_sigma_px"], counts)
    expected = expected + beams
    shadow = beamstop_shadow(scene, geometry, grid)
    extras["beamstop_pixels"] = int(shadow.sum())
    for obstruction in scene.get("obstructions", []):
        shadow |= obstruction_shadow(obstruction, grid)
    expected = np.where(shadow, expected * np.float32(scene["shadow_transmission"]), expected).astype(np.float32)
    counts = detect(expected, det, k, rng)
    saturated = counts >= det.counter_limit
    if not det.photon_counting and saturated.any():
        counts, saturated = bloom(counts, expected, saturated, det.counter_limit, det.shape[0] / grid[0])
    bad = inactive_fraction(scene["detector"], grid[0]) > GAP_THRESHOLD
    n_dead = rng.binomial(bad.size, scene["dead_fraction"])
    if n_dead:
        bad.flat[rng.integers(0, bad.size, n_dead)] = True
    extras["beam_in_frame"] = geometry.beam_in_frame
    return Rendered(counts=counts, expected=expected, bad=bad, shadow=shadow, saturated=saturated,
                    feature_counts=feature_counts, raw_per_pixel=k, extras=extras)


def obstruction_shadow(obstruction: dict, grid: tuple[int, int]) -> np.ndarray:
    """Bool shadow of an obstruction given in frame fractions: a half-plane cut or a rectangle."""
    r = (np.arange(grid[0]) + 0.5)[:, None] / grid[0]
    c = (np.arange(grid[1]) + 0.5)[None, :] / grid[1]
    if obstruction["kind"] == "edge":            # a flight tube or window edge across a corner
        a = obstruction["angle_deg"] * DEG
        return (r - obstruction["row"]) * np.cos(a) + (c - obstruction["col"]) * np.sin(a) > 0
    return ((np.abs(r - obstruction["row"]) < obstruction["half_height"])
            & (np.abs(c - obstruction["col"]) < obstruction["half_width"]))


def detect(expected: np.ndarray, det, k: float, rng: np.random.Generator) -> np.ndarray:
    """Noisy mean counts per raw pixel of rendered pixels standing for ``k`` raw pixels each.

    Photon counting: ``Poisson(k lambda) / k``. CCDs add a dark offset and read noise (rms per
    raw pixel, averaged over k). Values are clipped to the counter limit.
    """
    total = expected.astype(np.float32) * np.float32(k)
    low = total < NORMAL_APPROX_COUNTS
    noisy = total + np.sqrt(total) * rng.standard_normal(total.shape, dtype=np.float32)
    if low.any():
        noisy[low] = rng.poisson(total[low])
    counts = np.maximum(noisy, 0.0) / np.float32(k)
    if not det.photon_counting:
        counts += np.float32(det.dark_offset) + np.float32(det.read_noise / np.sqrt(k)) * \
            rng.standard_normal(total.shape, dtype=np.float32)
    return np.minimum(counts, np.float32(det.counter_limit)).astype(np.float32)


def bloom(counts, expected, saturated, limit, raw_rows_per_pixel):
    """CCD blooming: the charge above the full well of saturated pixels runs along their columns."""
    counts = counts.copy()
    excess = np.where(saturated, np.maximum(expected - limit, 0.0), 0.0)
    # excess charge in units of full wells spreads over that many raw rows, half up and half down
    reach = np.ceil(excess / limit / raw_rows_per_pixel / 2).astype(int)
    for r, c in zip(*np.nonzero(reach)):
        lo, hi = max(r - reach[r, c], 0), min(r + reach[r, c] + 1, counts.shape[0])
        counts[lo:hi, c] = limit
    return counts, counts >= limit
