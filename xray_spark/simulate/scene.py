"""The scene sampler: one consistent experiment per image, drawn from (seed, image index) only.

A scene is a plain JSON-able dict, stored as the image's provenance: experiment geometry
(TSAXS, TWAXS, GISAXS, GIWAXS), detector, distance, wavelength, beam centre (in or out of the
frame), incidence and critical angles in grazing incidence, the sample (material, its tags and
scattering features), exposure, background, beamstop, direct and reflected beams, artifacts.

Every draw comes from ``np.random.SeedSequence([seed, index])``, so image ``index`` of ``seed``
is the same whatever the partitioning. Distributions and probabilities come from the
``simulate`` configuration section; ``validate`` checks them before any work starts.
"""
from __future__ import annotations

import math

import numpy as np

from xray_spark import tags as tagmod
from xray_spark.config import ConfigError
from xray_spark.simulate.detectors import DETECTORS, detector
from xray_spark.simulate.materials import GRAZING, MATERIALS, SAXS, halo, spots

DEG = np.pi / 180
GEOMETRIES = ("TSAXS", "TWAXS", "GISAXS", "GIWAXS", "GTSAXS")
BEAMSTOPS = ("Linear beamstop", "Circular beamstop", "none")
ARTIFACTS = ("2D detector obstruction", "Object obstruction", "Point detector obstruction", "Beam streaking",
             "Parasitic slit scattering", "Asymmetric (left/right)", "Blocked", "Bad beam shape", "Smearred horizon",
             "Theta sweep")
RANGES = ("saxs_distance_m", "waxs_distance_m", "wavelength_m", "incidence_deg", "critical_deg",
          "exposure_counts", "background_counts")


