"""Labels come from what is visible: after noise, masking, beamstop, frame and detector effects."""
import math

import numpy as np
import pytest
from test_simulate_physics import scene

from xray_spark.config import ConfigError, load_config
from xray_spark.simulate.detectors import detector, inactive_fraction
from xray_spark.simulate.materials import halo, polycrystalline, ring, spots
from xray_spark.simulate.render import render
from xray_spark.simulate.scene import sample_scene, validate
from xray_spark.simulate.synthetic_images import make_image
from xray_spark.simulate.visibility import visible_tags

GRID = (256, 256)


@pytest.fixture(scope="module")
def sim():
    return load_config(None, []).simulate


def tags_of(sc, sim, seed=0):
    rendered = render(sc, GRID, np.random.default_rng(seed))
    return visible_tags(sc, rendered, detector(sc["detector"]), sim)


def test_faint_ring_is_not_labelled(sim):
    bright = scene(features=[ring(0.1076, 8e-4, 1.0, tags=["Ring: Isotropic"])], background=0.01)
    faint = scene(features=[ring(0.1076, 8e-4, 2e-4, tags=["Ring: Isotropic"])], background=0.01)
    assert "Ring: Isotropic" in tags_of(bright, sim)
    assert "Ring: Isotropic" not in tags_of(faint, sim)


def test_ring_behind_the_beamstop_is_not_labelled(sim):
    stop = {"kind": "Circular beamstop", "radius_m": 0.012, "arm_width_m": 0.001, "direction_deg": 0.0,
            "row_px": 300.0, "col_px": 240.0}
    inside = scene(features=[ring(0.05, 8e-4, 1.0, tags=["Ring: Isotropic"])], beamstop=stop)  # r = 8 mm
    outside = scene(features=[ring(0.15, 8e-4, 1.0, tags=["Ring: Isotropic"])], beamstop=stop)  # r = 24 mm
    assert "Ring: Isotropic" not in tags_of(inside, sim)
    assert {"Ring: Isotropic", "Circular beamstop"} <= set(tags_of(outside, sim))


def test_ring_outside_the_frame_is_not_labelled(sim):
    far = scene(features=[ring(0.9, 8e-4, 1.0, tags=["Ring: Isotropic"])])   # 2theta = 16 deg: off the detector
    assert "Ring: Isotropic" not in tags_of(far, sim)


def test_beam_off_image_and_its_beamstop(sim):
    stop = {"kind": "Linear beamstop", "radius_m": 0.002, "arm_width_m": 0.0, "direction_deg": 0.0,
            "row_px": 700.0, "col_px": 240.0}
    below = scene(beam_center_row_px=700.0, beamstop=stop)              # rod points further down: never in the frame
    tags = tags_of(below, sim)
    assert "Beam off image" in tags and "Linear beamstop" not in tags
    up = scene(beam_center_row_px=700.0, beamstop=dict(stop, direction_deg=180.0))   # rod reaches up into the frame
    assert {"Beam off image", "Linear beamstop"} <= set(tags_of(up, sim))
    assert "Beam off image" not in tags_of(scene(), sim)


def test_peak_in_a_module_gap_is_not_labelled(sim):
    gaps = inactive_fraction("Pilatus1M", GRID) > 0.5
    gap_row = int(np.flatnonzero(gaps.all(axis=1))[2])                    # a full-width horizontal gap
    raw_row = (gap_row + 0.5) * 1043 / 256 - 0.5
    base = dict(detector="Pilatus1M", beam_center_row_px=520.0, beam_center_col_px=300.0, distance_m=2.0)

    def peak_at(row):
        # a spot at q, chi = 0 lands straight above the beam: place it on the wanted raw row
        q = 4 * math.pi / 1.0 * math.sin(0.5 * math.atan((520.0 - row) * 172e-6 / 2.0))
        return scene(**base, features=[spots([(q, 0.0, 3.0)], 2e-4, [])])

    assert "Peaks: Isolated" not in tags_of(peak_at(raw_row), sim)
    assert "Peaks: Isolated" in tags_of(peak_at(raw_row - 40), sim)


def test_direct_beam_saturates_unless_blocked(sim):
    beams = [["direct", 300.0, 240.0, 5e7, 1.0]]
    open_beam = tags_of(scene(beams=beams), sim)
    assert {"Direct", "Saturation"} <= set(open_beam)
    stop = {"kind": "Circular beamstop", "radius_m": 0.003, "arm_width_m": 0.001, "direction_deg": 0.0,
            "row_px": 300.0, "col_px": 240.0}
    blocked = tags_of(scene(beams=beams, beamstop=stop), sim)
    assert "Direct" not in blocked and "Saturation" not in blocked


