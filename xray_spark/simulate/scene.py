"""The scene sampler: one consistent experiment per image, drawn from (seed, image index) only.

A scene is a plain JSON-able dict (it is stored as the image's provenance): experiment geometry
(TSAXS, TWAXS, GISAXS, GIWAXS), detector, distance, wavelength, beam centre (in or out of the
frame), incidence and critical angles in grazing incidence, the sample (material, its tags and
scattering features), exposure, background, beamstop, direct/reflected beams and artifacts.

Every draw comes from ``np.random.SeedSequence([seed, index])``, so image ``index`` of ``seed``
is the same whatever the partitioning. Distributions and probabilities come from the
``simulate`` configuration section; ``validate`` checks them at start.
"""
from __future__ import annotations

import math

import numpy as np

from xray_spark import tags as tagmod
from xray_spark.config import ConfigError
from xray_spark.simulate.detectors import DETECTORS, detector
from xray_spark.simulate.materials import MATERIALS, SAXS

DEG = np.pi / 180
GEOMETRIES = ("TSAXS", "TWAXS", "GISAXS", "GIWAXS")
BEAMSTOPS = ("Linear beamstop", "Circular beamstop", "none")


def _choice(rng, weights: dict[str, float], allowed=None) -> str:
    names = [n for n in weights if (allowed is None or n in allowed) and weights[n] > 0]
    p = np.array([weights[n] for n in names], float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _log_uniform(rng, lo_hi) -> float:
    lo, hi = lo_hi
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def validate(sim) -> None:
    """Fail with the key, the value and what is allowed, before any Spark work starts."""
    def fail(key, value, allowed):
        raise ConfigError(f"simulate.{key} = {value!r}: {allowed}")

    def weights(key, known, tag_names=True):
        value = getattr(sim, key)
        if tag_names:
            try:
                tagmod.check_names([k for k in value if k != "none"], where=f"simulate.{key}")
            except tagmod.UnknownTagError as e:
                raise ConfigError(str(e)) from None
        unknown = [k for k in value if k not in known]
        if unknown:
            fail(key, value, f"unknown key(s) {unknown}; the generator knows {', '.join(known)}")
        if any(not (math.isfinite(v) and v >= 0) for v in value.values()) or sum(value.values()) <= 0:
            fail(key, value, "weights must be finite, >= 0, and not all 0")

    weights("geometries", GEOMETRIES)
    weights("detectors", list(DETECTORS), tag_names=False)
    weights("materials", list(MATERIALS))
    weights("beamstops", BEAMSTOPS)
    for key in ("saxs_distance_m", "waxs_distance_m", "wavelength_m", "incidence_deg", "critical_deg",
                "exposure_counts", "background_counts"):
        value = getattr(sim, key)
        if len(value) != 2 or not all(math.isfinite(v) and v > 0 for v in value) or value[0] > value[1]:
            fail(key, value, "expected [low, high] with 0 < low <= high, finite")
    for key, value in sim.artifacts.items():
        try:
            tagmod.check_names([key], where="simulate.artifacts")
        except tagmod.UnknownTagError as e:
            raise ConfigError(str(e)) from None
        if key not in ARTIFACTS:
            fail("artifacts", sim.artifacts, f"{key!r} is a tag the generator cannot draw as an artifact; "
                 f"allowed: {', '.join(ARTIFACTS)}")
        if not (math.isfinite(value) and 0 <= value <= 1):
            fail(f"artifacts.{key}", value, "a probability in [0, 1]")
    for key in ("beam_off_image_saxs", "beam_off_image_waxs", "dead_fraction", "snr_min", "contrast_min"):
        if not math.isfinite(getattr(sim, key)):
            fail(key, getattr(sim, key), "must be a finite number")
    geometries = {g for g, w in sim.geometries.items() if w > 0}
    for g in geometries:
        if not any(g in MATERIALS[m][0] for m, w in sim.materials.items() if w > 0):
            fail("materials", sim.materials, f"no material with weight > 0 can be measured in {g}")


ARTIFACTS = ("2D detector obstruction", "Object obstruction")


def sample_scene(sim, seed: int, index: int) -> tuple[dict, np.random.Generator]:
    """The scene of image ``index`` and the generator for its noise (continues the same stream)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    geometry = _choice(rng, sim.geometries)
    det = detector(_choice(rng, sim.detectors))
    saxs = geometry in SAXS
    grazing = geometry.startswith("GI")
    material = _choice(rng, sim.materials, {m for m, (modes, _) in MATERIALS.items() if geometry in modes})
    sample_tags, features = MATERIALS[material][1](rng, geometry)
    scene = {"geometry": geometry, "detector": det.name, "material": material,
             "wavelength_m": _log_uniform(rng, sim.wavelength_m),
             "distance_m": float(rng.uniform(*(sim.saxs_distance_m if saxs else sim.waxs_distance_m)))}
    rows, cols = det.shape
    off = rng.random() < (sim.beam_off_image_saxs if saxs else sim.beam_off_image_waxs)
    if off:
        side = rng.integers(4) if not grazing else int(rng.choice([0, 2, 3]))   # 0 below, 1 above, 2 left, 3 right
        out = rng.uniform(0.02, 0.4)
        along = rng.uniform(0.1, 0.9)
        row, col = [(rows * (1 + out), cols * along), (-rows * out, cols * along),
                    (rows * along, -cols * out), (rows * along, cols * (1 + out))][side]
    elif grazing:
        row, col = rows * rng.uniform(0.6, 0.95), cols * rng.uniform(0.3, 0.7)
    else:
        row, col = rows * rng.uniform(0.3, 0.7), cols * rng.uniform(0.3, 0.7)
    scene.update(beam_row_px=float(row), beam_col_px=float(col))
    exposure = _log_uniform(rng, sim.exposure_counts)
    scene.update(exposure=exposure, background=_log_uniform(rng, sim.background_counts) / 1.0,
                 air_xi=float(rng.uniform(20, 200)), beam_sigma_px=float(rng.uniform(1.0, 3.0)),
                 shadow_transmission=1e-3, dead_fraction=sim.dead_fraction)
    scene["background"] /= exposure          # background is given in counts; features scale with exposure
    beams = []
    if grazing:
        scene.update(incidence_deg=float(rng.uniform(*sim.incidence_deg)),
                     critical_deg=float(rng.uniform(*sim.critical_deg)))
        sample_tags = sorted(set(sample_tags) | {"Thin film"})
        features = features + _grazing_features(rng, scene)
        alpha_i = scene["incidence_deg"] * DEG
        spec_row = row - scene["distance_m"] * math.tan(2 * alpha_i) / det.pixel1_m
        beams.append((spec_row, col, exposure * rng.uniform(1e2, 1e4)))
    beams.append((row, col, exposure * rng.uniform(1e3, 1e5)))
    stop = _choice(rng, sim.beamstops)
    if stop != "none":
        width = float(rng.uniform(1.5e-3, 5e-3))
        scene["beamstop"] = {"kind": stop, "radius_m": width if stop == "Circular beamstop" else width / 2,
                             "arm_width_m": width / 4, "direction_deg": float(rng.choice([0, 90, 180, 270])),
                             "row_px": row, "col_px": col}
        if grazing and stop == "Linear beamstop":
            scene["beamstop"]["direction_deg"] = 0.0      # a vertical rod from below over both beams
            scene["beamstop"]["row_px"] = spec_row
    scene["beams"] = beams
    scene["sample_tags"] = sample_tags
    scene["features"] = features
    scene["obstructions"] = []
    for artifact, p in sim.artifacts.items():
        if rng.random() < p:
            _artifact(rng, scene, artifact)
    return scene, rng


def _grazing_features(rng, scene) -> list[dict]:
    """Film diffuse scattering (horizon, Yoneda band) and the specular rod of grazing incidence."""
    return [
        {"kind": "film_diffuse", "amp": float(rng.uniform(0.02, 0.3)), "xi": float(rng.uniform(50, 500)),
         "xi_z": float(rng.uniform(20, 100)), "tags": ["Horizon", "Yoneda"]},
        {"kind": "specular_rod", "amp": float(rng.uniform(0.05, 2.0)), "sigma": float(rng.uniform(2e-4, 1e-3)),
         "xi": float(rng.uniform(30, 150)), "tags": ["Specular rod"]},
    ]


def _artifact(rng, scene, artifact):
    if artifact == "2D detector obstruction":
        scene["obstructions"].append({"kind": "edge", "row": float(rng.uniform(0.1, 0.9)),
                                      "col": float(rng.uniform(0.1, 0.9)), "angle_deg": float(rng.uniform(0, 360)),
                                      "tag": artifact})
    elif artifact == "Object obstruction":
        scene["obstructions"].append({"kind": "box", "row": float(rng.uniform(0.2, 0.8)),
                                      "col": float(rng.uniform(0.2, 0.8)), "half_height": float(rng.uniform(0.03, 0.15)),
                                      "half_width": float(rng.uniform(0.03, 0.15)), "tag": artifact})
    scene.setdefault("artifacts", []).append(artifact)
