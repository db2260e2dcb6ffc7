"""Sample catalogue: what each material scatters, per experiment geometry.

Each material is named by its vocabulary tag; ``MATERIALS[name] = (geometries, build)`` and
``build(rng, geometry)`` returns the sample's tags (material class, morphology) and its
scattering features as plain dicts (kept in the image's provenance). Positions are the
materials' real ones (inverse angstrom):

- AgBH, silver behenate: lamellar d = 58.38 A, q1 = 0.1076, many orders (SAXS calibrant).
- LaB6: simple cubic a = 4.1569 A, q = 1.5115 sqrt(h^2 + k^2 + l^2) (WAXS calibrant); coarse
  powders give spotted rings.
- Silicon: diamond cubic a = 5.431 A: (111) 2.004, (220) 3.272, (311) 3.837; a wafer gives a
  few Bragg spots.
- SiO2 (glass, native oxide, substrate): amorphous halo at 1.5-1.6; PDMS: halos at ~0.82
  and ~2.1, oriented when stretched; PCBM: halo at ~1.4 and a weak one at ~0.7.
- P3HT: lamellar (100) at 0.38-0.39 with (200), (300); pi-stacking (010) at ~1.65; edge-on
  films put the lamellar arcs along q_z and the pi-stack along q_xy.
- Rubrene: orthorhombic a = 26.9, b = 7.2, c = 14.4 A; films are fibre-textured crystals
  (a field of spots in GIWAXS) or textured powders.
- PS-PMMA block copolymer: lamellae or cylinders of period 20-60 nm; in films vertical domains
  give Bragg rods, parallel lamellae peaks along the specular rod, spheres/cylinders a lattice
  of spots.
- Superlattice: nanoparticles (radius 2-8 nm) on an fcc/bcc lattice.
- Grating: lithographic or templated lines of pitch 30-200 nm: a row of Bragg rods in GISAXS,
  a line of peaks in transmission.
- MWCNT: graphitic (002) at 1.84 (d = 3.4 A); aligned tubes give oriented streaks at low q.
- Nanoporous: pores with a broad correlation peak and Porod scattering.
- Empty cell: no sample, only the Kapton windows of the cell.
- Polycrystalline: an inorganic or hybrid crystalline film or powder (perovskites, metal oxides,
  metals; first ring at 0.7-1.6) with many Debye-Scherrer rings, each with its own texture, some
  broken into spots by coarse grains, often beside an amorphous halo: what most real GIWAXS frames
  of the development set show, and the organic materials above do not.
"""
from __future__ import annotations

import numpy as np

from xray_spark.simulate.features import lattice_q, scherrer_width

SAXS, WAXS = ("TSAXS", "GISAXS", "GTSAXS"), ("TWAXS", "GIWAXS")
GRAZING = ("GISAXS", "GIWAXS", "GTSAXS")      # a film on a substrate, the beam at grazing incidence
FILM_SAXS = ("GISAXS", "GTSAXS")
DEG = np.pi / 180
ORIENTED_KAPPA = (4.0, 40.0)
TEXTURED_KAPPA = (0.8, 2.5)


def texture(rng, film: bool, preferred_chi: float, weights=None):
    """(chi0, kappa, fold, ring tag) of a ring: isotropic, textured, or oriented along z / xy / other."""
    kinds = ["isotropic", "textured", "oriented", "4-fold"]
    p = weights or ([0.15, 0.35, 0.45, 0.05] if film else [0.45, 0.3, 0.2, 0.05])
    kind = kinds[int(rng.choice(4, p=p))]
    if kind == "isotropic":
        return 0.0, 0.0, 2, "Ring: Isotropic"
    if kind == "textured":
        return preferred_chi, float(rng.uniform(*TEXTURED_KAPPA)), 2, "Ring: Textured"
    if kind == "4-fold":
        return float(rng.uniform(0, 90) * DEG), float(rng.uniform(3, 12)), 4, "Symmetry ring: 4-fold"
    chi0 = preferred_chi if rng.random() < 0.85 else float(rng.uniform(20, 70) * DEG)
    tag = {0.0: "Ring: Oriented z", 90 * DEG: "Ring: Oriented xy"}.get(round(chi0, 12), "Ring: Oriented other")
    return chi0, float(rng.uniform(*ORIENTED_KAPPA)), 2, tag


