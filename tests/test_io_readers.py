"""Detector readers, geometry, masks, sidecars, labels and discovery on files written here."""
import json
import os

import numpy as np
import pytest

from xray_spark.geometry import pyfai_detector
from xray_spark.io import detector_writers, masks
from xray_spark.io import sidecar as geom
from xray_spark.io.archive import discover
from xray_spark.io.expert_labels import LabelsError, read_labels
from xray_spark.io.readers import UnreadableFile, open_detector_file
from xray_spark.io.rows import file_rows, image_id
from xray_spark.preprocess import stored_shape

DATASETS = ["/entry/data/data", "/entry/data/data_*"]
GEOMETRY = {"distance_m": 2.5, "wavelength_m": 1.2e-10, "pixel1_m": 172e-6, "pixel2_m": 172e-6,
            "beam_center_row_px": 30.0, "beam_center_col_px": 20.5}


def frames(n, shape=(48, 40), seed=0):
    return np.random.default_rng(seed).poisson(200, (n, *shape)).astype(np.uint32)


def read_all(path):
    with open_detector_file(str(path), DATASETS) as f:
        return f, [f.frame(i) for i in range(f.n_frames)]


@pytest.mark.parametrize("fmt", ["edf", "cbf", "tif", "eiger"])
def test_each_format_gives_every_frame_and_its_header_geometry(tmp_path, fmt):
    data = frames(1 if fmt == "cbf" else 3)
    path = tmp_path / ("x_master.h5" if fmt == "eiger" else f"x.{fmt}")
    {"edf": lambda: detector_writers.write_edf(str(path), data, GEOMETRY),
     "cbf": lambda: detector_writers.write_cbf(str(path), data[0], GEOMETRY, detector="PILATUS 1M"),
     "tif": lambda: detector_writers.write_tiff(str(path), data, GEOMETRY),
     "eiger": lambda: detector_writers.write_eiger(str(path), data, GEOMETRY, frames_per_file=2)}[fmt]()
    f, got = read_all(path)
    assert f.n_frames == len(data)
    for a, b in zip(got, data):
        np.testing.assert_array_equal(a, b)
    for key, value in GEOMETRY.items():
        assert f.header[key] == pytest.approx(value), key
    if fmt == "cbf":
        assert f.header["detector"] == "PILATUS 1M"


def test_eiger_pixel_mask_is_read_with_true_meaning_bad(tmp_path):
    mask = np.zeros((48, 40), bool)
    mask[:, 10] = True
    detector_writers.write_eiger(str(tmp_path / "m_master.h5"), frames(2), pixel_mask=mask)
    f, _ = read_all(tmp_path / "m_master.h5")
    np.testing.assert_array_equal(f.pixel_mask, mask)


