"""Tags from what is visible in the rendered frame, after noise, masking and detector effects.

A scattering feature counts when, over its *support* (where it reaches ``support_fraction`` of
its own maximum anywhere in the frame) restricted to *visible* pixels (not a gap or dead pixel,
not in a beamstop or obstruction shadow, not saturated), with S its expected counts, N all
expected counts there and n the number of visible stored pixels (each the mean of k raw
pixels):

- signal to noise as the eye integrates it: the per-pixel SNR ``(S/n) k / sqrt((N/n) k)``
  (plus CCD read noise) times ``sqrt(min(n, eye_pixels))`` reaches ``snr_min``;
- contrast ``S / (N - S)`` reaches ``contrast_min``: what stands over its surroundings by less
  is invisible on a log-scale display however many photons carry it.

Radial features are judged on (q, chi) bins (``LABEL_Q`` x ``LABEL_CHI``) filled with one
``bincount`` per quantity, so the cost does not grow with the number of rings; spots and rods
on their own pixels. The table of every tag and its rule is in docs/simulate.md.
"""
from __future__ import annotations

import numpy as np

from xray_spark.simulate.render import CHI_BINS, Q_BINS

LABEL_Q, LABEL_CHI = Q_BINS // 8, 24
SUBSAMPLE = 7            # intensity levels are estimated on every 7th pixel
HIGHER_ORDERS = [(20, "Higher orders: 20 or more"), (11, "Higher orders: 10 to 20"),
                 (7, "Higher orders: 7 to 10"), (4, "Higher orders: 4 to 6"), (2, "Higher orders: 2 to 3")]


def is_visible(signal: float, total: float, n: float, raw_per_pixel: float, read_noise: float, th) -> bool:
    """The SNR and contrast rule for a feature with expected ``signal`` among ``total`` counts on n pixels."""
    if n < 1 or signal <= 0:
        return False
    k = raw_per_pixel
    per_pixel = (signal / n) * k / np.sqrt((total / n) * k + k * read_noise ** 2)
    contrast = signal / max(total - signal, 1e-12)
    return per_pixel * np.sqrt(min(n, th.eye_pixels)) >= th.snr_min and contrast >= th.contrast_min


