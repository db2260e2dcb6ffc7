"""Sample catalogue: what each material scatters, per experiment geometry.

Each material is named by its vocabulary tag and builds, from a random generator, the sample's
tags (material class, morphology, film) and its scattering features as plain dicts (kept in the
image's provenance). Positions are the materials' real ones (inverse angstrom):

- AgBH, silver behenate: lamellar d = 58.38 A, q1 = 0.1076, up to ~20 orders (SAXS calibrant).
- LaB6: simple cubic a = 4.1569 A, q = 1.5115 sqrt(h^2 + k^2 + l^2) (WAXS calibrant).
- Silicon: diamond cubic a = 5.431 A; (111) 2.004, (220) 3.272; single-crystal wafer spots.
- SiO2 (glass, native oxide): amorphous halo at 1.5-1.6; PDMS: amorphous halo at ~0.82.
- PCBM: fullerene halo at ~1.4 with a weak one at ~0.7.
- P3HT: lamellar (100) at 0.38-0.39 with (200), (300); pi-stacking (010) at ~1.65; edge-on
  films put the lamellar arcs along q_z and the pi-stack along q_xy.
- Rubrene: orthorhombic crystals, d(200) ~ 13.4 A (q ~ 0.47) and many higher reflections.
- PS-PMMA block copolymer: lamellae or cylinders, period 20-60 nm (q1 0.01-0.03).
- MWCNT: graphitic (002) at 1.84 (d = 3.4 A); aligned tubes give oriented diffuse low-q.
- Nanoparticle superlattice: spheres of 2-8 nm radius on an fcc/bcc lattice.
- Nanoporous: pores with a broad correlation peak and Porod scattering.
"""
from __future__ import annotations

import numpy as np

from xray_spark.simulate.features import lattice_q, scherrer_width

SAXS, WAXS = ("TSAXS", "GISAXS"), ("TWAXS", "GIWAXS")
DEG = np.pi / 180


def _orientation_for(rng, film: bool, preferred_chi: float):
    """(chi0, kappa, texture tag) of a ring: isotropic, textured or oriented along z / xy / other."""
    kind = rng.choice(["isotropic", "textured", "oriented"], p=[0.3, 0.3, 0.4] if film else [0.6, 0.2, 0.2])
    if kind == "isotropic":
        return 0.0, 0.0, "Ring: Isotropic"
    if kind == "textured":
        return preferred_chi, float(rng.uniform(0.7, 2.0)), "Ring: Textured"
    chi0 = preferred_chi if rng.random() < 0.8 else float(rng.uniform(15, 75) * DEG)
    tag = {0.0: "Ring: Oriented z", 90 * DEG: "Ring: Oriented xy"}.get(chi0, "Ring: Oriented other")
    return chi0, float(rng.uniform(4.0, 30.0)), tag


def _ring(q0, sigma, amp, chi0=0.0, kappa=0.0, fold=2, tags=(), lattice=None, order=None):
    return {"kind": "ring", "q0": float(q0), "sigma": float(sigma), "amp": float(amp), "chi0": float(chi0),
            "kappa": float(kappa), "fold": int(fold), "tags": list(tags), "lattice": lattice, "order": order}


def _lattice_rings(rng, kind, q1, orders, domain, decay, chi0, kappa, tag, lattice="main"):
    """Rings of a lattice, intensities falling as ``order^-decay`` (Debye-Waller and form factor)."""
    sigma = scherrer_width(domain)
    return [_ring(q, sigma * (1 + 0.05 * n), float(n + 1) ** -decay, chi0, kappa, 2, [tag], lattice, n + 1)
            for n, q in enumerate(lattice_q(kind, q1, orders))]


def _halo(q0, xi, amp, chi0=0.0, kappa=0.0, tags=("Halo: Isotropic",)):
    return {"kind": "halo", "q0": float(q0), "xi": float(xi), "amp": float(amp), "chi0": float(chi0),
            "kappa": float(kappa), "fold": 2, "tags": list(tags)}


def _diffuse(xi, exponent, amp, chi0=0.0, kappa=0.0, tags=("Diffuse low-q: Isotropic",)):
    return {"kind": "diffuse", "xi": float(xi), "exponent": float(exponent), "amp": float(amp),
            "chi0": float(chi0), "kappa": float(kappa), "fold": 2, "tags": list(tags)}


def agbh(rng, geometry):
    orders = int(rng.integers(6, 22))
    return ["AgBH", "Powder"], _lattice_rings(rng, "lamellar", 0.1076, orders, rng.uniform(400, 1500),
                                               rng.uniform(0.8, 1.6), 0.0, 0.0, "Ring: Isotropic")


def lab6(rng, geometry):
    orders = int(rng.integers(5, 12))
    return ["LaB6", "Powder"], _lattice_rings(rng, "cubic", 1.5115, orders, rng.uniform(500, 2000),
                                               rng.uniform(0.3, 0.8), 0.0, 0.0, "Ring: Isotropic")


def sio2(rng, geometry):
    return ["SiO2", "Amorphous"], [_halo(rng.uniform(1.5, 1.62), rng.uniform(2.0, 4.0), 1.0)]


def pdms(rng, geometry):
    return ["PDMS", "Polymer", "Amorphous"], [_halo(rng.uniform(0.78, 0.86), rng.uniform(3.0, 6.0), 1.0),
                                              _halo(rng.uniform(2.0, 2.2), rng.uniform(1.5, 3.0), 0.3)]