def write_bytes(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case, reason, fragment", [
    ("zero.cbf", "empty_file", "0 bytes"),
    ("wrong.cbf", "wrong_extension", "extension '.cbf' says cbf but the content is tiff"),
    ("notes.xyz", "unsupported_format", "extension '.xyz'"),
    ("cut.edf", "truncated", "truncated"),
    ("cut.tif", "unreadable", "tiff reader failed"),
    ("nodata.h5", "missing_dataset", "no numeric dataset with 2 or more dimensions"),
    ("lost_master.h5", "missing_dataset", "lost_data_000002.h5"),
    ("rgb.tif", "bad_shape", "not a 2-D image"),
])
def test_bad_files_fail_with_reason_and_message_naming_the_file(tmp_path, case, reason, fragment):
    import h5py
    import tifffile

    path = tmp_path / case
    if case == "zero.cbf":
        path.write_bytes(b"")
    elif case == "wrong.cbf":
        tifffile.imwrite(path, frames(1)[0])
    elif case == "notes.xyz":
        path.write_text("hello")
    elif case in ("cut.edf", "cut.tif"):
        full = tmp_path / ("full" + path.suffix)
        (detector_writers.write_edf if path.suffix == ".edf" else detector_writers.write_tiff)(str(full), frames(2))
        blob = full.read_bytes()
        path.write_bytes(blob[: len(blob) * 2 // 3])
    elif case == "nodata.h5":
        with h5py.File(path, "w") as h5:
            h5["entry/other/thing"] = np.zeros(4)            # 1-D: no frame anywhere
    elif case == "lost_master.h5":
        written = detector_writers.write_eiger(str(path), frames(4), frames_per_file=2)
        os.remove(written[2])
    else:
        tifffile.imwrite(path, np.zeros((16, 16, 3), np.uint8), photometric="rgb")
    with pytest.raises(UnreadableFile) as err:
        with open_detector_file(str(path), DATASETS) as f:
            [f.frame(i) for i in range(f.n_frames)]
    assert err.value.reason == reason
    assert fragment in str(err.value) and case in str(err.value)


def test_geometry_sources_fallbacks_and_beam_centre_flags():
    defaults = {"distance_m": 1.0, "wavelength_m": 1e-10, "pixel1_m": 1e-4, "pixel2_m": 1e-4, "detector": None}
    g, src, flags = geom.resolve_geometry({"distance_m": 3.0, "beam_center_row_px": 0.0, "beam_center_col_px": 0.0},
                                          {"wavelength_m": 2e-10}, defaults, (100, 200), 0.5)
    assert (g.distance_m, src["distance_m"]) == (3.0, "header")
    assert (g.wavelength_m, src["wavelength_m"]) == (2e-10, "sidecar")
    assert (g.pixel1_m, src["pixel1_m"]) == (1e-4, "default")
    assert (g.beam_center_row_px, g.beam_center_col_px) == (49.5, 99.5)   # frame centre
    assert g.shape == (100, 200) and g.incidence_angle_deg is None
    assert src["beam_center_row_px"] == "default" and src["incidence_angle_deg"] == "none"
    assert any("(0, 0) ignored" in f for f in flags)
    _, _, flags = geom.resolve_geometry({}, {"beam_center_row_px": 0.0, "beam_center_col_px": 0.0},
                                        defaults, (100, 200), 0.5)
    assert flags == ["beam centre at (0, 0)"]
    _, _, flags = geom.resolve_geometry({"beam_center_row_px": 500.0, "beam_center_col_px": 10.0}, {},
                                        defaults, (100, 200), 0.5)
    assert "implausibly far outside" in flags[0]
    _, _, flags = geom.resolve_geometry({"beam_center_row_px": 120.0, "beam_center_col_px": 10.0}, {},
                                        defaults, (100, 200), 0.5)
    assert flags == []                           # a GISAXS beam just below the frame is plausible


@pytest.mark.parametrize("text, fragment", [
    ("distance: 2.0\n", "unknown key 'distance'; allowed in top level: version, detector, distance_m"),
    ("distance_m: far\n", "distance_m = 'far': expected float"),
    ("wavelength_m: -1.0e-10\n", "wavelength_m = -1e-10: must be > 0"),
    ("version: 1\ndistance_m: -2\n", "distance_m = -2.0: must be > 0"),
    ("distance_m: .nan\n", "distance_m = nan: must be a finite number"),
    ("beam_center_row_px: [1, 2]\n", "beam_center_row_px = [1, 2]: expected float"),
    ("mask: ../elsewhere.edf\n", "mask = '../elsewhere.edf': must name a regular file in the run directory"),
    ("- 1\n- 2\n", "expected a mapping"),
    ("version: 3\n", "version = 3: this xray_spark reads sidecar versions 0..2; upgrade xray_spark"),
    ("rotate: 4\n", "rotate = 4: must be <= 3"),
    ("rotate: 1.5\n", "rotate = 1.5: expected int"),
    ("version: one\n", "version = 'one': expected an integer sidecar schema version"),
])
def test_bad_sidecar_fields_are_named(tmp_path, text, fragment):
    (tmp_path / "run.yaml").write_text(text)
    with pytest.raises(geom.SidecarError) as err:
        geom.read_sidecar(str(tmp_path / "run.yaml"))
    assert fragment in str(err.value) and "run.yaml" in str(err.value)


def test_masks_combine_detector_gaps_file_and_user_masks():
    det = pyfai_detector("PILATUS 1M")
    assert det is not None and det.shape == (1043, 981)
    gaps = masks.gap_mask(det, (1043, 981))
    assert gaps[:, 487:494].all() and not gaps[0, 0]          # the vertical module gap of a Pilatus 1M
    user = np.zeros((1043, 981), bool)
    user[0, 0] = True
    both = masks.combine_masks((1043, 981), gaps, None, user)
    assert both.sum() == gaps.sum() + 1
    assert masks.gap_mask(det, (64, 64)) is None
    with pytest.raises(ValueError, match="differs from frame shape"):
        masks.combine_masks((64, 64), user)


def test_smv_beam_centres_are_mm_except_the_timepix_su_camera_s_pixels():
    from xray_spark.io.headers import adsc_header

    smv = {"PIXEL_SIZE": "0.1", "DISTANCE": "200", "WAVELENGTH": "1.0", "BEAM_CENTER_X": "25.6", "BEAM_CENTER_Y": "12.8"}
    assert (adsc_header(smv)["beam_center_row_px"], adsc_header(smv)["beam_center_col_px"]) == pytest.approx((256, 128))
    timepix = dict(smv, PIXEL_SIZE="0.055", BEAM_CENTER_X="246.5", BEAM_CENTER_Y="250.0", BEAMLINE="TIMEPIX_SU")
    assert (adsc_header(timepix)["beam_center_row_px"], adsc_header(timepix)["beam_center_col_px"]) == (246.5, 250.0)


def test_detectors_are_identified_by_name_family_and_shape():
    """PILATUS3 frames take the PILATUS layout; a family name alone takes the family's detector of the
    frame's shape; a generic square power-of-two shape names no detector."""
    assert masks.identify("PILATUS3 6M", (2527, 2463))[0].name == "Pilatus 6M"
    lam, flags = masks.identify("Lambda", (516, 1556))
    assert lam.name == "Lambda 750k" and "read as pyFAI's Lambda 750k" in flags[0]
    assert masks.identify("Lambda", (1043, 981)) == (None, ["detector 'Lambda': unknown to pyFAI; no gap mask"])
    assert masks.identify(None, (1043, 981))[0].name == "Pilatus 1M"
    assert masks.identify(None, (512, 512)) == (None, []) and masks.identify(None, (64, 64)) == (None, [])


SETTINGS = {"archive": "/a", "hdf5_datasets": DATASETS, "labels": {}, "defaults": {
    "detector": None, "distance_m": 1.0, "wavelength_m": 1e-10, "pixel1_m": 1e-4, "pixel2_m": 1e-4},
    "beam_center_margin": 0.5, "max_bad_fraction": 0.5, "min_side": 16, "image_size": 32,
    "full_scale_counts": 1048575.0, "mask_threshold": 0.5, "letterbox": True, "batch_rows": 8}


def unit_of(path, sidecar=None):
    st = os.stat(path)
    return {"path": f"bt/run/{path.name}", "abspath": str(path), "beamtime": "bt", "run_id": "run",
            "size": st.st_size, "mtime": st.st_mtime, "parts": [], "sidecar": json.dumps(sidecar or {})}


def test_a_tiff_whose_strip_byte_counts_are_zero_is_read_unless_the_file_is_short(tmp_path):
    """QXRD (APS) writes StripByteCounts = 0; libtiff, tifffile and fabio read the image from its offset on."""
    import tifffile

    frame = frames(1)[0].astype(np.uint16)
    tifffile.imwrite(tmp_path / "f.tif", frame)
    with tifffile.TiffFile(tmp_path / "f.tif") as tif:
        counts, offset = tif.pages[0].tags["StripByteCounts"], tif.pages[0].dataoffsets[0]
    assert counts.count == 1 and counts.dtype == 4 and offset + frame.nbytes == (tmp_path / "f.tif").stat().st_size
    blob = bytearray((tmp_path / "f.tif").read_bytes())
    blob[counts.valueoffset:counts.valueoffset + 4] = bytes(4)               # StripByteCounts = 0
    write_bytes(tmp_path / "qxrd.tif", bytes(blob))
    _, got = read_all(tmp_path / "qxrd.tif")
    assert np.array_equal(got[0], frame)
    write_bytes(tmp_path / "short.tif", bytes(blob[:offset + frame.nbytes // 2]))
    with pytest.raises(UnreadableFile) as err:
        read_all(tmp_path / "short.tif")
    assert err.value.reason == "truncated" and "short.tif" in str(err.value)


@pytest.mark.parametrize("compression", ["lzw", "zlib", "zstd", "packbits"])
def test_compressed_tiffs_give_their_counts(tmp_path, compression):
    """Detector TIFFs are often LZW- or deflate-compressed (imagecodecs decodes them for tifffile)."""
    import tifffile

    frame = frames(1)[0].astype(np.uint16)
    tifffile.imwrite(tmp_path / "f.tif", frame, compression=compression)
    _, got = read_all(tmp_path / "f.tif")
    assert len(got) == 1 and np.array_equal(got[0], frame)


def test_an_hdf5_colour_preview_is_not_taken_for_the_frames(tmp_path):
    """A (rows, cols, 3) RGB thumbnail bigger than the frames (Delmic, other vendors' files) is a picture:
    read as frames it gave hundreds of (cols, 3) slivers, each refused."""
    import h5py

    frame = frames(1)[0].astype(np.uint16)
    with h5py.File(tmp_path / "p.h5", "w") as h:
        h["Preview/Image"] = np.full((64, 64, 3), 7, np.uint8)
        h["Acquisition0/ImageData/Image"] = frame[None, None, None]          # (1, 1, 1, rows, cols)
    f, got = read_all(tmp_path / "p.h5")
    assert f.frame_path == "/Acquisition0/ImageData/Image"
    assert len(got) == 1 and np.array_equal(got[0], frame)


def write_saxs_waxs_nexus(path, saxs, waxs, copy_signal=False):
    """A NeXus file as Diamond's I22 writes one: two NXdetectors (SAXS, WAXS) with their own pixel
    size, distance and pixel mask, the SAXS data also the entry's NXdata signal (linked, or copied
    when ``copy_signal``), a fluorescence analyser whose spectra are no image, and reduced profiles
    (sectors x q) in NXdetector groups of a processing NXinstrument."""
    import h5py

    with h5py.File(path, "w") as h:
        entry = h.create_group("entry1")
        entry.attrs["NX_class"] = "NXentry"
        instrument = entry.create_group("instrument")
        instrument.attrs["NX_class"] = "NXinstrument"
        for name, data, pixel, distance in (("Pilatus2M", saxs, 172e-6, 3.0), ("Pilatus2M_WAXS", waxs, 75e-6, 0.2)):
            det = instrument.create_group(name)
            det.attrs["NX_class"] = "NXdetector"
            det["data"] = data
            for key in ("x_pixel_size", "y_pixel_size"):
                det[key] = pixel
                det[key].attrs["units"] = "m"
            det["distance"] = distance
            det["distance"].attrs["units"] = "m"
            mask = np.zeros(data.shape[-2:], np.uint32)
            mask[0] = 1
            det["pixel_mask"] = mask
        mca = instrument.create_group("xspress3")
        mca.attrs["NX_class"] = "NXdetector"
        mca["data"] = np.ones((len(saxs), 4096), np.uint32)
        processing = entry.create_group("Pilatus2M_processing")           # GDA's reduced profiles
        processing.attrs["NX_class"] = "NXinstrument"
        for name in ("SectorIntegration", "Normalisation"):
            step = processing.create_group(name)
            step.attrs["NX_class"] = "NXdetector"
            step["data"] = np.ones((1, 50, 64), np.float32)
            step["sas_type"] = b"reduction"
        processing["SectorIntegration/q"] = np.linspace(0.1, 2.0, 64)
        processing["SectorIntegration/q"].attrs["axis"] = 1
        nxdata = entry.create_group("Pilatus2M")
        nxdata.attrs.update({"NX_class": "NXdata", "signal": "data"})
        if copy_signal:
            nxdata["data"] = saxs
        else:
            nxdata["data"] = instrument["Pilatus2M/data"]
        h.attrs["default"] = "entry1"
        entry.attrs["default"] = "Pilatus2M"


@pytest.mark.parametrize("copy_signal", [False, True])
def test_a_nexus_file_with_saxs_and_waxs_detectors_gives_the_frames_of_both(tmp_path, copy_signal):
    """Every detector's frames are read, each with its own geometry and mask; the NXdata signal
    that links (or copies) the SAXS data is not read twice; an analyser's spectra and reduced
    profiles are not images."""
    saxs, waxs = frames(2, (48, 40)), frames(3, (40, 64), seed=1)
    write_saxs_waxs_nexus(tmp_path / "scan.nxs", saxs, waxs, copy_signal)
    f, got = read_all(tmp_path / "scan.nxs")
    assert f.n_frames == 5 and [p.n_frames for p in f.detectors] == [2, 3]
    for a, b in zip(got, [*saxs, *waxs]):
        np.testing.assert_array_equal(a, b)
    assert [f.detector(i).frame_path for i in (0, 1, 2, 4)] == ["/entry1/Pilatus2M/data"] * 2 + \
        ["/entry1/instrument/Pilatus2M_WAXS/data"] * 2
    assert f.detector(0).header["distance_m"] == pytest.approx(3.0)
    assert f.detector(2).header == pytest.approx({"distance_m": 0.2, "pixel1_m": 75e-6, "pixel2_m": 75e-6})
    assert f.detector(3).pixel_mask.shape == (40, 64) and f.detector(3).pixel_mask[0].all()
    rows = list(file_rows(unit_of(tmp_path / "scan.nxs"), SETTINGS))
    images = [r for r in rows if r["kind"] == "image"]
    assert len(images) == 5 and len({r["image_id"] for r in images}) == 5
    assert [r["pixel1_m"] for r in images] == pytest.approx([172e-6] * 2 + [75e-6] * 3)
    assert json.loads(images[4]["provenance"])["frame_path"] == "/entry1/instrument/Pilatus2M_WAXS/data"
    assert rows[-1]["status"] == "ingested" and rows[-1]["frames"] == 5


def test_each_panel_of_a_multi_panel_file_gives_its_frames(tmp_path):
    """HEXRD state files keep each detector panel at /images/<panel>/images: every panel is read."""
    import h5py

    panels = {"ff1": frames(1, seed=1), "ff2": frames(2, seed=2)}
    with h5py.File(tmp_path / "state.h5", "w") as h:
        for name, data in panels.items():
            h[f"images/{name}/images"] = data
        h["images/ff3/images"] = panels["ff1"]                  # a copy of a panel's frames is not read twice
    f, got = read_all(tmp_path / "state.h5")
    assert [p.frame_path for p in f.detectors] == ["/images/ff2/images", "/images/ff1/images"]
    for a, b in zip(got, [*panels["ff2"], *panels["ff1"]]):
        np.testing.assert_array_equal(a, b)


def write_reduced_nexus(path, raw=None):
    """A processed NeXus file whose default plot is its integration, a stack of I(q) profiles (frames
    x q, NXdata@axes), beside a cake (chi x q, old-style ``axes``), and the raw frames when given."""
    import h5py

    with h5py.File(path, "w") as h:
        entry = h.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        result = entry.create_group("result")
        result.attrs.update({"NX_class": "NXdata", "signal": "data", "axes": ["frame", "q"]})
        result["data"] = np.ones((12, 500), np.float32)
        result["q"] = np.linspace(0.1, 3.0, 500)
        cake = entry.create_group("cake")
        cake["I"] = np.ones((360, 800), np.float32)
        cake["I"].attrs.update({"signal": 1, "axes": "chi:2theta"})
        if raw is not None:
            entry["data/data"] = raw
        h.attrs["default"] = "entry"
        entry.attrs["default"] = "result"


def test_reduced_data_is_not_taken_for_frames(tmp_path):
    """Profiles and cakes named by their q or angle axes are skipped: the raw frames of the file are
    read; a file of reduced data alone is quarantined as such, not stored as an image."""
    raw = frames(2, (48, 40))
    write_reduced_nexus(tmp_path / "processed.nxs", raw)
    f, got = read_all(tmp_path / "processed.nxs")
    assert f.n_frames == 2 and f.detector(0).frame_path == "/entry/data/data"
    for a, b in zip(got, raw):
        np.testing.assert_array_equal(a, b)
    write_reduced_nexus(tmp_path / "reduced.nxs")
    rows = list(file_rows(unit_of(tmp_path / "reduced.nxs"), SETTINGS))
    assert [r["kind"] for r in rows] == ["quarantine", "file"] and rows[0]["reason"] == "reduced_data"
    assert "/entry/result/data is reduced data (axes q)" in rows[0]["error"]


def test_nan_and_negative_pixels_are_masked_and_a_mostly_invalid_frame_is_quarantined(tmp_path):
    good = frames(1)[0].astype(np.float32)
    good[:5, :5] = np.nan
    good[10, 10] = -2                                  # Pilatus marks bad pixels negative
    detector_writers.write_edf(str(tmp_path / "n.edf"), [good, np.full((48, 40), np.nan, np.float32)])
    rows = list(file_rows(unit_of(tmp_path / "n.edf"), SETTINGS))
    image, quarantined, file_row = rows
    assert image["kind"] == "image" and json.loads(image["provenance"])["bad_pixels"] == 26
    assert image["image_id"] == image_id("bt/run/n.edf", 0)
    assert quarantined["kind"] == "quarantine" and quarantined["frame"] == 1
    assert quarantined["reason"] == "invalid_pixels" and "100.0% of the pixels are bad" in quarantined["error"]
    assert (file_row["status"], file_row["frames"], file_row["quarantined_frames"]) == ("partial", 1, 1)


def test_tiny_frames_are_quarantined_and_a_shape_the_detector_does_not_write_has_no_gap_mask(tmp_path):
    detector_writers.write_edf(str(tmp_path / "tiny.edf"), [np.ones((8, 40), np.float32)])
    detector_writers.write_edf(str(tmp_path / "odd.edf"), [frames(1, (64, 64))[0]])
    tiny = list(file_rows(unit_of(tmp_path / "tiny.edf"), SETTINGS))[0]
    odd = list(file_rows(unit_of(tmp_path / "odd.edf", {"detector": "Pilatus1M"}), SETTINGS))[0]
    assert tiny["reason"] == "bad_shape" and "smaller than ingest.min_side = 16" in tiny["error"]
    provenance = json.loads(odd["provenance"])        # ingested, without gaps, and flagged
    assert odd["kind"] == "image" and provenance["masks"]["detector_gaps"] is None
    assert any("is 1043x981, not 64x64 or binned; no gap mask" in f for f in provenance["flags"])


def test_labels_with_unknown_tag_names_fail_with_the_closest_names(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("path,tags\nbt/run/a.edf,GISAXS;Thin flim\nbt/run/b.cbf,\n")
    with pytest.raises(LabelsError) as err:
        read_labels(str(csv))
    assert "line 2: 'Thin flim' (closest: 'Thin film'" in str(err.value)
    csv.write_text("path,tags\nbt/run/a.edf#1,GISAXS;Thin film\nbt/run/b.cbf,\n")
    assert read_labels(str(csv)) == {"bt/run/a.edf#1": ["GISAXS", "Thin film"], "bt/run/b.cbf": []}


def test_discovery_refuses_links_and_outside_paths_groups_eiger_and_ignores_sidecars(tmp_path):
    root, run = tmp_path / "archive", tmp_path / "archive" / "bt1" / "r1"
    run.mkdir(parents=True)
    outside = tmp_path / "secret.tif"
    detector_writers.write_tiff(str(outside), frames(1))
    detector_writers.write_eiger(str(run / "s_master.h5"), frames(3), frames_per_file=2)
    detector_writers.write_tiff(str(run / "a.tif"), frames(1))
    (run / "link.tif").symlink_to(outside)
    (run / "linkdir").symlink_to(tmp_path)
    (run / "run.yaml").write_text("distance_m: 2.0\n")
    detector_writers.write_tiff(str(root / "loose.tif"), frames(1))
    files, sidecars = discover(str(root), ["*.yaml"], "run.yaml")
    by = {f.path: f for f in files}
    assert sorted(by) == ["bt1/r1/a.tif", "bt1/r1/link.tif", "bt1/r1/linkdir", "bt1/r1/s_master.h5", "loose.tif"]
    assert by["bt1/r1/link.tif"].refused == "symlink_refused" and "secret.tif" in by["bt1/r1/link.tif"].error
    assert by["bt1/r1/linkdir"].refused == "symlink_refused"
    assert by["loose.tif"].refused == "outside_layout"
    assert [os.path.basename(p) for p in by["bt1/r1/s_master.h5"].parts] == ["s_data_000001.h5", "s_data_000002.h5"]
    assert sidecars[("bt1", "r1")] == {"distance_m": 2.0}
    only, _ = discover(str(root), [], "run.yaml", only=[str(outside), "bt1/r1/a.tif", "../secret.tif"])
    assert [(f.path, f.refused) for f in only] == [
        ("../secret.tif", "outside_archive"), (str(outside), "outside_archive"), ("bt1/r1/a.tif", "")]


def test_a_user_mask_named_by_the_sidecar_masks_its_pixels(tmp_path):
    mask = np.zeros((48, 40), np.uint8)
    mask[:, :4] = 1                                      # non-zero = bad
    detector_writers.write_edf(str(tmp_path / "beamstop_mask.edf"), [mask])
    (tmp_path / "run.yaml").write_text("mask: beamstop_mask.edf\ndistance_m: 3.5\n")
    sidecar = geom.read_sidecar(str(tmp_path / "run.yaml"))
    detector_writers.write_edf(str(tmp_path / "f.edf"), frames(1))
    image = next(file_rows(unit_of(tmp_path / "f.edf", sidecar), SETTINGS))
    provenance = json.loads(image["provenance"])
    assert provenance["bad_pixels"] == 48 * 4 and provenance["masks"]["user_mask"].endswith("beamstop_mask.edf")
    assert image["distance_m"] == 3.5 and provenance["geometry_source"]["distance_m"] == "sidecar"
    stored = np.frombuffer(image["mask"], np.uint8).reshape(32, 32)
    _, cols = stored_shape((48, 40), 32, SETTINGS["letterbox"])   # the frame's columns in the stored square
    left = (32 - cols) // 2
    assert stored[:, left].all() and not stored[:, left + cols - 1].any()


def test_a_run_stored_turned_is_stored_upright(tmp_path):
    """``rotate`` in the sidecar: the frame, its mask and its geometry turned as numpy.rot90 turns them
    (as NSLS-II SMI's own code turns its WAXS frames), before the frame is stored."""
    frame = np.full((64, 32), 100, np.uint32)
    frame[:4, :] = 5000                                   # a bright top edge (rows 0-3)
    frame[:, -2:] = 0                                     # ... and a dead right edge, masked by the file's NaNs
    frame = frame.astype(np.float32)
    frame[:, -2:] = np.nan
    detector_writers.write_edf(str(tmp_path / "f.edf"), [frame])
    settings = dict(SETTINGS, letterbox=False)
    header = {"beam_center_row_px": 10.0, "beam_center_col_px": 20.0, "pixel1_m": 1e-4, "pixel2_m": 2e-4}
    upright, turned = ({**header, **extra} for extra in ({}, {"rotate": 1}))
    rows = [next(file_rows(unit_of(tmp_path / "f.edf", side), settings)) for side in (upright, turned)]
    stored = [np.frombuffer(r["image"], "<f4").reshape(32, 32) for r in rows]
    masks = [np.frombuffer(r["mask"], np.uint8).reshape(32, 32) for r in rows]
    assert np.array_equal(stored[1], np.rot90(stored[0])) and np.array_equal(masks[1], np.rot90(masks[0]))
    assert stored[1][:, 0].mean() > 1.5 * stored[1][:, 16].mean()     # the bright edge is now on the left
    assert masks[1][0].all() and not masks[1][-1].any()               # the dead edge on top
    assert (rows[1]["raw_height"], rows[1]["raw_width"]) == (32, 64)
    assert (rows[1]["beam_center_row_px"], rows[1]["beam_center_col_px"]) == (32 - 1 - 20.0, 10.0)
    assert (rows[1]["pixel1_m"], rows[1]["pixel2_m"]) == (2e-4, 1e-4)
    assert json.loads(rows[1]["provenance"])["rotate"] == 1 and json.loads(rows[0]["provenance"])["rotate"] == 0


def test_ingest_and_nightly_refuse_bad_input_before_spark_starts(tmp_path, capsys):
    from xray_spark.cli import main

    assert main(["--set", f"ingest.archive={tmp_path / 'nope'}", "ingest"]) == 2
    assert "is not a directory (set ingest.archive or --archive)" in capsys.readouterr().err
    (tmp_path / "labels.csv").write_text("path,tags\nbt/run/a.tif,Thin flim\n")
    assert main(["ingest", "--archive", str(tmp_path), "--labels", str(tmp_path / "labels.csv")]) == 2
    assert "'Thin flim' (closest: 'Thin film'" in capsys.readouterr().err
    assert main(["nightly", "--night", "2026-13-01"]) == 2
    assert "expected a date YYYY-MM-DD" in capsys.readouterr().err
    assert main(["--set", f"paths.root={tmp_path}", "--set", "nightly.models=[nope]", "nightly",
                 "--archive", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nightly.models:" in err and "no manifest.json" in err