class _Bins:
    """Per (q, chi) label bin: visible pixels, visible scale and expected counts, pixels in frame.

    Filled from every other pixel of every other row (a quarter of the frame, sums scaled by 4):
    the bins average over many pixels, and this halves the cost of labelling.
    """

    def __init__(self, rendered, visible):
        maps = rendered.maps
        every = (slice(None, None, 2), slice(None, None, 2))
        index = ((maps.q_index[every] // (Q_BINS // LABEL_Q)) * LABEL_CHI
                 + maps.chi_index[every] // (CHI_BINS // LABEL_CHI)).ravel()
        size, shape = LABEL_Q * LABEL_CHI, (LABEL_Q, LABEL_CHI)
        weight = visible[every].ravel().astype(np.float32) * np.float32(4)
        self.in_frame = np.bincount(index, minlength=size).reshape(shape) > 0
        self.n = np.bincount(index, weights=weight, minlength=size).reshape(shape)
        self.scale = np.bincount(index, weights=np.broadcast_to(maps.scale, visible.shape)[every].ravel() * weight,
                                 minlength=size).reshape(shape) * rendered.sample_scale
        self.expected = np.bincount(index, weights=rendered.expected[every].ravel() * weight,
                                    minlength=size).reshape(shape)

    def feature(self, profile, angular):
        """(signal, total, n) of a radial feature over its visible support."""
        radial = profile.reshape(LABEL_Q, -1).mean(axis=1)
        shape = radial[:, None] if angular is None else \
            radial[:, None] * angular.reshape(LABEL_CHI, -1).mean(axis=1)[None, :]
        shape = np.broadcast_to(shape, self.n.shape)
        in_frame = shape[self.in_frame]
        if in_frame.size == 0:
            return 0.0, 0.0, 0.0
        support = (shape >= in_frame.max() * 0.5) & self.in_frame
        return (float((shape * self.scale)[support].sum()), float(self.expected[support].sum()),
                float(self.n[support].sum()))


def _pixels(windows, expected, visible, fraction):
    """(signal, total, n) of a feature given as [(window, counts)] over its visible support."""
    peak = max((float(c.max()) for _, c in windows), default=0.0)
    signal = total = n = 0.0
    for window, counts in windows:
        support = (counts >= fraction * peak) & visible[window]
        signal += float(counts[support].sum())
        total += float(expected[window][support].sum())
        n += float(support.sum())
    return signal, total, n


def _separable(rendered, index, visible, th, read_noise) -> list[bool]:
    """Visibility of each column profile (rod) of a separable feature, from column sums over its row support."""
    rows, columns = rendered.separable[index]
    rows = rows[:, 0] * rendered.sample_scale
    support = rows >= th.support_fraction * rows.max() if rows.max() > 0 else np.zeros(rows.shape, bool)
    vis = visible[support]
    scale = (rows[support, None] * rendered.maps.lab_scale[support]) * vis
    expected = (rendered.expected[support] * vis).sum(axis=0)
    weight, n = scale.sum(axis=0), vis.sum(axis=0)
    seen = []
    for column in columns:
        column = column[0]
        cols = column >= th.support_fraction * column.max() if column.max() > 0 else np.zeros(column.shape, bool)
        seen.append(is_visible(float((column * weight)[cols].sum()), float(expected[cols].sum()), float(n[cols].sum()),
                               rendered.raw_per_pixel, read_noise, th))
    return seen


def visible_tags(scene: dict, rendered, det, th) -> list[str]:
    """All tags of a rendered scene: geometry, detector, sample, visible features, beams, artifacts."""
    tags = {scene["geometry"], *scene["sample_tags"]}
    if det.tag:
        tags.add(det.tag)
    visible = ~(rendered.bad | rendered.shadow | rendered.saturated)
    k, noise = rendered.raw_per_pixel, det.read_noise
    if not rendered.extras["beam_in_frame"]:
        tags.add("Beam off image")
    stop = scene.get("beamstop")
    if stop and rendered.extras["beamstop_pixels"] >= th.min_pixels:
        tags.add(stop["kind"])
    for obstruction in scene.get("obstructions", []):
        tags.add(obstruction["tag"])
    if "Blocked" in scene.get("artifacts", []):
        tags.add("Blocked")
    bins = _Bins(rendered, visible) if rendered.profiles else None
    orders: dict[str, list[int]] = {}
    n_rings = n_spots = 0
    film_seen = False
    for index, feature in enumerate(scene["features"]):
        if index in rendered.profiles:
            seen = [is_visible(*bins.feature(*rendered.profiles[index]), k, noise, th)]
        elif index in rendered.separable:
            seen = _separable(rendered, index, visible, th, noise)
        elif feature["kind"] == "spots":
            seen = [is_visible(*_pixels([w], rendered.expected, visible, th.support_fraction), k, noise, th)
                    for w in rendered.pixel_features[index]]
        else:
            raise ValueError(f"feature {index} of kind {feature['kind']!r} was not rendered")
        if not any(seen):
            continue
        tags.update(feature["tags"])
        if feature.get("lattice"):
            found = [o for o, s in zip(feature.get("orders") or [feature.get("order")] * len(seen), seen) if s]
            orders.setdefault(feature["lattice"], []).extend(found)
        n_rings += feature["kind"] == "ring"
        n_spots += sum(seen) if feature["kind"] == "spots" and feature.get("peaks", True) else 0
        film_seen = film_seen or feature["kind"] == "film_diffuse"
    if _horizon_visible(rendered, th) and (film_seen or _horizon_edge(rendered, k, noise, th)):
        tags.add("Horizon")
        if scene.get("horizon_smear_deg"):
            tags.add("Smearred horizon")
        if scene.get("sweep_deg"):
            tags.add("Theta sweep")
    for seen_orders in orders.values():
        distinct = set(seen_orders)
        if len(distinct) >= 2:
            tags.add("Ordered")
            top = max(distinct)
            tags.add(next(tag for lowest, tag in HIGHER_ORDERS if top >= lowest))
    if n_rings >= th.many_rings:
        tags.add("Many rings")
    if n_spots >= th.many_peaks:
        tags.add("Peaks: Many/field")
    elif n_spots >= 1:
        tags.add("Peaks: Isolated")
    # the beam is seen where it is neither masked nor shadowed, saturated or not (not CCD blooming behind a stop)
    tags.update(_beam_tags(scene, rendered, ~(rendered.bad | rendered.shadow), k, th))
    tags.update(_intensity_tags(rendered, visible, th))
    return sorted(tags)


def _horizon_visible(rendered, th) -> bool:
    """The horizon row lies in the frame with visible pixels on the rows just above it."""
    row = rendered.extras.get("horizon_row")
    rows = rendered.counts.shape[0]
    if row is None or not 1 <= row < rows - 1:
        return False
    above = slice(max(int(row) - 2, 0), int(row) + 1)
    visible = ~(rendered.bad[above] | rendered.shadow[above])
    return int(visible.sum()) >= th.min_pixels


def _horizon_edge(rendered, k, noise, th, band: int = 3) -> bool:
    """The horizon seen as the edge of the sample's shadow: the rows just above it visibly brighter
    than those just below (what a scientist tags on a GIWAXS frame, whose film diffuse scattering at
    low q is out of view: rings, halos and background stop at the horizon)."""
    row = rendered.extras.get("horizon_row")
    if row is None or not band <= row < rendered.counts.shape[0] - band - 1:
        return False
    r = int(row)
    ok = ~(rendered.bad | rendered.shadow)
    cols = ok[r - band:r].all(axis=0) & ok[r + 1:r + 1 + band].all(axis=0)
    above = float(rendered.expected[r - band:r, cols].sum())
    below = float(rendered.expected[r + 1:r + 1 + band, cols].sum())
    return is_visible(above - below, above, band * int(cols.sum()), k, noise, th)


def _beam_tags(scene, rendered, visible, k, th) -> set[str]:
    """Direct beam seen (not behind a beamstop), with a bad shape when elongated."""
    tags = set()
    for kind, window, counts in rendered.beams:
        signal, total, n = _pixels([(window, counts)], rendered.expected, visible, th.support_fraction)
        if kind == "direct" and n >= 1 and signal >= 0.5 * total:
            tags.add("Direct")
            if scene.get("beam_elongation", 1.0) >= 3:
                tags.add("Bad beam shape")
    return tags


def _intensity_tags(rendered, visible, th) -> set[str]:
    """Saturation (and its CCD artifacts), weak or strong scattering, high background."""
    tags = set()
    if int((rendered.saturated & ~rendered.bad).sum()) >= 1:
        tags.add("Saturation")
        if rendered.extras["bloomed"]:
            tags.add("Saturation artifacts")
    # levels from every SUBSAMPLE-th pixel: percentiles of 65k values cost more than the rendering
    chosen = visible.ravel()[::SUBSAMPLE]
    if not chosen.any():
        return tags
    background = rendered.background.ravel()[::SUBSAMPLE][chosen]
    sample = rendered.expected.ravel()[::SUBSAMPLE][chosen] - background
    level = float(np.percentile(sample, 99))
    if level < th.weak_counts:
        tags.add("Weak scattering")
    elif level >= th.strong_counts:
        tags.add("Strong scattering")
    median_background = float(np.median(background))
    if median_background >= th.high_background_counts and median_background >= float(np.median(sample)):
        tags.add("High background")
    return tags
