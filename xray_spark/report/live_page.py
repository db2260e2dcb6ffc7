"""The live page of a beamtime, for the scientist at the beamline while ``xray-spark stream`` runs:
per run the latest frames as thumbnails with their tags and scores, a timeline of the tag
fractions, and alerts where action is needed now (saturation, beam off the detector, weak
scattering, a sudden change of the tag mix).

Two halves. ``frame_facts`` runs on the executors, next to each stored image: a few numbers for
the alerts and a 64 x 64 PNG thumbnail, so only small rows reach the driver. ``publish`` runs on
the driver after each committed micro-batch and rewrites the page's files under
``<page_dir>/<beamtime>/``:

- ``index.html``   the page, written once; it never reloads;
- ``live.js``      the data: ``xrayLive({...})``, rewritten after every batch;
- ``state.json``   what the page remembers between batches (frames kept per run, alerts and since when);
- ``thumbs/``      the thumbnails of the frames shown (others are deleted).

Why static files and no server: the page polls ``live.js`` by inserting a fresh ``<script>`` every
``live.refresh_s``, which Chromium allows on ``file://`` (where it blocks ``fetch()`` of local
files) and which works the same from any static web server or a shared disk mounted at the
beamline. No port is opened on the cluster, no second process must be kept alive next to the
stream, and the page keeps showing the last state (and how old it is) when the stream stops.
Every file is replaced atomically (temporary file + ``os.replace``), so the browser reads either
the old or the new version, never half of one.

Replays are harmless: a frame already on the page (by ``image_id``) is not added again, so a
micro-batch replayed after a crash, whatever its ``batch_id``, leaves the page as it was.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np

from xray_spark.config_types import option
from xray_spark.report import live_page_html as page

THUMB_SIZE = 64           # pixels of a thumbnail's side
FULL_SCALE_LEVEL = 0.999  # a stored pixel at full scale: all its detector area at preprocess.full_scale_counts
TOP_SCORES = 5            # scores listed in a thumbnail's tooltip
SEEN_LIMIT = 5000         # image_ids remembered to recognise replayed frames
BEAM_OFF = "Beam off image"


@dataclass
class LiveConfig:
    """The `live` section of the configuration: what the page keeps and when it alerts."""
    frames_kept: int = option(200, "latest frames of each run the page keeps: the span of its tag timeline", min=2)
    runs_shown: int = option(4, "runs on the page (and in its alerts): those with the latest frames", min=1)
    thumbnails: int = option(12, "latest frames of each run shown as thumbnails with their tags and scores", min=1)
    window: int = option(20, "frames k of the rolling tag fractions and of the alerts (the last k of a run; "
                         "tag mix: the last k against the k before)", min=1)
    refresh_s: float = option(1.0, "seconds between the page's checks for new data", min=0.2)
    timeline_tags: int = option(6, "tags drawn in a run's timeline (the most frequent over the frames kept)", min=1)
    saturated_fraction: float = option(0.001, "Saturation alert: a frame with at least this fraction of its valid "
                                       "stored pixels at full scale (preprocess.full_scale_counts)", min=0.0, max=1.0)
    weak_level: float = option(0.13, "Weak scattering: a frame whose 99th percentile stored level is below this "
                               "(log scale: 0.13 = 5 counts at a 20-bit full scale)", min=0.0, max=1.0)
    alert_fraction: float = option(0.5, "Beam off image and Weak scattering alert when at least this fraction of a "
                                   "run's last `window` frames show it", min=0.0, max=1.0)
    mix_change: float = option(0.5, "Tag mix alert: a tag's fraction differs by at least this between a run's last "
                               "`window` frames and the `window` before", min=0.0, max=1.0)


# ---------------------------------------------------------------- executors: one frame

def frame_facts(image: np.ndarray, mask: np.ndarray) -> dict:
    """Alert numbers and a thumbnail of one stored image (``preprocess.preprocess`` output: log
    scale in [0, 1], 1.0 = full scale; ``mask`` nonzero = bad pixel):

    - ``saturated_fraction``: valid pixels at full scale (a whole stored pixel saturated), of the valid;
    - ``p99_level``: 99th percentile of the valid pixels (weak scattering stays low everywhere);
    - ``mean_level``: mean of the valid pixels;
    - ``bad_fraction``: bad pixels, of all;
    - ``thumbnail_png``: THUMB_SIZE square PNG, inferno colour map, bad pixels grey.
    """
    image = np.asarray(image, dtype=np.float32)
    bad = np.asarray(mask).astype(bool)
    if image.ndim != 2 or bad.shape != image.shape:
        raise ValueError(f"frame_facts: image of shape {image.shape} and mask of shape {bad.shape}: "
                         f"expected one 2-D stored image and its mask of the same shape")
    valid = image[~bad]
    return {
        "saturated_fraction": float(np.count_nonzero(valid >= FULL_SCALE_LEVEL) / valid.size) if valid.size else 0.0,
        "p99_level": float(np.percentile(valid, 99)) if valid.size else 0.0,
        "mean_level": float(valid.mean()) if valid.size else 0.0,
        "bad_fraction": float(bad.mean()),
        "thumbnail_png": thumbnail_png(image, bad),
    }


@lru_cache(maxsize=1)
def _colours() -> np.ndarray:
    import matplotlib

    return (matplotlib.colormaps["inferno"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def thumbnail_png(image: np.ndarray, bad: np.ndarray) -> bytes:
    """The image binned to THUMB_SIZE (mean of the valid pixels under each thumbnail pixel, as
    preprocess bins), stretched between its 1st and 99.5th percentile so structure shows also in
    weak frames, coloured with inferno; pixels mostly bad are grey."""
    from PIL import Image

    from xray_spark.preprocess import area_weights

    rows, cols = area_weights(image.shape[0], THUMB_SIZE), area_weights(image.shape[1], THUMB_SIZE)
    valid = (~bad).astype(np.float32)
    signal = (cols @ (rows @ (image * valid)).T).T
    area = (cols @ (rows @ valid).T).T
    shown = area >= 0.5
    values = np.where(shown, signal / np.maximum(area, 1e-12), 0.0)
    lo, hi = np.percentile(values[shown], [1.0, 99.5]) if shown.any() else (0.0, 1.0)
    scaled = np.clip((values - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    rgb = _colours()[np.round(scaled * 255).astype(np.uint8)]
    rgb[~shown] = (128, 128, 128)
    out = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(out, format="PNG", compress_level=1)   # 64 x 64: speed over bytes
    return out.getvalue()


# ---------------------------------------------------------------- driver: the page

def page_path(page_dir: str | os.PathLike, beamtime: str) -> Path:
    """``<page_dir>/<beamtime>/index.html``: the page to open at the beamline."""
    if not beamtime or beamtime in (".", "..") or "/" in beamtime or "\\" in beamtime:
        raise ValueError(f"beamtime {beamtime!r}: the live page needs a plain directory name")
    return Path(page_dir) / beamtime / "index.html"


def publish(page_dir: str | os.PathLike, beamtime: str, batch: dict, frames: list[dict], live=None) -> None:
    """Add the frames of one committed micro-batch to the beamtime's page and rewrite its data.

    ``batch``: ``batch_id, frames, lag_s, rate_fps, started, ended``; each frame: ``image_id,
    run_id, frame, path, mtime, labelled_at, tag_names, scores, scored_tags, facts`` (the dict of
    ``frame_facts``). Times are epoch seconds or ISO strings. ``live`` is the ``live`` section of
    the configuration (``LiveConfig``; its defaults when None)."""
    live = live or LiveConfig()
    directory = page_path(page_dir, beamtime).parent
    (directory / "thumbs").mkdir(parents=True, exist_ok=True)
    state = load_state(page_dir, beamtime)
    seen = set(state["seen"])
    new = []
    for frame in sorted(frames, key=_arrival):
        if str(frame["image_id"]) not in seen:
            seen.add(str(frame["image_id"]))
            new.append(frame)
    for frame in new:
        state["sequence"] += 1
        state["runs"].setdefault(str(frame["run_id"]), []).append(_record(frame, state["sequence"], batch["batch_id"]))
    state["seen"] = (state["seen"] + [str(f["image_id"]) for f in new])[-SEEN_LIMIT:]
    recent = sorted(state["runs"], key=lambda run: -state["runs"][run][-1]["sequence"])[:live.runs_shown]
    state["runs"] = {run: state["runs"][run][-live.frames_kept:] for run in recent}
    shown = _write_thumbnails(directory / "thumbs", state["runs"], {str(f["image_id"]): f for f in new},
                              live.thumbnails)
    state["batch"] = {"batch_id": int(batch["batch_id"]), "frames": int(batch.get("frames") or 0),
                      "lag_s": _number(batch.get("lag_s")), "rate_fps": _number(batch.get("rate_fps")),
                      "started": _iso(batch.get("started")), "ended": _iso(batch.get("ended")) or _iso(_now())}
    state["total"] += len(new)
    state["version"] += 1
    alerts = _update_alerts(state, live)
    index = page.index_html(beamtime, live.refresh_s)
    if not (directory / "index.html").is_file() or (directory / "index.html").read_text() != index:
        _write_atomic(directory / "index.html", index.encode())
    _write_atomic(directory / "state.json", json.dumps(state, sort_keys=True).encode())
    runs = [_run_view(run, state["runs"][run], live) for run in state["runs"]]
    data = {"version": state["version"], "updated_epoch": _epoch(state["batch"]["ended"]),
            "status": page.status_line(state["batch"], state["total"]),
            "html": page.fragment(alerts, runs, live.window)}
    _write_atomic(directory / "live.js", page.live_js(data).encode())
    for path in (directory / "thumbs").iterdir():   # after live.js: a page being loaded still finds its thumbnails
        if path.name not in shown:
            path.unlink()


def open_page(page_dir: str | os.PathLike, beamtime: str, live=None) -> bool:
    """Write the beamtime's page before its first frames (a scientist opens it when the stream
    starts: "waiting for the first batch", then it fills in by itself); a page already there is
    left as it is. Returns whether a page was written."""
    live = live or LiveConfig()
    directory = page_path(page_dir, beamtime).parent
    if (directory / "index.html").is_file():
        return False
    directory.mkdir(parents=True, exist_ok=True)
    data = {"version": 0, "updated_epoch": None, "status": "", "html": page.waiting(beamtime)}
    _write_atomic(directory / "live.js", page.live_js(data).encode())
    _write_atomic(directory / "index.html", page.index_html(beamtime, live.refresh_s).encode())
    return True


def load_state(page_dir: str | os.PathLike, beamtime: str) -> dict:
    """The page's state.json (frames kept per run, last batch, alerts), or an empty state."""
    path = page_path(page_dir, beamtime).parent / "state.json"
    if not path.is_file():
        return {"beamtime": beamtime, "version": 0, "sequence": 0, "total": 0, "batch": {}, "runs": {},
                "seen": [], "since": {}, "alerts": []}
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: not the live page's JSON state ({e}); delete it to start the page afresh") from None


