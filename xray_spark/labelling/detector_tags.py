"""The detector tags a file states: which detector took a real frame is a fact of its file, not a
guess from its pixels.

Two of the paper's tags name a detector: ``MarCCD`` (a Mar or Rayonix CCD) and ``Photonics CCD``
(a Photonic Science CCD). The CNN learnt them from generated frames; on real frames it calls a
mar345 image plate's round field a MarCCD and Pilatus frames Photonics CCDs (docs/cnn.md). When a
file says which detector it is, `predict` takes the two tags from the file instead: score 1 for
the detector it is, 0 for the other. A file says it by its format when only one kind of detector
writes that format (fabio's reader class: a MarCCD frame, a mar345 plate, a Bruker or Oxford CCD,
...), or by the detector its header or sidecar names (the `images` table's ``detector``), looked up
in pyFAI's detector registry, whose entries record their manufacturer. A generated image, or a file
that does not say (a plain TIFF, an EDF without a detector name), keeps the network's scores.
"""
from __future__ import annotations

import functools
import json

import numpy as np

from xray_spark.geometry import pyfai_detector

MARCCD, PHOTONICS_CCD = "MarCCD", "Photonics CCD"
DETECTOR_TAGS = (MARCCD, PHOTONICS_CCD)
OTHER = "another detector"

# fabio reader classes that only one kind of detector writes (ingest's provenance ``reader``)
READER_DETECTOR = {
    "MarccdImage": MARCCD,                 # Mar/Rayonix CCD frame header
    "Mar345Image": OTHER,                  # mar345 image plate
    "BrukerImage": OTHER, "Bruker100Image": OTHER,   # Bruker CCDs
    "GeImage": OTHER,                      # GE a-Si flat panel
    "OxdImage": OTHER, "EsperantoImage": OTHER, "XcaliburImage": OTHER,   # Oxford Diffraction / Rigaku CCDs
    "KcdImage": OTHER,                     # Nonius KappaCCD
    "RaxisImage": OTHER,                   # Rigaku R-AXIS image plate
    "SpeImage": OTHER,                     # Princeton Instruments camera
    "PilatusImage": OTHER, "EigerImage": OTHER, "LambdaImage": OTHER, "PixiImage": OTHER,   # pixel arrays
}
# detector product names pyFAI's registry lacks a size of (e.g. "PILATUS 12M"): the maker's families
PIXEL_ARRAY_FAMILIES = ("pilatus", "eiger", "lambda", "jungfrau", "mythen", "xpad", "maxipix", "pixirad")


@functools.lru_cache(maxsize=256)
def named_detector(name: str | None) -> str | None:
    """The detector kind a detector name states (``MARCCD``, ``PHOTONICS_CCD`` or ``OTHER``), or
    None when the name says nothing pyFAI's registry or a pixel-array family knows."""
    if not name or not name.strip():
        return None
    key = name.strip().lower()
    if "photonic" in key:
        return PHOTONICS_CCD
    found = pyfai_detector(name.strip())
    if found is not None:
        maker = str(getattr(found, "MANUFACTURER", ""))
        image_plate = type(found).__name__ in ("Mar345", "Mar555")         # Mar Research's plates
        return MARCCD if ("Rayonix" in maker or "Mar Research" in maker) and not image_plate else OTHER
    return OTHER if key.startswith(PIXEL_ARRAY_FAMILIES) else None


def stated_detector(provenance: str, detector: str | None) -> str | None:
    """The detector kind a real file states by its reader or its detector name (``provenance``: the
    `images` row's JSON); None for a generated image (no reader) or a file that does not say."""
    reader = json.loads(provenance).get("reader")
    if reader is None:
        return None
    return READER_DETECTOR.get(reader) or named_detector(detector)


def with_stated_detector(scores: np.ndarray, tags: list[str], kind: str | None) -> np.ndarray:
    """``scores`` (n_tags,) with the detector tags set from ``kind``: 1 for the detector it is, 0
    for the others; unchanged when ``kind`` is None or the model does not score them."""
    if kind is None:
        return scores
    out = np.array(scores, np.float32)
    for tag in DETECTOR_TAGS:
        if tag in tags:
            out[tags.index(tag)] = 1.0 if kind == tag else 0.0
    return out
