"""What the live page of a beamtime looks like: the index.html that polls for data, and the HTML
fragment of alerts, runs, thumbnails and tag timelines that ``live_page.publish`` sends it.

Everything is built here in Python from the page's state, so the page's script only swaps the
fragment in when its version changes and ticks the "updated ... ago" clock: no external
JavaScript or CSS (the beamline may have no internet), timelines are inline SVG.
"""
from __future__ import annotations

import html
import json

# Matplotlib's tab10: distinct on white, the colours scientists know from their own plots.
TAG_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf"]
SVG_WIDTH, SVG_HEIGHT, PAD_LEFT, PAD_RIGHT, PAD_Y = 1000, 160, 34, 8, 12

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2329}
header{background:#1d2329;color:#fff;padding:10px 18px;display:flex;flex-wrap:wrap;gap:6px 24px;
 align-items:baseline}
header h1{font-size:20px;margin:0}
header .status{font-size:14px;color:#d6dbe0}
#age{font-weight:600}
#age.stale{color:#ffb347}
main{padding:12px 18px}
.alerts{margin:0 0 14px}
.alert{border-radius:6px;padding:10px 14px;margin:0 0 8px;font-size:17px;border-left:8px solid}
.alert strong{margin-right:.4em}
.alert .since{float:right;font-size:13px;opacity:.8}
.alert-saturation{background:#fde2e1;border-color:#c62828}
.alert-beam_off{background:#fde2e1;border-color:#c62828}
.alert-weak{background:#fff1d6;border-color:#e08a00}
.alert-mix{background:#e6eefc;border-color:#2c5ecf}
.ok{background:#e3f4e6;border-left:8px solid #2e7d32;border-radius:6px;padding:8px 14px;font-size:16px;margin:0 0 14px}
.run{background:#fff;border-radius:8px;padding:10px 14px;margin:0 0 14px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
.run h2{font-size:17px;margin:0 0 8px}
.run h2 .meta{font-weight:400;color:#5b6670;font-size:14px;margin-left:.6em}
.thumbs{display:flex;flex-wrap:wrap;gap:10px 8px}
.frame{margin:0;width:132px;flex:none;font-size:12px}
.frame img,.frame .noimage{width:128px;height:128px;display:block;border:2px solid #ccd;border-radius:3px;
 background:#555}
.frame.flagged img{border-color:#c62828}
.frame .flag{color:#fff;background:#c62828;border-radius:3px;padding:0 4px;margin-top:2px;display:inline-block}
.frame .name{font-family:ui-monospace,monospace;overflow-wrap:anywhere;margin:2px 0}
.tags{list-style:none;padding:0;margin:0}
.tag{display:flex;justify-content:space-between;gap:4px;background:#eef1f4;border-radius:3px;padding:0 4px;margin:1px 0}
.tag b{font-weight:600;color:#34495e}
.tag.none{color:#888;background:none}
.timeline{margin-top:6px}
.timeline svg{width:100%;max-width:1000px;height:auto}
.legend{font-size:13px;margin-top:2px}
.legend span{margin-right:14px;white-space:nowrap}
.legend i{display:inline-block;width:12px;height:4px;margin-right:4px;vertical-align:middle}
.empty{color:#5b6670;font-size:16px}
"""

SCRIPT = """
const REFRESH_MS = %(refresh_ms)d;
let shown = null, updated = null;
function xrayLive(data) {
  if (data.version !== shown) {
    document.getElementById('live').innerHTML = data.html;
    document.getElementById('status').textContent = data.status;
    shown = data.version;
  }
  updated = data.updated_epoch;
  tick();
}
function tick() {
  const age = document.getElementById('age');
  if (updated === null) { age.textContent = 'waiting for the first batch'; return; }
  const s = Math.max(0, Math.round(Date.now() / 1000 - updated));
  const ago = s < 120 ? s + ' s' : s < 7200 ? Math.round(s / 60) + ' min' : Math.round(s / 3600) + ' h';
  age.textContent = 'updated ' + ago + ' ago';
  age.className = s > 300 ? 'stale' : '';
}
function poll() {
  // A fresh <script> each time: works on file:// (where fetch() of local files is blocked) and over http.
  const s = document.createElement('script');
  s.src = 'live.js?t=' + Date.now();
  s.onload = s.onerror = () => s.remove();
  document.head.appendChild(s);
}
poll();
setInterval(poll, REFRESH_MS);
setInterval(tick, 1000);
"""


def index_html(beamtime: str, refresh_s: float) -> str:
    """The page itself, written once per beamtime: a frame the data of ``live.js`` is poured into."""
    title = html.escape(f"{beamtime}: live")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{STYLE}</style></head>"
            f"<body><header><h1>Beamtime {html.escape(beamtime)}</h1><span class='status' id='status'></span>"
            f"<span class='status' id='age'>waiting for the first batch</span></header>"
            f"<main id='live'><p class='empty'>No frames yet: the page fills in as the stream labels them.</p></main>"
            f"<script>{SCRIPT % {'refresh_ms': round(refresh_s * 1000)}}</script></body></html>\n")


def live_js(data: dict) -> str:
    """The data file the page polls: one call of ``xrayLive`` with the JSON of ``data``."""
    text = json.dumps(data, ensure_ascii=True, sort_keys=True)
    return "xrayLive(" + text.replace("</", "<\\/") + ");\n"


def _clock(iso: str | None) -> str:
    """HH:MM:SS of an ISO time (the page's times are UTC)."""
    return iso[11:19] if iso and len(iso) >= 19 else (iso or "?")


def status_line(batch: dict, total: int) -> str:
    """The header's one line about the stream: last batch, lag, rate, frames so far."""
    if not batch:
        return ""
    lag = "?" if batch.get("lag_s") is None else f"{batch['lag_s']:.1f} s"
    rate = "?" if batch.get("rate_fps") is None else f"{batch['rate_fps']:.1f} frames/s"
    return (f"batch {batch['batch_id']} at {_clock(batch.get('ended'))} UTC: {batch['frames']} frames, "
            f"lag {lag}, {rate} · {total} frames so far")


def _alerts(alerts: list[dict]) -> str:
    if not alerts:
        return "<div class='ok'>No alerts: beam on the detector, no saturation, scattering as expected.</div>"
    rows = [f"<div class='alert alert-{a['kind']}' data-kind='{a['kind']}' data-run='{html.escape(a['run'])}'>"
            f"<span class='since'>since {_clock(a['since'])}</span><strong>Run {html.escape(a['run'])}: "
            f"{html.escape(a['title'])}</strong>{html.escape(a['message'])}</div>" for a in alerts]
    return "<div class='alerts'>" + "".join(rows) + "</div>"


def _frame_card(f: dict, flagged: str | None) -> str:
    title = "\n".join(f"{t}: {s:.2f}" for t, s in f["top_scores"])
    image = (f"<img src='thumbs/{f['thumb']}' alt='{html.escape(f['name'])}' title='{html.escape(title)}'>"
             if f.get("thumb") else "<div class='noimage' title='no image'></div>")
    tags = "".join(f"<li class='tag' data-tag='{html.escape(t)}'><span>{html.escape(t)}</span>"
                   f"{'' if s is None else f'<b>{s:.2f}</b>'}</li>" for t, s in f["tags"])
    tags = tags or "<li class='tag none'>no tag</li>"
    flag = f"<div class='flag'>{html.escape(flagged)}</div>" if flagged else ""
    return (f"<figure class='frame{' flagged' if flagged else ''}' data-image-id='{html.escape(f['image_id'])}'>"
            f"{image}<figcaption>{flag}"
            f"<div class='name' title='{html.escape(f['path'] or '')}'>"
            f"{html.escape(f['name'])}</div><ul class='tags'>{tags}</ul></figcaption></figure>")


def timeline_svg(series: dict[str, list[float]], names: list[str], window: int) -> str:
    """Rolling fraction of each tag of ``series`` (over the last ``window`` frames) along the run's
    frames kept, oldest left; the last ``window`` frames (what the alerts look at) are shaded."""
    n = len(names)
    plot_w, plot_h = SVG_WIDTH - PAD_LEFT - PAD_RIGHT, SVG_HEIGHT - 2 * PAD_Y
    x = lambda i: PAD_LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)  # noqa: E731
    y = lambda v: PAD_Y + plot_h * (1.0 - v)  # noqa: E731
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{SVG_WIDTH}' height='{SVG_HEIGHT}' "
             f"viewBox='0 0 {SVG_WIDTH} {SVG_HEIGHT}' role='img'>"]
    if n > 1:
        start = x(max(0, n - window))
        parts.append(f"<rect x='{start:.1f}' y='{PAD_Y}' width='{x(n - 1) - start:.1f}' height='{plot_h}' "
                     f"fill='#eef3fb'><title>last {window} frames (alerts)</title></rect>")
    for v in (0.0, 0.5, 1.0):
        parts.append(f"<line x1='{PAD_LEFT}' x2='{SVG_WIDTH - PAD_RIGHT}' y1='{y(v):.1f}' y2='{y(v):.1f}' "
                     f"stroke='#ccc' stroke-width='1'/><text x='{PAD_LEFT - 4}' y='{y(v) + 4:.1f}' "
                     f"font-size='11' text-anchor='end' fill='#666'>{v:g}</text>")
    for k, (tag, values) in enumerate(series.items()):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        colour = TAG_COLOURS[k % len(TAG_COLOURS)]
        parts.append(f"<polyline data-tag='{html.escape(tag)}' fill='none' stroke='{colour}' "
                     f"stroke-width='2' points='{points}'><title>{html.escape(tag)}</title></polyline>")
    if names:
        parts.append(f"<text x='{PAD_LEFT}' y='{SVG_HEIGHT - 1}' font-size='11' fill='#666'>"
                     f"{html.escape(names[0])}</text><text x='{SVG_WIDTH - PAD_RIGHT}' y='{SVG_HEIGHT - 1}' "
                     f"font-size='11' fill='#666' text-anchor='end'>{html.escape(names[-1])}</text>")
    return "".join(parts) + "</svg>"


def _run(run: dict, window: int) -> str:
    cards = "".join(_frame_card(f, run["flagged"].get(f["image_id"])) for f in run["latest"])
    legend = "".join(f"<span><i style='background:{TAG_COLOURS[k % len(TAG_COLOURS)]}'></i>{html.escape(tag)} "
                     f"{values[-1]:.0%}</span>" for k, (tag, values) in enumerate(run["series"].items()))
    return (f"<section class='run' data-run='{html.escape(run['run'])}'><h2>Run {html.escape(run['run'])}"
            f"<span class='meta'>{run['kept']} frames kept · latest {html.escape(run['latest'][0]['name'])} "
            f"labelled {_clock(run['latest'][0]['labelled_at'])} UTC · newest first</span></h2>"
            f"<div class='thumbs'>{cards}</div><div class='timeline'>"
            f"{timeline_svg(run['series'], run['names'], window)}"
            f"<div class='legend'>Share of frames with each tag, over a run's last {window} (shaded: the frames the "
            f"alerts look at). Now: {legend or 'no tags'}</div>"
            f"</div></section>")


def waiting(beamtime: str) -> str:
    """The content of a page whose stream has labelled none of its frames yet."""
    return (f"<p class='empty'>No frame of {html.escape(beamtime)} labelled yet: frames appear here "
            "as the stream labels them.</p>")


def fragment(alerts: list[dict], runs: list[dict], window: int) -> str:
    """The page's content: alerts on top, then each run, the most recent first."""
    body = "".join(_run(r, window) for r in runs) or "<p class='empty'>No frames yet.</p>"
    return _alerts(alerts) + body