def ring(q0, sigma, amp, chi0=0.0, kappa=0.0, fold=2, tags=(), lattice=None, order=None):
    return {"kind": "ring", "q0": float(q0), "sigma": float(sigma), "amp": float(amp), "chi0": float(chi0),
            "kappa": float(kappa), "fold": int(fold), "tags": list(tags), "lattice": lattice, "order": order}


def lattice_rings(kind, q1, orders, domain, decay, chi0=0.0, kappa=0.0, fold=2, tag="Ring: Isotropic",
                  lattice="main", amp=1.0):
    """Rings of a lattice, intensities falling as ``order^-decay`` (Debye-Waller and form factor)."""
    sigma = scherrer_width(domain)
    return [ring(q, sigma * (1 + 0.05 * n), amp * float(n + 1) ** -decay, chi0, kappa, fold, [tag], lattice, n + 1)
            for n, q in enumerate(lattice_q(kind, q1, orders))]


def halo(q0, xi, amp, chi0=0.0, kappa=0.0, tags=("Halo: Isotropic",)):
    return {"kind": "halo", "q0": float(q0), "xi": float(xi), "amp": float(amp), "chi0": float(chi0),
            "kappa": float(kappa), "fold": 2, "tags": list(tags)}


def diffuse(xi, exponent, amp, chi0=0.0, kappa=0.0, tags=("Diffuse low-q: Isotropic",)):
    return {"kind": "diffuse", "xi": float(xi), "exponent": float(exponent), "amp": float(amp),
            "chi0": float(chi0), "kappa": float(kappa), "fold": 2, "tags": list(tags)}


def spots(positions, sigma_q, tags, lattice=None, orders=None, peaks=True, elongation=1.0):
    """Spots at (q, chi) in transmission or (q_xy, film q_z) in grazing incidence, each with its amplitude."""
    return {"kind": "spots", "positions": [[float(a), float(b), float(c)] for a, b, c in positions],
            "sigma_q": float(sigma_q), "tags": list(tags), "lattice": lattice,
            "orders": None if orders is None else [int(o) for o in orders], "peaks": peaks,
            "elongation": float(elongation)}


def bragg_rods(qs, amps, sigma, xi_z, amp, tags):
    """Rods along q_z at q_xy = +-q_n (grazing incidence), each an order of one lattice."""
    return {"kind": "bragg_rods", "q": [float(q) for q in qs], "amps": [float(a) for a in amps], "sigma": float(sigma),
            "xi_z": float(xi_z), "amp": float(amp), "tags": list(tags), "lattice": "rods",
            "orders": list(range(1, len(qs) + 1))}


def film_spots(rng, q_xy, q_z, h_max, l_max, sigma_q, tags=(), lattice="main"):
    """Spots of a film lattice at (+-h q_xy, l q_z), h <= h_max, 1 <= l <= l_max, falling with order."""
    positions, orders = [], []
    for h in range(0, h_max + 1):
        for l in range(1, l_max + 1):
            amp = float(rng.uniform(0.3, 1.0)) / (h + l) ** float(rng.uniform(0.8, 1.5))
            for sign in ((-1, 1) if h else (1,)):
                positions.append((sign * h * q_xy, l * q_z, amp))
                orders.append(max(h, l))
    return spots(positions, sigma_q, tags, lattice, orders)


def oriented_halo(rng, q0, xi, amp, film):
    """An amorphous halo, isotropic or (stretched, rubbed films) oriented."""
    kind = rng.choice(["iso", "z", "xy", "aniso"], p=[0.7, 0.1, 0.1, 0.1] if film else [0.8, 0.07, 0.07, 0.06])
    if kind == "iso":
        return halo(q0, xi, amp)
    if kind == "aniso":
        return halo(q0, xi, amp, float(rng.uniform(0, np.pi)), float(rng.uniform(0.6, 1.5)), ("Halo: Anisotropic",))
    chi0 = 0.0 if kind == "z" else 90 * DEG
    return halo(q0, xi, amp, chi0, float(rng.uniform(3, 10)), (f"Halo: Oriented {kind}",))


# ---------------------------------------------------------------- calibrants and inorganics

