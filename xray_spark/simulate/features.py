"""Scattering features as functions of momentum transfer q (1/angstrom) and azimuth chi (radians).

Pure numpy, no state. Each function returns the intensity per unit exposure on the arrays it is
given (any broadcastable shapes), peak height 1 unless said otherwise, so that a scene scales
each feature by its own amplitude.

- ``ring``: a powder (Debye-Scherrer) ring, Gaussian in q with the Scherrer width
  ``2 pi K / D`` of domain size D, optionally with a Gaussian instrumental width.
- ``orientation``: the azimuthal distribution of a textured or oriented ring: a two-fold
  (centro-symmetric, Friedel) von Mises distribution around ``chi0``; ``kappa = 0`` is isotropic.
- ``halo``: an amorphous halo, Lorentzian in q (short-range order, correlation length xi).
- ``sphere_form_factor``: |F(qR)|^2 of a sphere, polydispersity by averaging over radii.
- ``cylinder_form_factor``: cross-section term of long cylinders seen side-on.
- ``diffuse``: Debye-Bueche / Ornstein-Zernike low-q scattering ``1 / (1 + (q xi)^2)^n``.
- ``porod``: high-q ``q^-4`` tail; ``lattice_q``: reflection positions of lattices.
"""
from __future__ import annotations

import numpy as np

SCHERRER_K = 0.9

# Allowed reflections, in units of the first peak's q, of the lattices named in the vocabulary.
LATTICES = {
    "lamellar": lambda n: np.arange(1, n + 1, dtype=float),
    # 2-D hexagonal (cylinders): h^2 + hk + k^2 = 1, 3, 4, 7, 9, 12, 13, 16, ...
    "hexagonal": lambda n: np.sqrt(_sums(lambda h, k, l: h * h + h * k + k * k, 2, n)),
    # body-centred cubic (spheres): h + k + l even -> sqrt(1, 2, 3, 4, ...) relative to (110)
    "bcc": lambda n: np.sqrt(_sums(lambda h, k, l: (h * h + k * k + l * l) * ((h + k + l) % 2 == 0), 3, n) / 2),
    # face-centred cubic: h, k, l all even or all odd -> (111), (200), (220), (311), ...
    "fcc": lambda n: np.sqrt(_sums(lambda h, k, l: (h * h + k * k + l * l) * ((h % 2 == k % 2) & (k % 2 == l % 2)),
                                   3, n) / 3),
    # simple cubic: every h, k, l
    "cubic": lambda n: np.sqrt(_sums(lambda h, k, l: h * h + k * k + l * l, 3, n)),
}


def _sums(form, dims: int, n: int) -> np.ndarray:
    """The first ``n`` distinct positive values of an integer quadratic ``form`` over Miller indices."""
    r = np.arange(-8, 9)
    h, k, l = np.meshgrid(r, r, r if dims == 3 else np.zeros(1, int), indexing="ij")
    values = np.unique(form(h, k, l).ravel())
    return values[values > 0][:n].astype(float)


def lattice_q(kind: str, q1: float, orders: int) -> np.ndarray:
    """q of the first ``orders`` allowed reflections of lattice ``kind`` with first peak at ``q1``.

    Returns
    -------
    (orders,) float array, increasing; e.g. hexagonal: q1 * (1, sqrt3, 2, sqrt7, 3, ...).
    """
    if kind not in LATTICES:
        raise ValueError(f"unknown lattice {kind!r}; known: {', '.join(LATTICES)}")
    if orders < 1:
        raise ValueError(f"orders must be >= 1, got {orders}")
    return q1 * LATTICES[kind](orders)


def scherrer_width(domain_size: float) -> float:
    """Gaussian sigma in q (1/angstrom) of a reflection from domains of ``domain_size`` angstrom."""
    fwhm = 2 * np.pi * SCHERRER_K / domain_size
    return fwhm / 2.3548