def _arrival(frame: dict) -> tuple:
    """Order of a batch's frames on the page: file time, then path and frame number."""
    return (_epoch(frame.get("mtime")) or 0.0, str(frame.get("path") or ""), int(frame.get("frame") or 0),
            str(frame["image_id"]))


def _record(frame: dict, sequence: int, batch_id) -> dict:
    """What the page keeps of a frame: names, tags with their scores, the alert numbers."""
    scores = dict(zip([str(t) for t in frame.get("scored_tags") or []], [float(s) for s in frame.get("scores") or []]))
    tags = [str(t) for t in frame.get("tag_names") or []]
    facts = {k: float(v) for k, v in (frame.get("facts") or {}).items() if k != "thumbnail_png"}
    path = str(frame.get("path") or "")
    number = int(frame.get("frame") or 0)
    name = os.path.basename(path) or str(frame["image_id"])
    return {"sequence": sequence, "batch_id": int(batch_id), "image_id": str(frame["image_id"]),
            "run_id": str(frame["run_id"]), "frame": number, "path": path,
            "name": name if number == 0 else f"{name} #{number}",
            "mtime": _iso(frame.get("mtime")), "labelled_at": _iso(frame.get("labelled_at")),
            "tags": sorted(([t, round(scores[t], 4) if t in scores else None] for t in tags),
                           key=lambda ts: (-(ts[1] or 0.0), ts[0])),
            "top_scores": [[t, round(s, 4)] for t, s in
                           sorted(scores.items(), key=lambda ts: (-ts[1], ts[0]))[:TOP_SCORES]],
            "facts": facts, "thumb": None}