def agbh(rng, geometry):
    rings = lattice_rings("lamellar", 0.1076, int(rng.integers(6, 24)), rng.uniform(400, 1500), rng.uniform(0.6, 1.4))
    return ["AgBH", "Powder"], rings + (doubled(rings[:3], rng) if rng.random() < 0.1 else [])


def doubled(rings, rng, tag="Ring doubling"):
    """A second phase or strained layer: each ring again at q (1 + delta), resolved (delta >= 3 sigma / q)."""
    delta = max(float(rng.uniform(0.01, 0.03)), 3 * max(r["sigma"] / r["q0"] for r in rings))
    return [dict(r, q0=r["q0"] * (1 + delta), amp=r["amp"] * float(rng.uniform(0.4, 1.0)), tags=[tag],
                 lattice="second") for r in rings]


def lab6(rng, geometry):
    rings = lattice_rings("cubic", 1.5115, int(rng.integers(4, 12)), rng.uniform(500, 2000), rng.uniform(0.2, 0.6))
    if rng.random() < 0.3:                   # coarse grains: rings break up into spots
        few = rng.random() < 0.4
        positions, orders = [], []
        for r in rings:
            chis = rng.uniform(-np.pi, np.pi, int(rng.integers(2, 6) if few else rng.integers(12, 40)))
            positions += [(r["q0"], c, r["amp"] * rng.uniform(2, 6)) for c in chis]
            orders += [r["order"]] * len(chis)
        return ["LaB6", "Polycrystalline"], [spots(positions, rings[0]["sigma"],
                                                   ["Peaks: Along ring"] if few else ["Ring: Spotted"], "main",
                                                   orders, peaks=False)]
    if rng.random() < 0.15:
        rings += doubled(rings, rng)
    return ["LaB6", "Powder"], rings


def silicon(rng, geometry):
    """A wafer: the few reflections that meet the Bragg condition, as isolated spots."""
    qs = [2.004, 3.272, 3.837]
    chosen = [(qs[int(rng.integers(3))], float(rng.uniform(-np.pi, np.pi)), float(rng.uniform(5, 50)))
              for _ in range(int(rng.integers(1, 5)))]
    if rng.random() < 0.3 and chosen:        # twin or strain: a second spot right next to one
        q, c, a = chosen[0]
        chosen.append((q * (1 + rng.uniform(0.015, 0.03)), c + rng.uniform(-0.02, 0.02), a))
        feats = [spots(chosen, 0.004, ["Peak doubling"])]
    else:
        feats = [spots(chosen, 0.004, [])]
    return ["Silicon", "Single crystal"], feats


def sio2(rng, geometry):
    return ["SiO2", "Amorphous"], [halo(rng.uniform(1.5, 1.62), rng.uniform(2.0, 4.0), 1.0)]


def pdms(rng, geometry):
    return ["PDMS", "Polymer", "Amorphous"], [oriented_halo(rng, rng.uniform(0.78, 0.86), rng.uniform(3.0, 6.0), 1.0,
                                                            geometry in GRAZING),
                                              halo(rng.uniform(2.0, 2.2), rng.uniform(1.5, 3.0), 0.3)]


def pcbm(rng, geometry):
    return ["PCBM", "Amorphous"], [halo(rng.uniform(1.35, 1.45), rng.uniform(3.0, 6.0), 1.0),
                                   halo(rng.uniform(0.66, 0.74), rng.uniform(6.0, 10.0), 0.4)]


def mwcnt(rng, geometry):
    aligned = rng.random() < 0.5
    if geometry in SAXS:
        xi = rng.uniform(50, 200)
        if aligned:
            kind = int(rng.choice(4, p=[0.3, 0.3, 0.2, 0.2]))
            chi0 = [0.0, 90 * DEG, float(rng.uniform(20, 70) * DEG), float(rng.uniform(0, 180) * DEG)][kind]
            kappa = float(rng.uniform(0.5, 1.2)) if kind == 3 else float(rng.uniform(3, 10))
            tag = ["Diffuse low-q: Oriented z", "Diffuse low-q: Oriented xy", "Diffuse low-q: Oriented other",
                   "Diffuse low-q: Anisotropic"][kind]
            return ["MWCNT"], [diffuse(xi, 3.0, 1.0, chi0, kappa, [tag])]
        # randomly oriented tubes: the cross-section form factor of cylinders, oscillating at low q
        return ["MWCNT"], [{"kind": "cylinder", "radius": float(rng.uniform(40, 120)), "amp": 1.0,
                            "tags": ["Diffuse low-q: Isotropic"]}]
    chi0, kappa, fold, tag = (90 * DEG, float(rng.uniform(3, 12)), 2, "Ring: Oriented xy") if aligned \
        else (0.0, 0.0, 2, "Ring: Isotropic")
    return ["MWCNT"], [ring(1.84, scherrer_width(rng.uniform(25, 60)), 1.0, chi0, kappa, fold, [tag]),
                       diffuse(rng.uniform(8, 20), 3.0, 0.5, tags=["Diffuse high-q: Isotropic"])]