def ring(q: np.ndarray, q0: float, sigma: float) -> np.ndarray:
    """Gaussian ring ``exp(-(q - q0)^2 / 2 sigma^2)``, peak 1 at ``q0``."""
    x = (q - np.float32(q0)) * np.float32(1.0 / sigma)
    return np.exp(np.float32(-0.5) * x * x)


def orientation(chi: np.ndarray, chi0: float, kappa: float, fold: int = 2) -> np.ndarray:
    """Azimuthal distribution ``exp(kappa (cos(fold (chi - chi0)) - 1))``, maximum 1 at ``chi0``.

    ``fold=2`` is the centro-symmetric pair of arcs of a fibre or film texture; ``fold=4`` the
    four-fold symmetry ring of a cubic texture. Larger ``kappa`` is narrower: the arc's FWHM in
    chi is about ``2 arccos(1 - ln2 / kappa) / fold``.
    """
    return np.exp(np.float32(kappa) * (np.cos(np.float32(fold) * (chi - np.float32(chi0))) - np.float32(1.0)))


def halo(q: np.ndarray, q0: float, xi: float) -> np.ndarray:
    """Amorphous halo, Lorentzian ``1 / (1 + ((q - q0) xi)^2)``: correlation length ``xi`` (angstrom)."""
    x = (q - np.float32(q0)) * np.float32(xi)
    return 1.0 / (1.0 + x * x)


def diffuse(q: np.ndarray, xi: float, exponent: float = 2.0) -> np.ndarray:
    """Low-q diffuse scattering ``1 / (1 + (q xi)^2)^(exponent / 2)``: 1 at q = 0."""
    x = q * np.float32(xi)
    return (1.0 + x * x) ** np.float32(-exponent / 2)


def porod(q: np.ndarray, q_ref: float) -> np.ndarray:
    """Porod tail ``(q_ref / q)^4`` capped at 1 (below ``q_ref``)."""
    x = np.maximum(q, np.float32(q_ref)) * np.float32(1.0 / q_ref)
    return 1.0 / (x * x * x * x)


def sphere_form_factor(q: np.ndarray, radius: float, polydispersity: float = 0.05,
                       n_radii: int = 5) -> np.ndarray:
    """Orientation-averaged |F|^2 of homogeneous spheres, normalised to 1 at q = 0.

    ``F(x) = 3 (sin x - x cos x) / x^3`` with ``x = q R``; polydispersity (relative sigma of a
    Gaussian radius distribution, sampled at ``n_radii`` radii, volume-squared weighted) smears
    the minima as in real colloids.
    """
    offsets = np.linspace(-2, 2, n_radii) if polydispersity > 0 else np.zeros(1)
    weights = np.exp(-0.5 * offsets ** 2)
    radii = radius * (1 + polydispersity * offsets)
    weights = weights * radii ** 6
    weights = weights / weights.sum()
    out = np.zeros(np.shape(q), np.float32)
    for r, w in zip(radii, weights):
        x = np.maximum(q * np.float32(r), np.float32(1e-3))
        f = 3 * (np.sin(x) - x * np.cos(x)) / (x * x * x)
        out += np.float32(w) * f * f
    return out


def cylinder_form_factor(q: np.ndarray, radius: float) -> np.ndarray:
    """Cross-section |F|^2 of a long cylinder perpendicular to q: ``(2 J1(qR) / qR)^2``, 1 at q = 0."""
    from scipy.special import j1

    x = np.maximum(q * np.float32(radius), np.float32(1e-3))
    f = 2 * j1(x) / x
    return (f * f).astype(np.float32)


def spot(rows: np.ndarray, cols: np.ndarray, row0: float, col0: float, sigma_rows: float,
         sigma_cols: float) -> np.ndarray:
    """Separable 2-D Gaussian spot on pixel coordinates, peak 1 at (row0, col0).

    ``rows`` (n, 1) and ``cols`` (1, m) are pixel-centre coordinates of a window.
    """
    a = (rows - row0) / sigma_rows
    b = (cols - col0) / sigma_cols
    return np.exp(-0.5 * a * a).astype(np.float32) * np.exp(-0.5 * b * b).astype(np.float32)
