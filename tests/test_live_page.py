"""The live page of a beamtime: alert numbers and thumbnails of stored images, the page's state
after each micro-batch (atomic, idempotent, bounded), its alerts, and a real headless Chromium
showing new frames without a reload."""
from __future__ import annotations

import functools
import http.server
import io
import json
import shutil
import threading

import numpy as np
import pytest
from PIL import Image

from xray_spark.report import live_page
from xray_spark.report.live_page import LiveConfig

BEAMTIME = "bt-2026-12"
T0 = 1_800_000_000.0


def stored_image(peak: float = 0.7, background: float = 0.25, saturated: float = 0.0, size: int = 128):
    """A stored (log-scaled) image with a ring, a masked beamstop bar and optionally a saturated
    spot covering ``saturated`` of the pixels."""
    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - size / 2, xx - size / 2)
    image = background + (peak - background) * np.exp(-((radius - size / 4) / 3.0) ** 2)
    mask = np.zeros((size, size), np.uint8)
    mask[size // 2 - 3:size // 2 + 3, : size // 2] = 1
    spot = int(round(np.sqrt(saturated * size * size)))
    image[5:5 + spot, 5:5 + spot] = 1.0
    return image.astype(np.float32), mask


@functools.lru_cache(maxsize=None)
def facts(kind: str) -> dict:
    image = {"clean": lambda: stored_image(),
             "saturated": lambda: stored_image(saturated=0.01),
             "weak": lambda: stored_image(peak=0.08, background=0.02)}[kind]()
    return live_page.frame_facts(*image)


def frame(i: int, run: str = "run1", tags=("GISAXS",), kind: str = "clean") -> dict:
    names = ["GISAXS", "GIWAXS", "Beam off image", "Ring: Isotropic"]
    scores = [0.9 if n in tags else 0.1 for n in names]
    return {"image_id": f"{run}/f{i:04d}", "run_id": run, "frame": 0, "path": f"/landing/{BEAMTIME}/{run}/f{i:04d}.cbf",
            "mtime": T0 + i, "labelled_at": T0 + i + 1.5, "tag_names": list(tags), "scores": scores,
            "scored_tags": names, "facts": facts(kind)}


def batch(batch_id: int, frames: list[dict]) -> dict:
    return {"batch_id": batch_id, "frames": len(frames), "lag_s": 1.5, "rate_fps": 4.0,
            "started": T0 + 10 * batch_id, "ended": T0 + 10 * batch_id + 2}


def state(page_dir) -> dict:
    return live_page.load_state(page_dir, BEAMTIME)


def alert_kinds(page_dir) -> list[tuple[str, str]]:
    return [(a["run"], a["kind"]) for a in state(page_dir)["alerts"]]


def live_data(page_dir) -> dict:
    text = (page_dir / BEAMTIME / "live.js").read_text()
    assert text.startswith("xrayLive(") and text.endswith(");\n")
    return json.loads(text[len("xrayLive("):-3])


# ---------------------------------------------------------------- frame_facts

def test_frame_facts_measure_saturation_scattering_strength_and_bad_pixels():
    clean, saturated, weak = facts("clean"), facts("saturated"), facts("weak")
    assert clean["saturated_fraction"] == 0.0
    assert 0.008 < saturated["saturated_fraction"] < 0.012  # the 1% spot, of the valid pixels
    assert clean["p99_level"] > 0.5 and weak["p99_level"] < 0.1
    assert weak["mean_level"] < clean["mean_level"]
    assert clean["bad_fraction"] == pytest.approx(6 * 64 / 128 ** 2)
    png = Image.open(io.BytesIO(clean["thumbnail_png"]))
    assert png.size == (live_page.THUMB_SIZE, live_page.THUMB_SIZE) and png.mode == "RGB"
    pixels = np.asarray(png)
    assert (pixels[32, 2] == (128, 128, 128)).all()     # the masked bar is grey
    assert len({tuple(p) for p in pixels.reshape(-1, 3)}) > 20  # a colour map, not a flat image
    assert live_page.frame_facts(*stored_image())["thumbnail_png"] == clean["thumbnail_png"]  # deterministic
    with pytest.raises(ValueError, match=r"image of shape \(4, 4\) and mask of shape \(4, 5\)"):
        live_page.frame_facts(np.zeros((4, 4)), np.zeros((4, 5)))


# ---------------------------------------------------------------- publish

def test_publish_replay_of_a_batch_changes_nothing(tmp_path):
    live_page.publish(tmp_path, BEAMTIME, batch(0, [frame(0), frame(1)]), [frame(0), frame(1)])
    live_page.publish(tmp_path, BEAMTIME, batch(1, [frame(2)]), [frame(2)])
    before = state(tmp_path)
    thumbs = sorted(p.name for p in (tmp_path / BEAMTIME / "thumbs").iterdir())
    live_page.publish(tmp_path, BEAMTIME, batch(1, [frame(2)]), [frame(2)])           # replayed after a crash
    live_page.publish(tmp_path, BEAMTIME, batch(7, [frame(1), frame(2)]), [frame(1), frame(2)])  # any batch id
    after = state(tmp_path)
    assert after["runs"] == before["runs"] and after["total"] == before["total"] == 3
    assert [f["image_id"] for f in after["runs"]["run1"]] == ["run1/f0000", "run1/f0001", "run1/f0002"]
    assert sorted(p.name for p in (tmp_path / BEAMTIME / "thumbs").iterdir()) == thumbs
    html = live_data(tmp_path)["html"]
    assert html.count("data-image-id='run1/f0002'") == 1
    assert sorted(p.name for p in (tmp_path / BEAMTIME).iterdir()) == ["index.html", "live.js", "state.json", "thumbs"]


def test_a_page_opened_before_the_first_frames_waits_then_fills_in(tmp_path):
    assert live_page.open_page(tmp_path, BEAMTIME)
    waiting = live_data(tmp_path)
    assert "labelled yet" in waiting["html"] and waiting["updated_epoch"] is None and waiting["version"] == 0
    assert not live_page.open_page(tmp_path, BEAMTIME)                      # a page there is left as it is
    live_page.publish(tmp_path, BEAMTIME, batch(0, [frame(0)]), [frame(0)])
    assert not live_page.open_page(tmp_path, BEAMTIME)
    filled = live_data(tmp_path)
    assert "data-image-id='run1/f0000'" in filled["html"] and filled["version"] == 1


def test_publish_replaces_the_data_atomically(tmp_path):
    """A reader polling live.js and state.json while batches are published only ever sees whole files."""
    live_page.publish(tmp_path, BEAMTIME, batch(0, [frame(0)]), [frame(0)])
    stop, seen, errors = threading.Event(), [], []

    def read():
        while not stop.is_set():
            try:
                seen.append(live_data(tmp_path)["version"])
                json.loads((tmp_path / BEAMTIME / "state.json").read_text())
            except (AssertionError, ValueError) as e:
                errors.append(repr(e))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for b in range(1, 40):
            live_page.publish(tmp_path, BEAMTIME, batch(b, [frame(b)]), [frame(b)])
    finally:
        stop.set()
        reader.join()
    assert not errors
    assert len(set(seen)) > 1 and seen == sorted(seen)


def test_publish_keeps_the_last_n_frames_of_the_latest_runs(tmp_path):
    live = LiveConfig(frames_kept=5, thumbnails=3, runs_shown=2)
    frames = [frame(i) for i in range(8)]
    live_page.publish(tmp_path, BEAMTIME, batch(0, frames[:4]), frames[:4], live)
    live_page.publish(tmp_path, BEAMTIME, batch(1, frames[4:]), frames[4:], live)
    kept = state(tmp_path)["runs"]["run1"]
    assert [f["image_id"] for f in kept] == [f"run1/f{i:04d}" for i in range(3, 8)]
    assert [f["thumb"] is not None for f in kept] == [False, False, True, True, True]
    assert sorted(p.name for p in (tmp_path / BEAMTIME / "thumbs").iterdir()) == sorted(f["thumb"] for f in kept[2:])
    html = live_data(tmp_path)["html"]
    assert [f"data-image-id='run1/f{i:04d}'" in html for i in range(8)] == [False] * 5 + [True] * 3
    for b, run in enumerate(("run2", "run3"), start=2):
        live_page.publish(tmp_path, BEAMTIME, batch(b, [frame(20 + b, run)]), [frame(20 + b, run)], live)
    assert sorted(state(tmp_path)["runs"]) == ["run2", "run3"]   # run1 has the oldest frames: off the page


@pytest.mark.parametrize("frames, expected", [
    ([frame(i) for i in range(6)], []),
    ([frame(i, kind="saturated" if i == 4 else "clean") for i in range(6)], [("run1", "saturation")]),
    ([frame(i, tags=("Beam off image",) if i >= 3 else ("GISAXS",)) for i in range(6)],
     [("run1", "beam_off"), ("run1", "mix")]),  # the tags changed too
    ([frame(i, tags=("Beam off image",) if i == 5 else ("GISAXS",)) for i in range(6)], []),
    ([frame(i, kind="weak" if i >= 3 else "clean") for i in range(6)], [("run1", "weak")]),
    ([frame(i, kind="weak" if i == 5 else "clean") for i in range(6)], []),
    ([frame(i, tags=("GIWAXS",) if i >= 3 else ("GISAXS",)) for i in range(6)], [("run1", "mix")]),
    ([frame(i, tags=("GISAXS", "GIWAXS") if i == 4 else ("GISAXS",)) for i in range(6)], []),
    ([frame(i, tags=("GIWAXS",) if i >= 3 else ("GISAXS",)) for i in range(5)], []),  # fewer than 2 windows
    ([frame(0, "run2", kind="saturated"), *[frame(i, tags=("Beam off image",)) for i in range(1, 6)]],
     [("run2", "saturation"), ("run1", "beam_off")]),
])
def test_alerts_fire_on_their_conditions_only(tmp_path, frames, expected):
    live = LiveConfig(window=3, alert_fraction=0.5, mix_change=0.5, saturated_fraction=0.001, weak_level=0.13)
    live_page.publish(tmp_path, BEAMTIME, batch(0, frames), frames, live)
    assert alert_kinds(tmp_path) == expected
    html = live_data(tmp_path)["html"]
    assert ("No alerts" in html) == (not expected)
    for run, kind in expected:
        assert f"data-kind='{kind}' data-run='{run}'" in html


def test_an_alert_keeps_its_start_while_it_lasts_and_clears(tmp_path):
    live = LiveConfig(window=3)
    sat = [frame(0, kind="saturated")]
    live_page.publish(tmp_path, BEAMTIME, batch(0, sat), sat, live)
    first = state(tmp_path)["alerts"][0]
    assert first["kind"] == "saturation" and first["since"] == "2027-01-15T08:00:02+00:00"
    assert "1 of the last 1 frames" in first["message"] and first["frames"] == ["run1/f0000"]
    live_page.publish(tmp_path, BEAMTIME, batch(1, [frame(1)]), [frame(1)], live)
    assert state(tmp_path)["alerts"][0]["since"] == first["since"]
    clean = [frame(i) for i in range(2, 5)]
    live_page.publish(tmp_path, BEAMTIME, batch(2, clean), clean, live)
    assert state(tmp_path)["alerts"] == [] and state(tmp_path)["since"] == {}


def test_page_needs_a_plain_beamtime_name(tmp_path):
    with pytest.raises(ValueError, match=r"beamtime '\.\./x': the live page needs a plain directory name"):
        live_page.publish(tmp_path, "../x", batch(0, []), [])


# ---------------------------------------------------------------- a real browser

@pytest.fixture(scope="module")
def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "no chromium/chromedriver on PATH: run `make chromium`"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000"):
        options.add_argument(arg)
    browser = webdriver.Chrome(options=options, service=Service(driver))
    yield browser
    browser.quit()


@pytest.fixture
def served(tmp_path):
    """tmp_path over http on loopback (a static web server, as the Kubernetes recipe runs)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


FRAMES = """return [...document.querySelectorAll('.frame')].map(card => [card.dataset.imageId,
    card.querySelector('.name').textContent,
    [...card.querySelectorAll('.tag[data-tag]')].map(tag => tag.dataset.tag)]);"""


def shown(browser, key: int = 0) -> dict[str, list[str]]:
    """image_id (key 0) or file name (key 1) -> tags of the frames the page shows, in the page's
    order (read in one go: the page may update meanwhile)."""
    return {card[key]: card[2] for card in browser.execute_script(FRAMES)}


@pytest.mark.parametrize("scheme", ["file", "http"])
def test_open_page_shows_new_frames_and_alerts_without_reload(chromium, tmp_path, served, scheme):
    from selenium.webdriver.support.ui import WebDriverWait

    live = LiveConfig(refresh_s=0.5, window=3)
    first = [frame(0), frame(1, tags=("GISAXS", "Ring: Isotropic"))]
    live_page.publish(tmp_path, BEAMTIME, batch(0, first), first, live)
    page = live_page.page_path(tmp_path, BEAMTIME)
    chromium.get(page.as_uri() if scheme == "file" else f"{served}/{BEAMTIME}/index.html")
    wait = WebDriverWait(chromium, 3 * live.refresh_s + 1, poll_frequency=0.1)
    wait.until(lambda b: len(shown(b)) == 2)
    assert shown(chromium)["run1/f0001"] == ["GISAXS", "Ring: Isotropic"]
    assert chromium.find_elements("css selector", ".ok") and not chromium.find_elements("css selector", ".alert")
    chromium.execute_script("window.sameDocument = true;")

    more = [frame(i, tags=("Beam off image",), kind="saturated" if i == 3 else "clean") for i in (2, 3, 4)]
    live_page.publish(tmp_path, BEAMTIME, batch(1, more), more, live)
    wait.until(lambda b: "run1/f0004" in shown(b))
    assert shown(chromium)["run1/f0004"] == ["Beam off image"] and len(shown(chromium)) == 5
    kinds = chromium.execute_script("return [...document.querySelectorAll('.alert')].map(a => a.dataset.kind)")
    assert kinds == ["saturation", "beam_off"]
    assert chromium.execute_script("return window.sameDocument === true")  # updated in place, not reloaded
    assert "batch 1" in chromium.find_element("id", "status").text
    widths = chromium.execute_script("return [...document.querySelectorAll('.frame img')].map(i => i.naturalWidth)")
    assert widths == [live_page.THUMB_SIZE] * 5   # every thumbnail loaded
    assert chromium.find_elements("css selector", ".timeline svg polyline[data-tag='Beam off image']")


# ---------------------------------------------------------------- the stream and the page, end to end

LATENCY_S = 120   # a file landed -> on the open page; a micro-batch takes ~25 s on 2 busy cores


def land(staging, landing, *numbers: int) -> None:
    """Real Pilatus CBF frames of the physics generator (``demo_archive.write_file``, numbers = 1 mod 4),
    written aside and moved into the landing directory whole, as a detector's writer does."""
    from xray_spark.config import load_config
    from xray_spark.io.demo_archive import write_file

    config = load_config(None, ["simulate.render_size=128", "simulate.images_per_run=10"])
    for number in numbers:
        written = write_file(config, str(staging), 3, number, 1)
        assert written["format"] == "cbf"
        (landing / written["path"]).parent.mkdir(parents=True, exist_ok=True)
        (staging / written["path"]).replace(landing / written["path"])


@pytest.mark.spark
def test_stream_labels_landed_frames_onto_the_open_page(chromium, tmp_path):
    """`xray-spark stream` on a landing directory: frames dropped while it runs appear on the open
    page with their tags, without a reload; SIGTERM stops it gracefully."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import CLUSTER
    from selenium.webdriver.support.ui import WebDriverWait

    landing, staging, root = tmp_path / "landing", tmp_path / "staging", tmp_path / "data"
    landing.mkdir()
    land(staging, landing, 1)
    sets = [a for s in CLUSTER + [f"paths.root={root}", "live.refresh_s=0.5"] for a in ("--set", s)]
    log = open(tmp_path / "stream.log", "w")
    stream = subprocess.Popen([sys.executable, "-m", "xray_spark.cli", *sets, "stream", "--landing", str(landing),
                               "--timeout", "600"], stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        page = live_page.page_path(root / "reports" / "live", "demo-beamtime")
        deadline = time.monotonic() + 120   # the page is opened, waiting, before the first batch
        while not page.is_file():
            assert stream.poll() is None and time.monotonic() < deadline, (tmp_path / "stream.log").read_text()[-3000:]
            time.sleep(1)
        chromium.get(page.as_uri())
        chromium.execute_script("window.sameDocument = true;")
        WebDriverWait(chromium, 10, poll_frequency=0.2).until(     # waiting, unless the first batch was quicker
            lambda b: shown(b, 1) or "labelled yet" in b.find_element("id", "live").text)
        # Spark, TensorFlow and the model start with the first batch
        WebDriverWait(chromium, 300, poll_frequency=0.5).until(lambda b: list(shown(b, 1)) == ["scan0001.cbf"])

        land(staging, landing, 5, 9)
        WebDriverWait(chromium, LATENCY_S, poll_frequency=0.5).until(lambda b: len(shown(b, 1)) == 3)
        cards = shown(chromium, 1)
        assert list(cards) == ["scan0009.cbf", "scan0005.cbf", "scan0001.cbf"]   # newest first
        kept = {f["name"]: [t for t, _ in f["tags"]] for f in live_page.load_state(root / "reports" / "live",
                                                                                   "demo-beamtime")["runs"]["run01"]}
        assert {name: sorted(tags) for name, tags in cards.items()} == {n: sorted(t) for n, t in kept.items()}
        assert any(cards.values())   # the model tags these frames
        images = chromium.execute_script("return [...document.querySelectorAll('.frame img')].map(i => i.naturalWidth)")
        assert images == [live_page.THUMB_SIZE] * 3
        assert chromium.execute_script("return window.sameDocument === true")
    finally:
        stream.send_signal(signal.SIGTERM)
        try:
            code = stream.wait(120)
        except subprocess.TimeoutExpired:
            stream.kill()
            raise
        log.close()
    assert code == 0, (tmp_path / "stream.log").read_text()[-3000:]