# ---------------------------------------------------------------- organic films

def p3ht(rng, geometry):
    """Edge-on (lamellae along q_z), face-on or isotropic P3HT crystallites; often blended with PCBM."""
    film = geometry in GRAZING
    chi0, kappa, fold, tag = texture(rng, film, 0.0, [0.1, 0.25, 0.65, 0.0] if film else [0.3, 0.35, 0.35, 0.0])
    feats = lattice_rings("lamellar", rng.uniform(0.37, 0.40), int(rng.integers(1, 4)), rng.uniform(80, 250),
                          rng.uniform(1.0, 2.5), chi0, kappa, fold, tag)
    pi_chi = chi0 + 90 * DEG if kappa else 0.0
    pi_tag = {"Ring: Oriented z": "Ring: Oriented xy", "Ring: Oriented xy": "Ring: Oriented z"}.get(tag, tag)
    feats.append(ring(rng.uniform(1.62, 1.68), scherrer_width(rng.uniform(30, 60)), rng.uniform(0.2, 0.5),
                      pi_chi, kappa, 2, [pi_tag]))
    tags = ["P3HT", "Polymer"]
    if rng.random() < 0.4:
        tags += ["PCBM", "Composite"]
        feats.append(halo(rng.uniform(1.35, 1.45), rng.uniform(3.0, 6.0), rng.uniform(0.2, 0.6)))
    return tags, feats


def rubrene(rng, geometry):
    """Fibre-textured crystals: spots at (q_xy of (h k), q_z of l) in GIWAXS, else textured rings."""
    a_star, b_star, c_star = 2 * np.pi / 26.9, 2 * np.pi / 7.2, 2 * np.pi / 14.4
    if geometry == "GIWAXS" and rng.random() < 0.7:
        positions, orders = [], []
        for h in range(0, 5):
            for k in range(0, 3):
                qxy = np.hypot(h * a_star, k * b_star)
                if qxy == 0 or (h + k) % 2:
                    continue
                for l in range(0, 4):
                    amp = rng.uniform(0.2, 1.0) / (1 + 0.3 * (h + k + l))
                    for sign in (-1, 1):
                        positions.append((sign * qxy, l * c_star, amp))
                        orders.append(max(h, k, l) + 1)
        return ["Rubrene", "Single crystal"], [spots(positions, rng.uniform(0.008, 0.02), ["Ordered"], "main", orders)]
    chi0, kappa, fold, tag = texture(rng, geometry in GRAZING, 0.0)
    return ["Rubrene", "Polycrystalline"], lattice_rings("lamellar", 2 * a_star, int(rng.integers(3, 8)),
                                                         rng.uniform(300, 900), rng.uniform(0.4, 1.0),
                                                         chi0, kappa, fold, tag)


