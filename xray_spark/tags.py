"""Tag vocabulary of the paper's real dataset: names, groups, multi-hot encoding, named subsets.

The 98 tags (``data/tags.csv``) carry their group (G1 experiment geometry, G2 instrument/detector,
G3 image quality, G4 scattering features, G5 morphology, G6 material class, G7 specific material),
their count in the paper's 2832 real images and their frequency rank. Tags are always addressed
by these exact names; a misspelt name fails with the closest vocabulary names.
"""
from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Iterable, Sequence

import numpy as np

GROUPS = {
    "G1": "experiment geometry",
    "G2": "instrument/detector",
    "G3": "image quality",
    "G4": "scattering features",
    "G5": "morphology",
    "G6": "material class",
    "G7": "specific material",
}


class UnknownTagError(ValueError):
    """A tag or subset name that is not in the vocabulary."""


@dataclass(frozen=True)
class Tag:
    name: str
    group: str
    count_real: int
    rank: int


@lru_cache(maxsize=1)
def vocabulary() -> tuple[Tag, ...]:
    """All 98 tags in rank order (rank 1 = most frequent in the real data)."""
    text = resources.files("xray_spark").joinpath("data/tags.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines())
    tags = tuple(Tag(r["tag"], r["group"], int(r["count_real"]), int(r["rank"])) for r in rows)
    return tuple(sorted(tags, key=lambda t: t.rank))


def names() -> list[str]:
    """Tag names in vocabulary (rank) order: the column order of every multi-hot vector."""
    return [t.name for t in vocabulary()]


def check_names(tag_names: Iterable[str], where: str = "") -> list[str]:
    """Return the names unchanged, or fail naming every unknown one and its closest matches."""
    known = set(names())
    tag_names = list(tag_names)
    unknown = [n for n in tag_names if n not in known]
    if unknown:
        hints = "; ".join(f"{n!r} (closest: {', '.join(map(repr, closest(n))) or 'none'})"
                          for n in unknown)
        raise UnknownTagError(f"unknown tag name{'s' if len(unknown) > 1 else ''}"
                              f"{' in ' + where if where else ''}: {hints}")
    return tag_names


def closest(name: str, n: int = 3) -> list[str]:
    """The vocabulary names closest to a (misspelt) tag name, case-insensitively."""
    lowered = {t.lower(): t for t in names()}
    return [lowered[m] for m in difflib.get_close_matches(name.lower(), lowered, n=n, cutoff=0.5)]


def subset(name: str) -> list[str]:
    """Named tag subsets: ``all``, ``top17`` (or any ``topN``), a group id ``G1``..``G7``."""
    if name == "all":
        return names()
    if name.startswith("top") and name[3:].isdigit() and 0 < int(name[3:]) <= len(vocabulary()):
        return names()[: int(name[3:])]
    if name in GROUPS:
        return [t.name for t in vocabulary() if t.group == name]
    raise UnknownTagError(f"unknown tag subset {name!r}: allowed are 'all', 'topN' "
                          f"(N=1..{len(vocabulary())}, e.g. 'top17') and groups {', '.join(GROUPS)}")


def resolve(spec: str | Sequence[str]) -> list[str]:
    """A subset name (``'top17'``) or an explicit list of tag names, checked."""
    return subset(spec) if isinstance(spec, str) else check_names(spec)


def encode(tag_names: Iterable[str], tag_set: Sequence[str] | None = None) -> np.ndarray:
    """Multi-hot int8 vector over ``tag_set`` (default: the whole vocabulary, rank order).

    Names outside the vocabulary raise; vocabulary names outside ``tag_set`` are dropped,
    which is what restricting labels to a subset means.
    """
    tag_set = names() if tag_set is None else list(tag_set)
    index = {n: i for i, n in enumerate(tag_set)}
    out = np.zeros(len(tag_set), dtype=np.int8)
    for n in check_names(tag_names):
        if n in index:
            out[index[n]] = 1
    return out


def decode(multi_hot: Sequence[int] | np.ndarray, tag_set: Sequence[str] | None = None) -> list[str]:
    """Tag names of the non-zero entries of a multi-hot vector over ``tag_set``."""
    tag_set = names() if tag_set is None else list(tag_set)
    multi_hot = np.asarray(multi_hot)
    if multi_hot.shape != (len(tag_set),):
        raise ValueError(f"multi-hot vector has shape {multi_hot.shape}, expected ({len(tag_set)},)")
    return [tag_set[i] for i in np.flatnonzero(multi_hot)]


def project(multi_hot: np.ndarray, tag_set: Sequence[str]) -> np.ndarray:
    """Columns of full-vocabulary multi-hot rows (shape (..., 98)) restricted to ``tag_set``."""
    columns = [names().index(n) for n in check_names(tag_set)]
    return np.asarray(multi_hot)[..., columns]


# ---------------------------------------------------------------- high-level attributes

# The paper's synthetic-data protocol scores 20 high-level attributes instead of single tags.
# Each attribute is a union of vocabulary tags that show the same physics or the same artefact
# on the detector; every one of the 98 tags belongs to exactly one attribute.
ATTRIBUTES_20: dict[str, tuple[str, ...]] = {
    "Transmission geometry": ("TSAXS", "TWAXS"),
    "Grazing-incidence geometry": ("GISAXS", "GIWAXS", "GTSAXS"),
    "Angle sweep": ("Theta sweep", "Phi sweep"),
    "CCD detector": ("Photonics CCD", "MarCCD"),
    "Beamstop": ("Linear beamstop", "Circular beamstop"),
    "Beam and detector settings": ("Beam off image", "Saturation", "Asymmetric (left/right)"),
    "Scattering strength": ("Weak scattering", "Strong scattering", "High background"),
    "Artefacts and obstructions": (
        "2D detector obstruction", "Saturation artifacts", "Misaligned", "Beam streaking", "Blocked",
        "Bad beam shape", "Direct", "Object obstruction", "Empty cell", "Parasitic slit scattering",
        "Point detector obstruction"),
    "Reflection features": (
        "Specular rod", "Horizon", "Yoneda", "Smearred horizon", "Diffuse specular rod",
        "Specular rod peaks", "Waveguide streaks", "Substrate streaks/Kikuchi"),
    "Isotropic rings": ("Ring: Isotropic", "Many rings", "Ring doubling", "Symmetry ring: 4-fold"),
    "Oriented rings": (
        "Ring: Oriented z", "Ring: Oriented xy", "Ring: Textured", "Ring: Anisotropic", "Ring: Spotted",
        "Ring: Oriented other"),
    "Halo": ("Halo: Isotropic", "Halo: Oriented z", "Halo: Oriented xy", "Halo: Anisotropic", "Halo: Spotted"),
    "Diffuse low-q": (
        "Diffuse low-q: Isotropic", "Diffuse low-q: Anisotropic", "Diffuse low-q: Oriented z",
        "Diffuse low-q: Oriented xy", "Diffuse low-q: Oriented other", "Diffuse low-q: Spotted"),
    "Diffuse high-q": (
        "Diffuse high-q: Isotropic", "Diffuse high-q: Oriented z", "Diffuse high-q: Oriented xy",
        "Diffuse high-q: Spotted"),
    "Peaks": ("Peaks: Isolated", "Peaks: Many/field", "Peaks: Along ring", "Peak doubling"),
    "Lines and rods": (
        "Peaks: Line", "Peaks: Line z", "Peaks: Line xy", "Peaks: Line other", "Bragg rods", "Vertical streaks"),
    "Higher orders": (
        "Higher orders: 2 to 3", "Higher orders: 4 to 6", "Higher orders: 7 to 10", "Higher orders: 10 to 20",
        "Higher orders: 20 or more"),
    "Ordered morphology": ("Ordered", "Single crystal", "Polycrystalline", "Powder", "Grating", "Superlattice"),
    "Film morphology": ("Thin film", "Amorphous", "Nanoporous", "Composite"),
    "Material": (
        "Polymer", "Block-copolymer", "P3HT", "SiO2", "PCBM", "Rubrene", "PS-PMMA", "Silicon", "MWCNT", "PDMS",
        "AgBH", "LaB6"),
}

def attributes20(multi_hot: np.ndarray) -> np.ndarray:
    """The 20 high-level attributes (``ATTRIBUTES_20`` order) of full-vocabulary multi-hot rows.

    Parameters
    ----------
    multi_hot : (..., 98) int array over ``names()``.

    Returns
    -------
    (..., 20) int8 array: 1 where the row has at least one tag of the attribute.
    """
    multi_hot = np.asarray(multi_hot)
    columns = [[names().index(n) for n in check_names(group, where=f"attribute {name!r}")]
               for name, group in ATTRIBUTES_20.items()]
    return np.stack([multi_hot[..., c].max(axis=-1) for c in columns], axis=-1).astype(np.int8)


def labels(multi_hot: np.ndarray, label_set: str | Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Label matrix and label names of full-vocabulary multi-hot rows for a label set.

    ``label_set`` is ``'attributes20'`` (the paper's synthetic protocol), any subset name of
    ``subset`` (``'top17'``, ``'all'``, ``'G4'``) or an explicit list of tag names.
    Returns an int8 array of shape (..., n_labels) and the n_labels names.
    """
    if isinstance(label_set, str) and label_set == "attributes20":
        return attributes20(multi_hot), list(ATTRIBUTES_20)
    chosen = resolve(label_set)
    return project(multi_hot, chosen).astype(np.int8), chosen