def pcbm(rng, geometry):
    return ["PCBM", "Amorphous"], [_halo(rng.uniform(1.35, 1.45), rng.uniform(3.0, 6.0), 1.0),
                                   _halo(rng.uniform(0.66, 0.74), rng.uniform(6.0, 10.0), 0.4)]


def p3ht(rng, geometry):
    """Edge-on (lamellae along q_z), face-on or isotropic P3HT crystallites; often with PCBM."""
    film = geometry.startswith("GI")
    chi0, kappa, tag = _orientation_for(rng, film, 0.0)
    q1 = rng.uniform(0.37, 0.40)
    feats = _lattice_rings(rng, "lamellar", q1, int(rng.integers(1, 4)), rng.uniform(80, 250),
                           rng.uniform(1.0, 2.5), chi0, kappa, tag)
    pi_tag = tag.replace("Oriented z", "Oriented xy") if chi0 == 0.0 else tag
    feats.append(_ring(rng.uniform(1.62, 1.68), scherrer_width(rng.uniform(30, 60)), rng.uniform(0.2, 0.5),
                       chi0 + 90 * DEG if kappa else 0.0, kappa, 2, [pi_tag]))
    tags = ["P3HT", "Polymer"]
    if rng.random() < 0.4:
        tags += ["PCBM", "Composite"]
        feats.append(_halo(rng.uniform(1.35, 1.45), rng.uniform(3.0, 6.0), rng.uniform(0.2, 0.6)))
    return tags, feats


def rubrene(rng, geometry):
    chi0, kappa, tag = _orientation_for(rng, geometry.startswith("GI"), 0.0)
    feats = _lattice_rings(rng, "cubic", rng.uniform(0.45, 0.48), int(rng.integers(4, 10)),
                           rng.uniform(300, 900), rng.uniform(0.5, 1.2), chi0, kappa, tag)
    return ["Rubrene"], feats


def mwcnt(rng, geometry):
    chi0, kappa, tag = (90 * DEG, float(rng.uniform(2, 8)), "Ring: Oriented xy") if rng.random() < 0.5 \
        else (0.0, 0.0, "Ring: Isotropic")
    feats = [_ring(1.84, scherrer_width(rng.uniform(25, 60)), 1.0, chi0, kappa, 2, [tag])]
    if geometry in SAXS:
        diff_tag = "Diffuse low-q: Oriented xy" if kappa else "Diffuse low-q: Isotropic"
        feats = [_diffuse(rng.uniform(50, 200), 3.0, 1.0, 0.0, kappa / 2, [diff_tag])]
    return ["MWCNT"], feats


def ps_pmma(rng, geometry):
    """Block copolymer: lamellae or hexagonal cylinders; in films often oriented."""
    kind = str(rng.choice(["lamellar", "hexagonal"]))
    q1 = rng.uniform(0.01, 0.035)
    film = geometry == "GISAXS"
    chi0, kappa, tag = _orientation_for(rng, film, 90 * DEG)
    feats = _lattice_rings(rng, kind, q1, int(rng.integers(1, 8)), rng.uniform(800, 4000),
                           rng.uniform(0.8, 2.0), chi0, kappa, tag)
    feats.append(_diffuse(rng.uniform(100, 400), 4.0, rng.uniform(0.05, 0.3), tags=()))
    return ["PS-PMMA", "Block-copolymer", "Polymer"], feats


def superlattice(rng, geometry):
    radius = rng.uniform(20, 80)
    kind = str(rng.choice(["fcc", "bcc"]))
    nn = 2 * radius * rng.uniform(1.1, 1.4)                      # nearest-neighbour distance
    q1 = 2 * np.pi / nn * (np.sqrt(3) / np.sqrt(2) if kind == "fcc" else np.sqrt(2) * np.sqrt(3) / 2)
    feats = [{"kind": "form_factor", "radius": float(radius), "polydispersity": float(rng.uniform(0.05, 0.15)),
              "amp": 1.0, "tags": ["Diffuse low-q: Isotropic"]}]
    if rng.random() < 0.7:
        feats += _lattice_rings(rng, kind, q1, int(rng.integers(2, 8)), rng.uniform(500, 2000),
                                rng.uniform(0.5, 1.5), 0.0, 0.0, "Ring: Isotropic")
        for f in feats[1:]:
            f["amp"] *= 2.0
    return ["Superlattice", "Composite"], feats


def nanoporous(rng, geometry):
    return ["Nanoporous"], [_halo(rng.uniform(0.03, 0.1), rng.uniform(30, 80), 0.5, tags=("Diffuse low-q: Isotropic",)),
                            _diffuse(rng.uniform(200, 600), 4.0, 1.0)]


MATERIALS = {
    "AgBH": (SAXS, agbh), "LaB6": (WAXS, lab6), "SiO2": (WAXS, sio2), "PDMS": (WAXS, pdms),
    "PCBM": (WAXS, pcbm), "P3HT": (WAXS, p3ht), "Rubrene": (WAXS, rubrene), "MWCNT": (SAXS + WAXS, mwcnt),
    "PS-PMMA": (SAXS, ps_pmma), "Superlattice": (SAXS, superlattice), "Nanoporous": (SAXS, nanoporous),
}