def _choice(rng, weights: dict[str, float], allowed=None) -> str:
    names = [n for n in weights if (allowed is None or n in allowed) and weights[n] > 0]
    p = np.array([weights[n] for n in names], float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _log_uniform(rng, low_high) -> float:
    low, high = low_high
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def validate(sim) -> None:
    """Fail with the key, the value and what is allowed, before any Spark work starts."""
    def fail(key, value, allowed):
        raise ConfigError(f"simulate.{key} = {value!r}: {allowed}")

    def check_tags(key, names):
        try:
            tagmod.check_names(names, where=f"simulate.{key}")
        except tagmod.UnknownTagError as e:
            raise ConfigError(str(e)) from None

    def weights(key, known, tag_names=True):
        value = getattr(sim, key)
        if tag_names:
            check_tags(key, [k for k in value if k != "none"])
        unknown = [k for k in value if k not in known]
        if unknown:
            fail(key, value, f"the generator cannot make {unknown}; known: {', '.join(known)}")
        if any(not (math.isfinite(v) and v >= 0) for v in value.values()) or sum(value.values()) <= 0:
            fail(key, value, "weights must be finite, >= 0, and not all 0")

    weights("geometries", GEOMETRIES)
    weights("detectors", list(DETECTORS), tag_names=False)
    weights("materials", list(MATERIALS))
    weights("beamstops", BEAMSTOPS)
    check_tags("artifacts", list(sim.artifacts))
    for key, value in sim.artifacts.items():
        if key not in ARTIFACTS:
            fail("artifacts", sim.artifacts,
                 f"{key!r} is not an artifact the generator draws; known: {', '.join(ARTIFACTS)}")
        if not (math.isfinite(value) and 0 <= value <= 1):
            fail(f"artifacts.{key}", value, "a probability in [0, 1]")
    for key in RANGES:
        value = getattr(sim, key)
        if len(value) != 2 or not all(math.isfinite(v) and v > 0 for v in value) or value[0] > value[1]:
            fail(key, value, "expected [low, high] with 0 < low <= high, both finite")
    for key in ("beam_off_image_saxs", "beam_off_image_waxs", "substrate_halo", "substrate_peak", "dead_fraction",
                "snr_min", "contrast_min", "weak_counts", "strong_counts", "high_background_counts"):
        if not math.isfinite(getattr(sim, key)):
            fail(key, getattr(sim, key), "must be a finite number")
    active = {m for m, w in sim.materials.items() if w > 0}
    for geometry in (g for g, w in sim.geometries.items() if w > 0):
        if not any(geometry in MATERIALS[m][0] for m in active):
            fail("materials", sim.materials, f"no material with weight > 0 can be measured in {geometry}; "
                 f"{geometry} allows {', '.join(m for m, (g, _) in MATERIALS.items() if geometry in g)}")


def _beam_centre(rng, sim, rows, cols, saxs, grazing):
    """Raw (row, col) of the direct beam: inside the frame, or off it (detector moved to wide angles)."""
    if rng.random() < (sim.beam_off_image_saxs if saxs else sim.beam_off_image_waxs):
        side = int(rng.choice([0, 2, 3])) if grazing else int(rng.integers(4))     # 0 below, 1 above, 2 left, 3 right
        # grazing incidence keeps the low q_z region in view: the beam is only just below the frame,
        # or far to a side (a detector swung out to wide angles in the film's plane)
        out, along = rng.uniform(0.02, 0.15 if grazing and side == 0 else 0.35), rng.uniform(0.1, 0.9)
        return [(rows * (1 + out), cols * along), (-rows * out, cols * along),
                (rows * along, -cols * out), (rows * along, cols * (1 + out))][side]
    if grazing:
        return rows * rng.uniform(0.6, 0.95), cols * rng.uniform(0.3, 0.7)
    return rows * rng.uniform(0.3, 0.7), cols * rng.uniform(0.3, 0.7)


def sample_scene(sim, seed: int, index: int) -> tuple[dict, np.random.Generator]:
    """The scene of image ``index`` of ``seed``, and the generator its noise continues from."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    geometry = _choice(rng, sim.geometries)
    det = detector(_choice(rng, sim.detectors))
    saxs, grazing = geometry in SAXS, geometry in GRAZING
    material = _choice(rng, sim.materials, {m for m, (modes, _) in MATERIALS.items() if geometry in modes})
    sample_tags, features = MATERIALS[material][1](rng, geometry)
    rows, cols = det.shape
    row, col = _beam_centre(rng, sim, rows, cols, saxs, grazing)
    exposure = _log_uniform(rng, sim.exposure_counts)
    scene = {"geometry": geometry, "detector": det.name, "material": material,
             "wavelength_m": _log_uniform(rng, sim.wavelength_m),
             "distance_m": float(rng.uniform(*(sim.saxs_distance_m if saxs else sim.waxs_distance_m))),
             "beam_center_row_px": float(row), "beam_center_col_px": float(col), "exposure": exposure,
             "background": _log_uniform(rng, sim.background_counts) / exposure,   # per unit exposure
             "air_xi": float(rng.uniform(20, 200)), "beam_sigma_px": float(rng.uniform(1.0, 2.5)),
             "shadow_transmission": sim.shadow_transmission, "dead_fraction": sim.dead_fraction, "obstructions": [],
             "artifacts": []}
    direct = exposure * float(rng.uniform(1e3, 1e5))
    scene["beams"] = [["direct", float(row), float(col), direct, 1.0]]
    if grazing:
        scene.update(incidence_angle_deg=float(rng.uniform(*sim.incidence_deg)),
                     critical_deg=float(rng.uniform(*sim.critical_deg)))
        if geometry == "GTSAXS":
            scene["edge_transmission"] = float(rng.uniform(0.2, 1.0))
        sample_tags = sorted(set(sample_tags) | {"Thin film"})
        features = features + _film_features(rng, scene)
        if geometry == "GIWAXS" and material not in ("SiO2",) and rng.random() < sim.substrate_halo:
            features.append(halo(rng.uniform(1.5, 1.62), rng.uniform(2.0, 4.0), float(rng.uniform(0.1, 0.5))))
            sample_tags = sorted(set(sample_tags) | {"SiO2"})
        if geometry == "GIWAXS" and rng.random() < sim.substrate_peak:
            # Si(001) wafer: the (111) reflection at q_xy = 2 pi sqrt2 / a, q_z = 2 pi / a
            features.append(spots([(float(rng.choice([-1, 1])) * 1.636, 1.157, float(rng.uniform(2, 50)))], 0.003,
                                  ["Silicon"]))
        spec_row = row - scene["distance_m"] * math.tan(2 * scene["incidence_angle_deg"] * DEG) / det.pixel1_m
        scene["beams"][0][3] = direct * 0.5                       # the film's edge takes half the beam
        scene["beams"].append(["specular", float(spec_row), float(col), direct * float(rng.uniform(1e-3, 1e-1)), 1.0])
    stop = _choice(rng, sim.beamstops)
    if stop != "none":
        width = float(rng.uniform(1.5e-3, 4e-3))
        scene["beamstop"] = {"kind": stop, "radius_m": width if stop == "Circular beamstop" else width / 2,
                             "arm_width_m": width / 5, "direction_deg": float(rng.choice([0, 90, 180, 270])),
                             "row_px": float(row), "col_px": float(col)}
        if grazing and stop == "Linear beamstop":                # a vertical rod from below over both beams
            scene["beamstop"].update(direction_deg=0.0, row_px=float(spec_row) if rng.random() < 0.5 else float(row))
    scene["sample_tags"], scene["features"] = sample_tags, features
    for artifact, p in sim.artifacts.items():
        if rng.random() < p:
            _artifact(rng, scene, artifact, grazing)
    return scene, rng


def _film_features(rng, scene) -> list[dict]:
    """Film diffuse scattering (horizon, Yoneda band) and the specular rod of grazing incidence."""
    rod_sigma = float(rng.uniform(2e-4, 8e-4)) if rng.random() < 0.8 else float(rng.uniform(2e-3, 6e-3))
    return [
        {"kind": "film_diffuse", "amp": float(rng.uniform(0.05, 0.5)), "xi": float(rng.uniform(50, 500)),
         "xi_z": float(rng.uniform(20, 100)), "tags": ["Yoneda"]},
        {"kind": "specular_rod", "amp": float(rng.uniform(0.1, 3.0)), "sigma": rod_sigma,
         "xi": float(rng.uniform(30, 150)),
         "tags": ["Specular rod", "Diffuse specular rod"] if rod_sigma > 1.5e-3 else ["Specular rod"]},
    ]


def _artifact(rng, scene, artifact, grazing):
    """Add one artifact to the scene (obstruction shadows, streaks, asymmetry, blocked beam, ...)."""
    needs_beam = ("Beam streaking", "Parasitic slit scattering", "Bad beam shape", "Theta sweep")
    if artifact in needs_beam and not scene["beams"]:
        return
    if artifact == "2D detector obstruction":             # a flight-tube or window edge cutting a side
        side = int(rng.integers(4))
        depth = float(rng.uniform(0.05, 0.3))
        # the shadow lies beyond a line near side 0 bottom, 1 top, 2 left, 3 right, away from the centre
        angle = float(rng.uniform(-20, 20)) + [0, 180, 270, 90][side]
        point = [(1 - depth, 0.5), (depth, 0.5), (0.5, depth), (0.5, 1 - depth)][side]
        scene["obstructions"].append({"kind": "edge", "row": point[0], "col": point[1], "angle_deg": angle,
                                      "tag": artifact})
    elif artifact == "Object obstruction":
        scene["obstructions"].append({"kind": "box", "row": float(rng.uniform(0.2, 0.8)),
                                      "col": float(rng.uniform(0.2, 0.8)), "half_height": float(rng.uniform(0.03, 0.2)),
                                      "half_width": float(rng.uniform(0.03, 0.2)), "tag": artifact})
    elif artifact == "Point detector obstruction":
        scene["obstructions"].append({"kind": "disk", "row": float(rng.uniform(0.15, 0.85)),
                                      "col": float(rng.uniform(0.15, 0.85)), "radius": float(rng.uniform(0.02, 0.05)),
                                      "tag": artifact})
    elif artifact in ("Beam streaking", "Parasitic slit scattering"):
        # slit scattering: streaks through the beam, horizontal (beam streaking) or a cross of both
        directions = ["horizontal"] if artifact == "Beam streaking" else ["horizontal", "vertical"]
        for direction in directions:
            scene["features"].append({"kind": "streak", "direction": direction, "tags": [artifact],
                                      "amp": float(rng.uniform(1e-5, 1e-3)) * scene["beams"][0][3] / scene["exposure"],
                                      "width_px": float(rng.uniform(1.0, 3.0)), "length_px": float(rng.uniform(20, 200))})
    elif artifact == "Asymmetric (left/right)" and grazing:
        strength = float(rng.uniform(0.5, 0.9)) * (1 if rng.random() < 0.5 else -1)
        for feature in scene["features"]:
            if feature["kind"] in ("film_diffuse", "bragg_rods"):
                feature.update(asymmetry=strength, asym_scale=float(rng.uniform(20, 200)))
                if feature["kind"] == "film_diffuse":
                    feature["tags"] = feature["tags"] + [artifact]
    elif artifact == "Blocked":
        scene["sample_attenuation"] = 1e-3
        scene["beams"] = []
    elif artifact == "Bad beam shape":
        scene["beams"][0][4] = float(rng.uniform(3, 8))
        scene["beam_elongation"] = scene["beams"][0][4]
    elif artifact == "Theta sweep" and grazing:
        # the exposure integrates a scan of the incidence angle: several horizons and reflected beams
        sweep = sorted(float(a) for a in rng.uniform(0.05, 0.35, int(rng.integers(3, 6))))
        _, row, col, direct, _ = scene["beams"][0]
        pixel = detector(scene["detector"]).pixel1_m
        scene["sweep_deg"] = sweep
        scene["beams"] = [scene["beams"][0]] + [
            ["specular", row - scene["distance_m"] * math.tan(2 * a * DEG) / pixel, col,
             direct * float(rng.uniform(1e-3, 3e-2)) / len(sweep), 1.0] for a in sweep]
    elif artifact == "Smearred horizon" and grazing:
        scene["horizon_smear_deg"] = float(rng.uniform(0.03, 0.1))
    else:
        return
    scene["artifacts"].append(artifact)