def _write_thumbnails(folder: Path, runs: dict, new: dict, shown: int) -> set[str]:
    """Write the PNGs of the new frames among the latest ``shown`` of each run; returns the file
    names of all those latest frames' thumbnails (the others are no longer shown)."""
    keep = set()
    for frames in runs.values():
        for i, record in enumerate(frames):
            if i < len(frames) - shown:
                record["thumb"] = None
                continue
            frame = new.get(record["image_id"])
            png = (frame.get("facts") or {}).get("thumbnail_png") if frame else None
            if png is not None:
                record["thumb"] = hashlib.sha1(record["image_id"].encode()).hexdigest()[:20] + ".png"
                _write_atomic(folder / record["thumb"], bytes(png))
            if record["thumb"]:
                keep.add(record["thumb"])
    return keep


def _saturated(f: dict, live) -> bool:
    return 0 < f["facts"].get("saturated_fraction", 0.0) >= live.saturated_fraction


def _weak(f: dict, live) -> bool:
    return f["facts"].get("p99_level", 1.0) < live.weak_level


def _beam_off(f: dict) -> bool:
    return any(t == BEAM_OFF for t, _ in f["tags"])


def _alerts_of_run(run: str, frames: list[dict], live) -> list[dict]:
    """The run's alerts, from its last ``live.window`` frames: kind, title, message, frames involved."""
    last = frames[-live.window:]
    n = len(last)
    out = []
    saturated = [f for f in last if _saturated(f, live)]
    if saturated:
        worst = max(f["facts"]["saturated_fraction"] for f in saturated)
        out.append(("saturation", "Saturation", f"{len(saturated)} of the last {n} frames have at least "
                    f"{live.saturated_fraction:.2%} of their pixels at full scale (worst {worst:.2%}, latest "
                    f"{saturated[-1]['name']}): attenuate the beam or shorten the exposure.", saturated))
    beam_off = [f for f in last if _beam_off(f)]
    if beam_off and len(beam_off) / n >= live.alert_fraction:
        out.append(("beam_off", "Beam off image", f"{len(beam_off)} of the last {n} frames are tagged "
                    f"'{BEAM_OFF}': the direct beam is not on the detector (alignment, beamstop, shutter?).", beam_off))
    weak = [f for f in last if _weak(f, live)]
    if weak and len(weak) / n >= live.alert_fraction:
        out.append(("weak", "Weak scattering", f"{len(weak)} of the last {n} frames scatter weakly (99th "
                    f"percentile level below {live.weak_level:g}): check beam, shutter and sample position.", weak))
    if len(frames) >= 2 * live.window:
        before, now = _fractions(frames[-2 * live.window:-live.window]), _fractions(last)
        moved = sorted(((abs(now.get(t, 0.0) - before.get(t, 0.0)), t) for t in set(before) | set(now)),
                       key=lambda dt: (-dt[0], dt[1]))
        moved = [t for d, t in moved if d >= live.mix_change]
        if moved:
            changes = ", ".join(f"{t} {before.get(t, 0.0):.0%} → {now.get(t, 0.0):.0%}" for t in moved)
            out.append(("mix", "Tag mix changed", f"between the {live.window} frames before and the last "
                        f"{live.window}: {changes}.", []))
    return [{"run": run, "kind": k, "title": title, "message": " " + message,
             "frames": [f["image_id"] for f in involved]} for k, title, message, involved in out]


