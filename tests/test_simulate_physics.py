"""Physics of the synthetic-image generator: geometry against pyFAI, ring and lattice positions,
grazing-incidence horizon / Yoneda / specular positions, counting statistics, detector layouts."""
import math

import numpy as np
import pytest

from xray_spark.geometry import Geometry
from xray_spark.simulate import features as F
from xray_spark.simulate.detectors import detector, inactive_fraction
from xray_spark.simulate.grazing import exit_angle_of, exit_row, film_qz, fresnel_transmission, horizon_row
from xray_spark.simulate.materials import ring
from xray_spark.simulate.noise import poisson
from xray_spark.simulate.pixel_geometry import q_chi
from xray_spark.simulate.render import render, scene_geometry, to_grid

DEG = math.pi / 180
RAW = (619, 487)  # Pilatus300k, rendered at its own resolution for sub-pixel checks


def scene(**changes):
    """A transmission SAXS scene on a Pilatus300k with no features, beams or artifacts."""
    base = {"geometry": "TSAXS", "detector": "Pilatus300k", "material": "test", "distance_m": 1.0,
            "wavelength_m": 1.0e-10, "beam_center_row_px": 300.0, "beam_center_col_px": 240.0, "exposure": 1000.0,
            "background": 1e-4, "air_xi": 50.0, "beam_sigma_px": 1.5, "shadow_transmission": 1e-3,
            "dead_fraction": 0.0, "obstructions": [], "artifacts": [], "beams": [], "sample_tags": [],
            "features": []}
    base.update(changes)
    return base


def test_q_map_matches_pyfai():
    g = Geometry(distance_m=0.8, wavelength_m=1.2e-10, pixel1_m=172e-6, pixel2_m=172e-6, shape=(120, 90),
                 beam_center_row_px=40.3, beam_center_col_px=-15.5)       # beam outside the frame
    q, chi = q_chi(g, g.shape)
    reference = g.integrator().qArray(g.shape) / 10.0                     # pyFAI: 1/nm
    np.testing.assert_allclose(q, reference, rtol=1e-5)
    # pyFAI's chi runs from the column axis towards increasing rows; ours from "up" towards the right
    pyfai_chi = g.integrator().center_array(g.shape, unit="chi_rad")
    assert np.allclose(np.angle(np.exp(1j * (pyfai_chi + np.pi / 2 - chi))), 0, atol=1e-5)


def test_ring_radius_matches_its_d_spacing():
    d_spacing = 58.38                                                     # AgBH (001), angstrom
    sc = scene(features=[ring(2 * np.pi / d_spacing, 2e-4, 1.0, tags=["Ring: Isotropic"])])
    expected = render(sc, RAW, np.random.default_rng(0)).expected
    row = expected[300, 240:].astype(float)
    peak = int(np.argmax(row))
    a, b, c = row[peak - 1: peak + 2]
    radius_px = peak + 0.5 * (a - c) / (a - 2 * b + c)                   # parabolic sub-pixel peak
    two_theta = 2 * math.asin(1.0 / (2 * d_spacing))                      # Bragg, lambda = 1 A
    assert radius_px == pytest.approx(1.0 * math.tan(two_theta) / 172e-6, abs=0.3)


@pytest.mark.parametrize("kind, ratios", [
    ("lamellar", [1, 2, 3, 4]),
    ("hexagonal", [1, math.sqrt(3), 2, math.sqrt(7)]),
    ("bcc", [1, math.sqrt(2), math.sqrt(3), 2]),
    ("fcc", [1, math.sqrt(4 / 3), math.sqrt(8 / 3), math.sqrt(11 / 3)]),
])
def test_lattice_peaks_at_their_q_ratios(kind, ratios):
    np.testing.assert_allclose(F.lattice_q(kind, 0.02, 4) / 0.02, ratios, rtol=1e-12)


def test_rendered_lattice_integrates_to_its_peaks_with_pyfai():
    from scipy.signal import find_peaks

    qs = F.lattice_q("hexagonal", 0.03, 4)
    sc = scene(features=[ring(q, 6e-4, 1.0) for q in qs])
    rendered = render(sc, RAW, np.random.default_rng(0))
    g = scene_geometry(sc)
    ai = g.integrator()
    result = ai.integrate1d(rendered.expected, 600, unit="q_A^-1", mask=rendered.bad, correctSolidAngle=True)
    peaks, _ = find_peaks(result.intensity, prominence=0.1 * result.intensity.max())
    found = result.radial[peaks]
    assert len(found) == 4
    np.testing.assert_allclose(found, qs, atol=result.radial[1] - result.radial[0])    # within one q bin