def ps_pmma(rng, geometry):
    """Block copolymer microdomains; film morphologies in GISAXS, powders of grains in TSAXS."""
    kind = str(rng.choice(["lamellar", "hexagonal"]))
    q1 = rng.uniform(0.01, 0.03)
    orders = int(rng.integers(2, 9))
    domain = rng.uniform(800, 4000)
    tags = ["PS-PMMA", "Block-copolymer", "Polymer"]
    feats = [diffuse(rng.uniform(100, 400), 4.0, rng.uniform(0.02, 0.1), tags=())]
    if geometry in FILM_SAXS:
        morphology = rng.choice(["vertical", "parallel", "lattice", "row", "column", "grains"],
                                p=[0.25, 0.15, 0.3, 0.1, 0.05, 0.15])
        qs = lattice_q(kind, q1, orders)
        amps = [float(n + 1) ** -rng.uniform(0.8, 2.0) for n in range(orders)]
        if morphology == "vertical":          # standing lamellae/cylinders: Bragg rods at q_xy = q_n
            feats.append(bragg_rods(qs, amps, scherrer_width(domain), rng.uniform(30, 150), rng.uniform(0.5, 2.0),
                                    ["Bragg rods"]))
        elif morphology == "parallel":        # lamellae parallel to the substrate: peaks on the specular rod
            feats.append(spots([(0.0, q, a) for q, a in zip(lattice_q("lamellar", q1, orders), amps)],
                               scherrer_width(domain), ["Specular rod peaks"], "main", range(1, orders + 1),
                               peaks=False))
        elif morphology == "lattice":         # spheres or lying cylinders in grains: a few lattice spots
            feats.append(film_spots(rng, q1, q1 * rng.uniform(0.9, 1.3), int(rng.integers(1, 3)),
                                    int(rng.integers(1, 3)), scherrer_width(domain)))
        elif morphology == "row":             # standing cylinders of finite height: a row of peaks along q_xy
            qz = 2 * np.pi / rng.uniform(200, 600)
            positions = [(sign * q, qz, a) for q, a in zip(qs, amps) for sign in (-1, 1)]
            feats.append(spots(positions, scherrer_width(domain), ["Peaks: Line xy"], "main",
                               [n + 1 for n in range(orders) for _ in (0, 1)], peaks=False))
        elif morphology == "column":          # stacked layers with in-plane order: a line of peaks along q_z
            positions = [(sign * q1, l * q1 * rng.uniform(0.95, 1.05), float(l) ** -1.2)
                         for l in range(1, orders + 1) for sign in (-1, 1)]
            feats.append(spots(positions, scherrer_width(domain), ["Peaks: Line z"], "main",
                               [l for l in range(1, orders + 1) for _ in (0, 1)], peaks=False))
        else:                                 # grains of either orientation
            chi0, kappa, fold, tag = texture(rng, True, float(rng.choice([0.0, 90 * DEG])))
            feats += lattice_rings(kind, q1, orders, domain, rng.uniform(0.8, 2.0), chi0, kappa, fold, tag)
        return tags, feats
    chi0, kappa, fold, tag = texture(rng, False, float(rng.choice([0.0, 90 * DEG])))   # shear aligns either way
    return tags, feats + lattice_rings(kind, q1, orders, domain, rng.uniform(0.8, 2.0), chi0, kappa, fold, tag)


def superlattice(rng, geometry):
    radius = rng.uniform(20, 80)
    kind = str(rng.choice(["fcc", "bcc"]))
    nn = 2 * radius * rng.uniform(1.1, 1.4)                        # nearest-neighbour distance
    q1 = 2 * np.pi / nn * (np.sqrt(1.5) if kind == "fcc" else np.sqrt(1.5))
    feats = [{"kind": "form_factor", "radius": float(radius), "polydispersity": float(rng.uniform(0.05, 0.15)),
              "amp": 1.0, "tags": ["Diffuse low-q: Isotropic"]}]
    if geometry in FILM_SAXS and rng.random() < 0.5:     # an oriented film of the superlattice
        feats.append(film_spots(rng, q1, q1 * rng.uniform(0.8, 1.2), int(rng.integers(1, 3)), int(rng.integers(1, 3)),
                                scherrer_width(rng.uniform(500, 2000))))
        for position in feats[-1]["positions"]:
            position[2] *= float(rng.uniform(2.0, 6.0))
    elif rng.random() < 0.8:
        feats += lattice_rings(kind, q1, int(rng.integers(2, 8)), rng.uniform(500, 2000), rng.uniform(0.5, 1.5),
                               amp=rng.uniform(1.0, 4.0))
    return ["Superlattice", "Composite"], feats


