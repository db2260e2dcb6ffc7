"""Tags from what is visible in the rendered frame, after noise, masking and detector effects.

A scattering feature counts when, over its *support* (the pixels where it reaches at least
``support_fraction`` of its own maximum) restricted to *visible* pixels (not a gap, not dead,
not in a beamstop or obstruction shadow, not saturated), both hold:

- signal to noise ``S / sqrt(N + n sigma_read^2) >= snr_min``, with S its expected counts and
  N all expected counts there (Poisson), summed over raw pixels;
- contrast ``S / (N - S) >= contrast_min``: what stands over the local background by less
  is invisible on a log-scale display however many photons carry it.

The table of every tag the generator produces, and its rule, is in docs/simulate.md.
"""
from __future__ import annotations

import numpy as np

HIGHER_ORDERS = [(20, "Higher orders: 20 or more"), (11, "Higher orders: 10 to 20"),
                 (7, "Higher orders: 7 to 10"), (4, "Higher orders: 4 to 6"), (2, "Higher orders: 2 to 3")]


def feature_visible(feature_counts: np.ndarray, expected: np.ndarray, visible: np.ndarray,
                    raw_per_pixel: float, read_noise: float, thresholds) -> bool:
    """Whether one feature passes the SNR and contrast rule over its visible support."""
    peak = float(feature_counts.max())
    if peak <= 0:
        return False
    support = visible & (feature_counts >= np.float32(thresholds.support_fraction * peak))
    n = int(support.sum())
    if n < thresholds.min_pixels:
        return False
    signal = float(feature_counts[support].sum()) * raw_per_pixel
    total = float(expected[support].sum()) * raw_per_pixel
    noise = np.sqrt(total + n * raw_per_pixel * read_noise ** 2)
    snr = signal / noise if noise > 0 else np.inf
    contrast = signal / max(total - signal, 1e-12)
    return snr >= thresholds.snr_min and contrast >= thresholds.contrast_min


def visible_tags(scene: dict, rendered, det, thresholds) -> list[str]:
    """All tags of a rendered scene: geometry, detector, sample, visible features, artifacts."""
    tags = {scene["geometry"], *scene["sample_tags"]}
    if det.tag:
        tags.add(det.tag)
    visible = ~(rendered.bad | rendered.shadow | rendered.saturated)
    if not rendered.extras["beam_in_frame"]:
        tags.add("Beam off image")
    stop = scene.get("beamstop")
    if stop and int(rendered.shadow.sum()) >= thresholds.min_pixels and \
            _beamstop_pixels(rendered, scene) >= thresholds.min_pixels:
        tags.add(stop["kind"])
    for obstruction in scene.get("obstructions", []):
        tags.add(obstruction["tag"])
    orders: dict[str, list[int]] = {}
    n_rings = 0
    for feature, counts in zip(scene["features"], rendered.feature_counts):
        if not feature_visible(counts, rendered.expected, visible, rendered.raw_per_pixel, det.read_noise, thresholds):
            continue
        tags.update(feature["tags"])
        if feature.get("lattice"):
            orders.setdefault(feature["lattice"], []).append(feature["order"])
        if feature["kind"] == "ring":
            n_rings += 1
    for lattice, seen in orders.items():
        if len(seen) >= 2:
            tags.add("Ordered")
        top = max(seen)
        for lowest, tag in HIGHER_ORDERS:
            if top >= lowest and len(seen) >= 2:
                tags.add(tag)
                break
    if n_rings >= thresholds.many_rings:
        tags.add("Many rings")
    tags.update(_intensity_tags(scene, rendered, visible, thresholds))
    return sorted(tags)


def _beamstop_pixels(rendered, scene) -> int:
    """Pixels of the beamstop's own shadow (obstructions excluded) inside the frame."""
    return int(rendered.extras.get("beamstop_pixels", rendered.shadow.sum()))


def _intensity_tags(scene, rendered, visible, thresholds) -> set[str]:
    """Saturation, weak/strong scattering and high background from the visible counts."""
    tags = set()
    if int((rendered.saturated & ~rendered.bad).sum()) >= 1:
        tags.add("Saturation")
    if not visible.any():
        return tags
    sample = sum(rendered.feature_counts) if rendered.feature_counts else np.zeros_like(rendered.expected)
    sample_visible = sample[visible]
    level = float(np.percentile(sample_visible, 99)) if sample_visible.size else 0.0
    if level < thresholds.weak_counts:
        tags.add("Weak scattering")
    elif level >= thresholds.strong_counts:
        tags.add("Strong scattering")
    background = rendered.expected[visible] - sample_visible
    if float(np.median(background)) >= thresholds.high_background_counts and \
            float(np.median(background)) >= float(np.median(sample_visible)):
        tags.add("High background")
    return tags
