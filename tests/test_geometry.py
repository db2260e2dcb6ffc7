"""One geometry value (xray_spark.geometry.Geometry) and the versioned run sidecar (io.sidecar)."""
import math

import numpy as np
import pytest

from xray_spark import schema
from xray_spark.geometry import COLUMNS, Geometry
from xray_spark.io import sidecar as sc
from xray_spark.io.readers import pilatus_header
from xray_spark.simulate.pixel_geometry import q_and_obliquity, q_chi

FULL = Geometry(detector="Pilatus1M", distance_m=2.5, wavelength_m=1.2e-10, pixel1_m=172e-6, pixel2_m=172e-6,
                beam_center_row_px=30.0, beam_center_col_px=20.5, incidence_angle_deg=0.2, shape=(1043, 981))


def test_columns_round_trip_and_name_the_images_table():
    columns = FULL.columns()
    assert tuple(columns) == COLUMNS and set(COLUMNS) <= set(schema.IMAGES.names)
    assert columns["raw_height"] == 1043 and columns["raw_width"] == 981
    assert Geometry.from_columns(columns) == FULL and Geometry.from_columns(columns).columns() == columns
    empty = Geometry()
    assert Geometry.from_columns(empty.columns()) == empty and all(v is None for v in empty.columns().values())
    record = schema.image_record(image_id="i", source="archive", beamtime="b", run_id="r", frame=0,
                                 image=np.zeros((4, 4), np.float32), mask=np.zeros((4, 4), np.uint8),
                                 tag_names=None, provenance={}, geometry=FULL)
    assert Geometry.from_columns(record) == FULL           # a table row is a mapping of its columns


def test_header_dict_to_geometry():
    header = pilatus_header("# Pixel_size 172e-6 m x 172e-6 m\n# Wavelength 1.0332 A\n"
                            "# Detector_distance 0.21143 m\n# Beam_xy (498.18, 515.77) pixels\n")
    g = Geometry.from_header(header, shape=(1043, 981))
    assert (g.beam_center_row_px, g.beam_center_col_px) == (515.77, 498.18)
    assert g.distance_m == pytest.approx(0.21143) and g.wavelength_m == pytest.approx(1.0332e-10)
    assert g.shape == (1043, 981) and g.incidence_angle_deg is None
    assert Geometry.from_header({**header, "unrelated": 1}) == g.replace(shape=None)


def test_poni_and_derived_values():
    assert FULL.poni1 == pytest.approx(30.5 * 172e-6) and FULL.poni2 == pytest.approx(21.0 * 172e-6)
    assert FULL.wavenumber == pytest.approx(2 * math.pi / 1.2)
    assert FULL.beam_in_frame and not FULL.replace(beam_center_row_px=-3.0).beam_in_frame
    with pytest.raises(ValueError, match="wavelength_m"):
        Geometry(distance_m=1.0).wavenumber


@pytest.mark.parametrize("detector, shape", [(None, (300, 260)), ("Pilatus1M", (1043, 981))])
def test_integrator_q_equals_the_simulated_q_map(detector, shape):
    g = FULL.replace(detector=detector, shape=shape, beam_center_row_px=120.3, beam_center_col_px=-15.5)
    ai = g.integrator()
    assert (ai.dist, ai.poni1, ai.poni2, ai.wavelength) == (g.distance_m, g.poni1, g.poni2, g.wavelength_m)
    assert (ai.detector.pixel1, ai.detector.pixel2) == (g.pixel1_m, g.pixel2_m)
    if detector:
        assert ai.detector.shape == shape and "Pilatus" in ai.detector.name
    q_ours, _ = q_chi(g, g.shape)
    q_pyfai = ai.qArray(g.shape) / 10.0                                      # pyFAI: nm^-1, ours: 1/angstrom
    for row, col in [(0, 0), (120, 0), (shape[0] - 1, shape[1] - 1), (200, 100)]:
        assert q_ours[row, col] == pytest.approx(q_pyfai[row, col], rel=1e-5)
    np.testing.assert_allclose(q_and_obliquity(g, g.shape)[0], q_pyfai, rtol=1e-5)


@pytest.mark.parametrize("changes, fragment", [
    (dict(distance_m=-1.0), "distance_m = -1.0: must be > 0"),
    (dict(pixel1_m=0.0), "pixel1_m = 0.0: must be > 0"),
    (dict(wavelength_m=math.nan), "wavelength_m = nan: must be a finite number"),
    (dict(beam_center_col_px=math.inf), "beam_center_col_px = inf: must be a finite number"),
    (dict(incidence_angle_deg="steep"), "incidence_angle_deg = 'steep': must be a finite number"),
    (dict(detector=3), "detector = 3: expected a pyFAI detector name"),
    (dict(shape=(10, -2)), "shape = (10, -2): expected (rows, columns)"),
])
def test_invalid_values_name_the_field(changes, fragment):
    with pytest.raises(ValueError) as err:
        FULL.replace(**changes)
    assert fragment in str(err.value)