def grating(rng, geometry):
    pitch = rng.uniform(300, 2000)
    q1 = 2 * np.pi / pitch
    orders = int(rng.integers(3, 25))
    amps = [float(n + 1) ** -rng.uniform(0.5, 1.5) for n in range(orders)]
    if geometry in FILM_SAXS:
        return ["Grating"], [bragg_rods(q1 * np.arange(1, orders + 1), amps, q1 / rng.uniform(30, 100),
                                        rng.uniform(20, 100), rng.uniform(0.5, 2.0), ["Bragg rods", "Vertical streaks"])]
    chi = 90 * DEG if rng.random() < 0.6 else float(rng.uniform(10, 80) * DEG)
    tag = "Peaks: Line" if chi == 90 * DEG else "Peaks: Line other"
    positions = [(q1 * (n + 1), chi + side, a) for n, a in enumerate(amps) for side in (0.0, np.pi)]
    orders_list = [n + 1 for n in range(orders) for _ in (0, 1)]
    return ["Grating"], [spots(positions, q1 / 50, [tag], "main", orders_list, peaks=False)]


def nanoporous(rng, geometry):
    return ["Nanoporous"], [halo(rng.uniform(0.03, 0.1), rng.uniform(30, 80), 0.5, tags=("Diffuse low-q: Isotropic",)),
                            {"kind": "porod", "q_ref": float(rng.uniform(0.005, 0.015)), "amp": 1.0,
                             "tags": ["Diffuse low-q: Isotropic"]}]


def polycrystalline(rng, geometry):
    """Many rings of one lattice; each ring its own texture (``texture``): grains that the substrate
    orients for one reflection need not be for another; a coarse-grained ring is a ring of spots."""
    film = geometry in GRAZING
    rings = lattice_rings(str(rng.choice(["cubic", "bcc", "fcc", "hexagonal"])), rng.uniform(0.7, 1.6),
                          int(rng.integers(3, 11)), rng.uniform(150, 800), rng.uniform(0.2, 0.8))
    feats, positions, orders = [], [], []
    for r in rings:
        if rng.random() < 0.2:
            # chi from q_z: (q, chi) in transmission, (q_xy, q_z) above the horizon in grazing incidence
            chis = rng.uniform(-np.pi / 2, np.pi / 2, int(rng.integers(12, 40))) if film \
                else rng.uniform(-np.pi, np.pi, int(rng.integers(12, 40)))
            positions += [(r["q0"] * np.sin(c), r["q0"] * np.cos(c), r["amp"] * rng.uniform(2, 6)) if film
                          else (r["q0"], c, r["amp"] * rng.uniform(2, 6)) for c in chis]
            orders += [r["order"]] * len(chis)
            continue
        chi0, kappa, fold, tag = texture(rng, film, 0.0 if rng.random() < 0.7 else 90 * DEG, [0.45, 0.35, 0.15, 0.05])
        feats.append(dict(r, chi0=chi0, kappa=kappa, fold=fold, tags=[tag]))
    if positions:
        feats.append(spots(positions, rings[0]["sigma"], ["Ring: Spotted"], "main", orders, peaks=False))
    if rng.random() < 0.5:
        feats.append(halo(rng.uniform(1.2, 2.0), rng.uniform(2.0, 5.0), rng.uniform(0.1, 0.6)))
    return ["Polycrystalline"], feats


def empty_cell(rng, geometry):
    """No sample: only the cell's Kapton windows (broad peak near 0.4, halo near 1.2) over air scattering."""
    return ["Empty cell"], [halo(rng.uniform(0.38, 0.42), rng.uniform(15, 30), rng.uniform(0.01, 0.05), tags=()),
                            halo(rng.uniform(1.1, 1.3), rng.uniform(2, 4), rng.uniform(0.01, 0.05), tags=())]


MATERIALS = {
    "AgBH": (("TSAXS",), agbh), "LaB6": (("TWAXS",), lab6), "Silicon": (("TWAXS",), silicon),
    "SiO2": (WAXS, sio2), "PDMS": (WAXS, pdms), "PCBM": (WAXS, pcbm), "P3HT": (WAXS, p3ht),
    "Rubrene": (WAXS, rubrene), "MWCNT": (SAXS + WAXS, mwcnt), "PS-PMMA": (SAXS, ps_pmma),
    "Superlattice": (SAXS, superlattice), "Grating": (SAXS, grating), "Nanoporous": (SAXS, nanoporous),
    "Empty cell": (("TSAXS", "TWAXS"), empty_cell), "Polycrystalline": (WAXS, polycrystalline),
}