def test_ccd_blooming_is_a_saturation_artifact(sim):
    beams = [["direct", 300.0, 240.0, 1e8, 1.0]]
    tags = tags_of(scene(detector="Photonics CCD", beam_center_row_px=500.0, beam_center_col_px=500.0,
                         beams=[["direct", 500.0, 500.0, 1e8, 1.0]]), sim)
    assert {"Saturation", "Saturation artifacts", "Photonics CCD"} <= set(tags)
    assert "Saturation artifacts" not in tags_of(scene(beams=beams), sim)    # Pilatus: no blooming


def test_higher_orders_count_visible_orders_only(sim):
    from xray_spark.simulate.materials import lattice_rings

    rings = lattice_rings("lamellar", 0.03, 8, 2000, 1.0, tag="Ring: Isotropic")
    for r in rings[3:]:
        r["amp"] = 1e-5                                                    # orders 4..8 far below the noise
    tags = tags_of(scene(features=rings, background=0.01), sim)
    assert {"Ordered", "Higher orders: 2 to 3"} <= set(tags)
    assert "Higher orders: 7 to 10" not in tags and "Higher orders: 4 to 6" not in tags


def test_images_are_reproducible_bytes(sim):
    config = load_config(None, [])
    first, again, other = make_image(config, 5, 17), make_image(config, 5, 17), make_image(config, 5, 18)
    assert first["image"] == again["image"] and first["tags"].tolist() == again["tags"].tolist()
    assert first["image"] != other["image"]
    assert first["height"] == first["width"] == config.tables.image_size


def test_scene_is_consistent(sim):
    for index in range(40):
        sc, _ = sample_scene(sim, 1, index)
        if sc["geometry"].startswith("GI"):
            assert "Thin film" in sc["sample_tags"] and sc["incidence_angle_deg"] > 0
        assert sc["detector"] in sim.detectors


@pytest.mark.parametrize("field, value, message", [
    ("materials", {"P3HT": 1.0, "PolyStyrene": 1.0}, "unknown tag name.*PolyStyrene.*closest"),
    ("artifacts", {"Saturation": 0.1}, "not an artifact the generator draws"),
    ("saxs_distance_m", [-1.0, 2.0], "simulate.saxs_distance_m = \\[-1.0, 2.0\\]: expected \\[low, high\\]"),
    ("wavelength_m", [float("nan"), 1e-10], "simulate.wavelength_m"),
    ("geometries", {"TSAXS": 0.0, "GISAXS": 0.0}, "not all 0"),
    ("materials", {"AgBH": 1.0, "P3HT": 1.0}, "no material with weight > 0 can be measured in GISAXS"),
])
def test_impossible_configurations_fail_at_start(sim, field, value, message):
    import dataclasses

    with pytest.raises(ConfigError, match=message):
        validate(dataclasses.replace(sim, **{field: value}))


def test_a_giwaxs_horizon_is_the_edge_of_the_films_shadow(sim):
    """At wide angles the film's diffuse scattering is out of view, but what the film scatters stops at
    the horizon: the edge is tagged where it is in the frame, and not where nothing scatters."""
    halo_film = [halo(1.5, 3.0, 1.0)]
    grazing = dict(geometry="GIWAXS", distance_m=0.15, incidence_angle_deg=0.15, critical_deg=0.1,
                   beam_center_row_px=450.0, features=halo_film)
    assert "Horizon" in tags_of(scene(**grazing), sim)
    assert "Horizon" not in tags_of(scene(**dict(grazing, beam_center_row_px=1400.0)), sim)   # below the frame
    assert "Horizon" not in tags_of(scene(**dict(grazing, features=[])), sim)                # nothing scatters


def test_a_polycrystalline_film_has_rings_of_several_textures():
    """Each ring of a polycrystalline film draws its own texture (real GIWAXS films: some rings
    isotropic, some textured or spotted, in the same frame)."""
    mixed = 0
    for seed in range(40):
        tags, features = polycrystalline(np.random.default_rng(seed), "GIWAXS")
        ring_tags = {t for f in features if f["kind"] in ("ring", "spots") for t in f["tags"]}
        assert tags == ["Polycrystalline"] and sum(f["kind"] == "ring" for f in features) + ("Ring: Spotted" in ring_tags) >= 1
        mixed += len(ring_tags) >= 2
    assert mixed >= 20