def test_horizon_yoneda_and_specular_rows():
    alpha_i, alpha_c = 0.15, 0.1
    sc = scene(geometry="GISAXS", incidence_angle_deg=alpha_i, critical_deg=alpha_c, beam_center_row_px=560.0,
               distance_m=3.0,
               features=[{"kind": "film_diffuse", "amp": 1.0, "xi": 100.0, "xi_z": 50.0, "tags": ["Yoneda"]}],
               beams=[["specular", 560.0 - 3.0 * math.tan(2 * alpha_i * DEG) / 172e-6, 240.0, 1e6, 1.0]])
    rendered = render(sc, RAW, np.random.default_rng(0))
    g = scene_geometry(sc)
    transmission = rendered.maps.transmission[:, 0]
    horizon = horizon_row(g, alpha_i * DEG)
    assert transmission[int(math.ceil(horizon)) + 1:].max() == 0            # the substrate hides what is below
    assert transmission[: int(horizon) - 1].min() > 0
    assert np.argmax(transmission) == pytest.approx(exit_row(g, alpha_i * DEG, alpha_c * DEG), abs=1.0)
    assert transmission.max() == pytest.approx(4.0, rel=0.05)               # |t|^2 = 4 at the critical angle
    column = rendered.expected[:, 240]
    assert np.argmax(column) == pytest.approx(exit_row(g, alpha_i * DEG, alpha_i * DEG), abs=1.0)


def test_refraction_shifts_film_peaks_up_and_inverts():
    k, alpha_i, alpha_c = 2 * math.pi, 0.12 * DEG, 0.1 * DEG
    qz = 0.02
    alpha_f = exit_angle_of(qz, alpha_i, alpha_c, k)
    assert float(film_qz(np.array(alpha_f), alpha_i, alpha_c, k)) == pytest.approx(qz, rel=1e-9)
    vacuum_alpha_f = math.asin(qz / k - math.sin(alpha_i))
    assert alpha_f > vacuum_alpha_f                                          # the q_z refraction shift
    assert fresnel_transmission(np.array([-0.01, 0.0]), alpha_c).max() == 0


def test_poisson_sampler_has_poisson_mean_and_variance():
    rng = np.random.default_rng(3)
    for lam in (0.02, 0.7, 6.0, 40.0, 400.0):
        draws = poisson(np.full(200_000, lam, np.float32), rng)
        assert draws.mean() == pytest.approx(lam, rel=0.03, abs=0.002)
        assert draws.var() == pytest.approx(lam, rel=0.05, abs=0.002)
        assert np.all(draws == np.round(draws)) and draws.min() >= 0


def test_detector_layouts():
    pilatus = inactive_fraction("Pilatus1M", (256, 256))
    assert detector("Pilatus1M").shape == (1043, 981)
    assert (pilatus > 0.5).any(axis=1).sum() > 3                            # horizontal module gaps
    assert (pilatus > 0.5).mean() == pytest.approx(0.07, abs=0.03)
    mar = inactive_fraction("MarCCD", (64, 64))
    assert mar[0, 0] == 1 and mar[32, 32] == 0                              # circular active area
    assert not inactive_fraction("Photonics CCD", (64, 64)).any()
    assert detector("MarCCD").tag == "MarCCD" and detector("Pilatus1M").tag is None
    # beyond the paper's: a wide module row whose vertical gaps cross the frame, an image plate's round
    # field that is not a MarCCD, a flat panel on its dark offset
    wide = inactive_fraction("Pilatus300kw", (64, 256))
    assert detector("Pilatus300kw").shape == (195, 1475) and (wide > 0.5).all(axis=0).sum() >= 2
    plate = inactive_fraction("Mar345", (64, 64))
    assert plate[0, 0] == 1 and plate[32, 32] == 0 and detector("Mar345").tag is None
    panel = detector("Perkin")
    assert not panel.photon_counting and panel.dark_offset >= 100 and panel.tag is None


def test_grid_coordinates_round_trip():
    assert to_grid(-0.5, 1000, 250) == -0.5 and to_grid(999.5, 1000, 250) == 249.5


def test_gtsaxs_film_scatters_below_the_horizon_too():
    film = [{"kind": "film_diffuse", "amp": 1.0, "xi": 100.0, "xi_z": 50.0, "tags": ["Yoneda"]}]
    common = dict(incidence_angle_deg=0.15, critical_deg=0.1, beam_center_row_px=400.0, distance_m=3.0, features=film)
    below = slice(int(horizon_row(scene_geometry(scene(**common)), 0.15 * DEG)) + 5, 400)
    gisaxs = render(scene(geometry="GISAXS", **common), RAW, np.random.default_rng(0)).maps.transmission
    gtsaxs = render(scene(geometry="GTSAXS", edge_transmission=0.5, **common), RAW,
                    np.random.default_rng(0)).maps.transmission
    assert gisaxs[below].max() == 0 and np.allclose(gtsaxs[below], 0.5)