def _fractions(frames: list[dict]) -> dict[str, float]:
    counts: dict[str, int] = {}
    for f in frames:
        for tag, _ in f["tags"]:
            counts[tag] = counts.get(tag, 0) + 1
    return {tag: c / len(frames) for tag, c in counts.items()}


def _update_alerts(state: dict, live) -> list[dict]:
    """The alerts of the runs on the page, each with the time it was first raised (kept in the state
    while it lasts), saturation and beam first."""
    alerts = [a for run, frames in state["runs"].items() for a in _alerts_of_run(run, frames, live)]
    since = {}
    for alert in alerts:
        key = f"{alert['run']}\t{alert['kind']}"
        since[key] = alert["since"] = state["since"].get(key, state["batch"]["ended"])
    state["since"] = since
    order = ["saturation", "beam_off", "weak", "mix"]
    state["alerts"] = sorted(alerts, key=lambda a: (order.index(a["kind"]), a["run"]))
    return state["alerts"]


def _run_view(run: str, frames: list[dict], live) -> dict:
    """What the page shows of a run: latest thumbnails (newest first), rolling tag fractions."""
    shares = _fractions(frames)
    tags = sorted(shares, key=lambda t: (-shares[t], t))[:live.timeline_tags]
    series = {}
    for tag in tags:
        hits = np.cumsum([0] + [any(t == tag for t, _ in f["tags"]) for f in frames])
        ends = np.arange(1, len(frames) + 1)
        starts = np.maximum(0, ends - live.window)
        series[tag] = [round(float(v), 4) for v in (hits[ends] - hits[starts]) / (ends - starts)]
    return {"run": run, "kept": len(frames), "latest": frames[::-1][:live.thumbnails],
            "series": series, "names": [f["name"] for f in frames], "flagged": _flagged(frames, live)}


def _flagged(frames: list[dict], live) -> dict[str, str]:
    """Frames shown with a red border, and why: saturated, weak, beam off the detector."""
    out = {}
    for f in frames[-live.thumbnails:]:
        why = [word for word, flagged in (("saturated", _saturated(f, live)), ("weak", _weak(f, live)),
                                          ("beam off", _beam_off(f))) if flagged]
        if why:
            out[f["image_id"]] = ", ".join(why)
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` at once: readers see the old file or the new one, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _now() -> float:
    return datetime.now(timezone.utc).timestamp()


def _number(value) -> float | None:
    return None if value is None else round(float(value), 3)


def _iso(value) -> str | None:
    """An ISO-8601 UTC time (seconds) of epoch seconds, a datetime (naive = UTC) or an ISO string."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        when = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    else:
        when = datetime.fromtimestamp(float(value), tz=timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="seconds")


def _epoch(value) -> float | None:
    """Epoch seconds of what ``_iso`` accepts."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float, np.number)):
        return float(value)
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()