def test_integrator_needs_the_whole_geometry():
    with pytest.raises(ValueError, match="wavelength_m"):
        FULL.replace(wavelength_m=None).integrator()


def test_resampled_keeps_the_poni():
    g = FULL.resampled((256, 241))
    assert g.shape == (256, 241)
    assert g.poni1 == pytest.approx(FULL.poni1) and g.poni2 == pytest.approx(FULL.poni2)



@pytest.mark.parametrize("turns", [1, 2, 3])
def test_a_turned_geometry_is_the_turned_frame_s(turns):
    """q of every pixel of the turned geometry is the turned q map (pyFAI, no approximation); four turns are none."""
    g = FULL.replace(pixel2_m=FULL.pixel1_m * 1.5)
    q = g.integrator().qArray(g.shape)
    turned = g.turned(turns)
    assert np.allclose(turned.integrator().qArray(turned.shape), np.rot90(q, turns), rtol=1e-5, atol=1e-5)
    assert g.turned(turns).turned(4 - turns) == g and g.turned(4) == g


# ---------------------------------------------------------------- the run sidecar

def write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return str(path)


def test_a_version_0_sidecar_migrates(tmp_path):
    np.save(tmp_path / "m.npy", np.zeros((2, 2)))
    old = sc.load_sidecar(write(tmp_path, "distance_m: 2\ndetector: Pilatus1M\nmask: m.npy\n"))
    assert old.version == sc.SIDECAR_VERSION == 2 and {0, 1} <= set(sc.MIGRATIONS)
    assert old.distance_m == 2.0 and isinstance(old.distance_m, float) and old.mask == str(tmp_path / "m.npy")
    new = sc.load_sidecar(write(tmp_path, "version: 1\ndistance_m: 2.0\ndetector: Pilatus1M\nmask: m.npy\n"))
    assert new == old and new.rotate is None
    assert sc.read_sidecar(str(tmp_path / "run.yaml")) == {"detector": "Pilatus1M", "distance_m": 2.0,
                                                            "mask": str(tmp_path / "m.npy")}
    assert sc.load_sidecar(str(tmp_path / "absent.yaml")) == sc.RunSidecar() and sc.read_sidecar("/nonexistent") == {}
    assert sc.load_sidecar(write(tmp_path, "version: 2\nrotate: 1\n")).rotate == 1


@pytest.mark.parametrize("text, fragment", [
    ("distance_m: 2.0\nwavelenght_m: 1.0e-10\n", "unknown key 'wavelenght_m'; allowed in top level: version, "
     "detector, distance_m, wavelength_m, pixel1_m, pixel2_m, beam_center_row_px, beam_center_col_px, "
     "incidence_angle_deg, mask, rotate"),
    ("distance_m: -2.5\n", "distance_m = -2.5: must be > 0"),
    ("version: 1\npixel2_m: 0\n", "pixel2_m = 0.0: must be > 0"),
    ("distance_m: two metres\n", "distance_m = 'two metres': expected float"),
    ("beam_center_col_px: yes\n", "beam_center_col_px = True: expected float"),
    ("incidence_angle_deg: .inf\n", "incidence_angle_deg = inf: must be a finite number"),
    ("version: 3\ndistance_m: 1.0\n", "version = 3: this xray_spark reads sidecar versions 0..2; upgrade"),
    ("version: -1\n", "version = -1: expected an integer sidecar schema version"),
])
def test_bad_sidecars_name_file_key_and_value(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(sc.SidecarError) as err:
        sc.load_sidecar(path)
    assert str(err.value).startswith(f"{path}: ") and fragment in str(err.value)
    assert isinstance(err.value, ValueError)


def test_resolve_geometry_returns_a_geometry_and_ignores_unusable_header_values():
    defaults = {"distance_m": 1.0, "wavelength_m": 1e-10, "pixel1_m": 1e-4, "pixel2_m": 1e-4, "detector": None}
    g, sources, flags = sc.resolve_geometry({"distance_m": -3.0, "wavelength_m": math.nan}, {"distance_m": 2.0},
                                            defaults, (100, 200), 0.5)
    assert isinstance(g, Geometry) and g.shape == (100, 200)
    assert (g.distance_m, sources["distance_m"]) == (2.0, "sidecar")
    assert (g.wavelength_m, sources["wavelength_m"]) == (1e-10, "default")
    assert any("header distance_m = -3.0 ignored" in f for f in flags)
    assert any("header wavelength_m = nan ignored" in f for f in flags)
    assert g.columns()["raw_height"] == 100 and set(sources) == set(COLUMNS) - {"raw_height", "raw_width"}
