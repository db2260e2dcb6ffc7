"""Where an HDF5/NeXus file keeps its frames, and the NeXus geometry around them (h5py + hdf5plugin).

Frame discovery, first that gives a numeric dataset with ndim >= 2:

1. NeXus: the ``default`` attribute chain (file -> NXentry -> NXdata) and then every NXentry's
   NXdata groups, their ``signal`` attribute (or the old-style dataset attribute ``signal=1``);
2. the configured paths (``ingest.hdf5_datasets``, ``*`` matches names within one group);
3. the largest numeric dataset with ndim >= 2 whose name is not a mask, flat field or trim table
   (external links are followed, broken ones remembered for the message).

None of them takes reduced data: a dataset whose last two axes are named (NXdata@axes, or its own
old-style ``axes``) as q or angle axes is a stack of I(q) profiles or a cake, not frames. A file
that holds only reduced data is refused as ``reduced_data``.

Then the frames of the file's other detectors are read too (``detector_stacks``): a NeXus file that
records a SAXS and a WAXS detector gives the frames of both, each with its own NXdetector geometry
and pixel mask, and a multi-panel file the frames of every panel.

An Eiger master's ``data_NNNNNN`` links count together (all siblings of that name). Every frame is
``dataset[i, j, ..., :, :]`` over the leading axes. Virtual datasets whose source files are
missing and external links whose targets are missing are refused (``missing_source`` /
``missing_dataset``): h5py would return the fill value for their frames.
"""
from __future__ import annotations

import fnmatch
import os
import re
from typing import Sequence

import numpy as np

from xray_spark.io.errors import UnreadableFile

EIGER_PART = re.compile(r"^data_\d{6}$")
NOT_FRAMES = re.compile(r"mask|flat|trim|gain|pedestal", re.IGNORECASE)
MAX_OBJECTS = 20000


def _text(value) -> str:
    value = np.asarray(value, dtype=object).reshape(-1)[0] if not isinstance(value, (str, bytes)) else value
    return (value.decode(errors="replace") if isinstance(value, bytes) else str(value)).strip()


def _is_frames(obj) -> bool:
    """A numeric dataset whose last two axes are a frame: more than 4 pixels each, so that a colour
    picture (rows, cols, 3 or 4), such as a file's preview thumbnail, is not read as frames."""
    return (hasattr(obj, "shape") and obj.ndim >= 2 and obj.dtype.kind in "iuf"
            and min(obj.shape[-2:]) > 4)


def _nx_class(obj) -> str:
    try:
        return _text(obj.attrs.get("NX_class", ""))
    except Exception:
        return ""


def _signal_of(group):
    """The frame dataset an NXdata group names; None when it names none or its frames are reduced
    data (``_reduced_axes``)."""
    found = _named_signal(group)
    return None if found is None or _reduced_axes(found) else found


def _named_signal(group):
    """The frames-shaped dataset an NXdata group names (``signal`` attribute, or old-style ``signal=1``)."""
    signal = group.attrs.get("signal")
    if signal is not None:
        name = _text(signal)
        obj = group.get(name) if name in group else None
        if obj is not None and _is_frames(obj):
            return obj
    for name in group:
        obj = group.get(name)
        if obj is not None and hasattr(obj, "attrs") and str(obj.attrs.get("signal", "")) in ("1", "b'1'") \
                and _is_frames(obj):
            return obj
    return None


def _reduced_axes(obj) -> list[str]:
    """The names of a dataset's last two axes that are q or angle axes, by its NXdata group's
    ``axes`` attribute or its own old-style ``axes`` ("q:chi"): a stack of I(q) profiles or a cake
    is reduced data, not detector frames. [] for frames (pixel axes, or no axes named)."""
    axes = obj.parent.attrs.get("axes") if _nx_class(obj.parent) == "NXdata" else None
    if axes is None:
        axes = obj.attrs.get("axes")
    if axes is None:
        return []
    names = [_text(a) for a in np.atleast_1d(np.asarray(axes, dtype=object))]
    if len(names) == 1:
        names = re.split(r"[:,\s]+", names[0])
    return [n for n in names[-2:] if REDUCED_AXES.match(n)]


def _default_group(h5):
    """The NXdata group the ``default`` attributes name (file -> entry -> group), or None."""
    entry = h5.get(_text(h5.attrs["default"])) if "default" in h5.attrs else None
    group = entry.get(_text(entry.attrs["default"])) if hasattr(entry, "keys") and "default" in entry.attrs else None
    return group if hasattr(group, "keys") else None


def _nexus_signal(h5):
    """NXdata@signal by the ``default`` chain, then by every NXentry's NXdata groups."""
    group = _default_group(h5)
    if group is not None and (found := _signal_of(group)) is not None:
        return found
    for name in h5:
        entry = h5.get(name)
        if entry is None or not hasattr(entry, "keys") or _nx_class(entry) != "NXentry":
            continue
        for sub in entry:
            group = entry.get(sub)
            if group is not None and hasattr(group, "keys") and _nx_class(group) == "NXdata":
                if (found := _signal_of(group)) is not None:
                    return found
    return None


def _reduced_signal(h5):
    """The dataset the ``default`` chain names when it is reduced data, else None (for the message)."""
    group = _default_group(h5)
    signal = _named_signal(group) if group is not None else None
    return signal if signal is not None and _reduced_axes(signal) else None


def _configured(h5, patterns: Sequence[str]) -> list:
    for pattern in patterns:
        group_path, name = pattern.rsplit("/", 1)
        group = h5.get(group_path or "/")
        if group is None or not hasattr(group, "keys"):
            continue
        names = sorted(n for n in group.keys() if fnmatch.fnmatchcase(n, name))
        if names:
            return [(group, n) for n in names]
    return []


def _largest(h5, broken: list):
    """The largest frame-like dataset (external links followed), or None; broken links into ``broken``."""
    best, seen, stack = None, 0, [h5]
    while stack and seen < MAX_OBJECTS:
        group = stack.pop()
        for name in group:
            seen += 1
            try:
                obj = group[name]
            except (KeyError, OSError):
                broken.append(f"{group.name.rstrip('/')}/{name}")
                continue
            if hasattr(obj, "keys"):
                if obj.name.count("/") < 12:
                    stack.append(obj)
            elif _is_frames(obj) and not NOT_FRAMES.search(name) and not _reduced_axes(obj):
                if best is None or obj.size > best.size:
                    best = obj
    return best


def _resolve(path: str, group, name: str):
    """``group[name]``; a link whose target file is missing is ``missing_dataset``."""
    try:
        return group[name]
    except (KeyError, OSError) as e:
        link = group.get(name, getlink=True)
        target = getattr(link, "filename", None) or getattr(link, "path", "?")
        raise UnreadableFile("missing_dataset", f"{path}: {group.name.rstrip('/')}/{name} links to {target}, "
                             f"which cannot be opened ({e})") from e


def frame_datasets(h5, path: str, patterns: Sequence[str]) -> list:
    """The datasets holding the frames of an open file, in order (see module docstring)."""
    found = _nexus_signal(h5)
    datasets = [found] if found is not None else []
    if not datasets:
        datasets = [_resolve(path, group, n) for group, n in _configured(h5, patterns)]
        datasets = [d for d in datasets if hasattr(d, "shape") and not _reduced_axes(d)]
    broken: list = []
    if not datasets and (found := _largest(h5, broken)) is not None:
        datasets = [found]
    if not datasets:
        if broken:
            raise UnreadableFile("missing_dataset", f"{path}: no frames; the link(s) {', '.join(broken[:5])} "
                                 "point to files or objects that cannot be opened")
        if (reduced := _reduced_signal(h5)) is not None:
            raise UnreadableFile("reduced_data", f"{path}: {reduced.name} is reduced data (axes "
                                 f"{', '.join(_reduced_axes(reduced))}), not detector frames, and the file holds no "
                                 "frames; ingest the raw detector files, or set ingest.hdf5_datasets")
        raise UnreadableFile("missing_dataset", f"{path}: no numeric dataset with 2 or more dimensions (tried "
                             f"NXdata@signal, {list(patterns)} and the largest dataset); set ingest.hdf5_datasets")
    first = datasets[0]
    name = first.name.rsplit("/", 1)[-1]
    if len(datasets) == 1 and EIGER_PART.match(name):          # all data_NNNNNN of an Eiger master
        group = first.parent
        datasets = [_resolve(path, group, n) for n in sorted(group) if EIGER_PART.match(n)]
    for ds in datasets:
        check_sources(ds, path)
    return datasets


def detector_stacks(h5, path: str, patterns: Sequence[str]) -> list[list]:
    """The frame datasets of each detector of an open file, so that no detector's frames are left
    unread: ``frame_datasets`` first, then
    - the ``data`` of every other NXdetector of the file's entries (a SAXS and a WAXS detector
      recorded in one NeXus file) that describes a detector and holds no q or angle axis
      (``_raw_detector``: GDA writes its reduced I(q) profiles as NXdetectors too);
    - outside NeXus, the dataset of the same name in each sibling group of the frames' group (HEXRD
      writes each panel of a multi-panel detector as ``/images/<panel>/images``).
    Another detector's frames must be at least ``MIN_DETECTOR_SIDE`` pixels each way, so that a
    multi-channel analyser's spectra (points x channels) are not read as images."""
    stacks = [frame_datasets(h5, path, patterns)]
    others = [*_sibling_frames(stacks[0]), *(_get(d, "data") for d in _nx_detectors(h5) if _raw_detector(d))]
    for data in others:
        if (data is None or not _is_frames(data) or min(data.shape[-2:]) < MIN_DETECTOR_SIDE
                or any(_same(data, ds) for stack in stacks for ds in stack)):
            continue
        check_sources(data, path)
        stacks.append([data])
    return stacks


def _sibling_frames(datasets: list) -> list:
    """Datasets named as the (one, non-NeXus) frame dataset in the other groups beside its group."""
    if len(datasets) != 1 or _nx_class(datasets[0].parent) or datasets[0].parent.name == "/":
        return []
    group, name = datasets[0].parent, datasets[0].name.rsplit("/", 1)[-1]
    siblings = (_get(group.parent, n) for n in sorted(group.parent))
    return [_get(g, name) for g in siblings if g is not None and hasattr(g, "keys") and g != group]


MIN_DETECTOR_SIDE = 32
REDUCED_AXES = re.compile(r"^(q[xyz]?|q_.*|chi|azimuth(al)?|two_?theta|2theta|radial|angle)$", re.IGNORECASE)
DETECTOR_FIELDS = {"x_pixel_size", "y_pixel_size", "pixel_mask", "distance", "detector_distance", "beam_center_x",
                   "description", "local_name", "detector_number", "count_time", "frame_time", "saturation_value",
                   "sensor_material", "detectorSpecific"}


def _raw_detector(group) -> bool:
    """An NXdetector of raw frames: it names a detector property (NeXus NXdetector fields) and holds
    no dataset named as a q or angle axis, nor an old-style NeXus axis (reduced data)."""
    if not DETECTOR_FIELDS & set(group):
        return False
    for name in group:
        obj = _get(group, name)
        if hasattr(obj, "shape") and (REDUCED_AXES.match(name) or "axis" in obj.attrs or "primary" in obj.attrs):
            return False
    return True


def _get(group, name: str):
    """``group[name]``, or None when it is absent or a link that cannot be followed."""
    try:
        return group[name] if name in group else None
    except (KeyError, OSError):
        return None


def _same(a, b) -> bool:
    """The same frames: one HDF5 object however reached (hard, soft or external link), or a copy
    (same shape, dtype and first frame, as when a writer copies the detector's data into NXdata)."""
    if a == b or (a.name == b.name and os.path.realpath(a.file.filename) == os.path.realpath(b.file.filename)):
        return True
    first = (0,) * (a.ndim - 2)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a[first], b[first])


def _nx_detectors(h5) -> list:
    """Every NXdetector of the instruments (NXinstrument, or a group named ``instrument``) of the
    file's top-level groups, in name order."""
    def groups(parent):
        return [g for g in (_get(parent, n) for n in sorted(parent)) if g is not None and hasattr(g, "keys")]

    return [detector for entry in groups(h5) for instrument in groups(entry)
            if _nx_class(instrument) == "NXinstrument" or instrument.name.rsplit("/", 1)[-1] == "instrument"
            for detector in groups(instrument) if _nx_class(detector) == "NXdetector"]


def check_sources(ds, path: str) -> None:
    """Refuse a virtual dataset with a missing source file (its frames would read as the fill value)."""
    if not getattr(ds, "is_virtual", False):
        return
    here = os.path.dirname(os.path.abspath(ds.file.filename)) if isinstance(ds.file.filename, str) else ""
    missing = set()
    for name, dset_name in sorted({(s.file_name, s.dset_name) for s in ds.virtual_sources()}):
        if name == ".":                       # a dataset of this file, maybe an external link
            try:
                ds.file[dset_name]
            except (KeyError, OSError):
                missing.add(f"{dset_name} (in this file)")
            continue
        candidates = [name] if os.path.isabs(name) else []
        candidates += [os.path.join(here, name), os.path.join(here, os.path.basename(name))]
        if not any(os.path.isfile(c) for c in candidates):
            missing.add(name)
    if missing:
        raise UnreadableFile("missing_source", f"{path}: dataset {ds.name} is virtual and its source file(s) "
                             f"{', '.join(sorted(missing)[:3])} are missing; its frames would read as fill values")


LENGTH_UNITS = {"m": 1.0, "meter": 1.0, "metre": 1.0, "meters": 1.0, "mm": 1e-3, "millimeter": 1e-3,
                "millimetre": 1e-3, "um": 1e-6, "µm": 1e-6, "micron": 1e-6, "microns": 1e-6, "micrometer": 1e-6,
                "micrometre": 1e-6, "cm": 1e-2, "nm": 1e-9, "nanometer": 1e-9, "nanometre": 1e-9, "a": 1e-10,
                "angstrom": 1e-10, "angstroms": 1e-10, "å": 1e-10}


def _value(group, name: str):
    """(value, unit or None) of a scalar field, or None."""
    obj = group.get(name) if group is not None and name in group else None
    if obj is None or not hasattr(obj, "shape"):
        return None
    try:
        value = float(np.asarray(obj[()]).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return None
    unit = obj.attrs.get("units")
    return value, (_text(unit).lower() if unit is not None else None)


def _metres(field, unitless_scale: float) -> float | None:
    if field is None:
        return None
    value, unit = field
    if unit is None:
        return value * unitless_scale
    scale = LENGTH_UNITS.get(unit)
    return value * scale if scale else None


def detector_group(h5, datasets: list):
    """The NXdetector of the frames: their parent when it is one, else the entry's instrument/detector."""
    parent = datasets[0].parent if datasets else None
    if parent is not None and _nx_class(parent) == "NXdetector" and parent.file.filename == h5.filename:
        return parent
    if "/entry/instrument/detector" in h5:
        return h5["/entry/instrument/detector"]
    # any entry's NXdetector with a pixel size (GDA: /entry1/instrument/Pilatus2M)
    return next((group for group in _nx_detectors(h5) if "x_pixel_size" in group), None)


def nexus_header(h5, datasets: list) -> dict:
    """Geometry from the NXdetector / NXbeam / NXmonochromator fields (units honoured; unitless
    lengths read as mm when they are too large to be metres, as EPICS areaDetector writes them)."""
    out: dict = {}
    det = detector_group(h5, datasets)
    if det is None:
        return out
    pixel = _value(det, "x_pixel_size")
    pixel_mm = pixel is not None and pixel[1] is None and pixel[0] > 1e-3
    for key, name in (("pixel2_m", "x_pixel_size"), ("pixel1_m", "y_pixel_size")):
        field = _value(det, name)
        out[key] = _metres(field, 1e-3 if field and field[1] is None and field[0] > 1e-3 else 1.0)
    distance = _value(det, "detector_distance") or _value(det, "distance")
    out["distance_m"] = _metres(distance, 1e-3 if distance and distance[1] is None and distance[0] > 20 else 1.0)
    for key, axis in (("beam_center_col_px", "x"), ("beam_center_row_px", "y")):
        in_pixels = _value(det, f"beam_center_{axis}_pixel")
        field = _value(det, f"beam_center_{axis}")
        size = out["pixel2_m" if axis == "x" else "pixel1_m"]
        if in_pixels is not None:
            out[key] = in_pixels[0]
        elif field is not None and field[1] in (None, "pixel", "pixels", "px"):
            out[key] = field[0] / pixel[0] if field[1] is None and pixel_mm else field[0]
        elif field is not None and field[1] in LENGTH_UNITS and size:
            out[key] = field[0] * LENGTH_UNITS[field[1]] / size
    entry = det.parent.parent if det.parent is not None else None
    for path in ("instrument/beam/incident_wavelength", "instrument/monochromator/wavelength"):
        field = _value(entry, path) if entry is not None else None
        if field is not None:
            out["wavelength_m"] = _metres(field, 1e-10)
            break
    for name in ("description", "local_name"):
        if name in det and hasattr(det[name], "shape"):
            try:
                out["detector"] = _text(det[name][()])
            except Exception:
                pass
            break
    return {k: v for k, v in out.items() if v is not None and v != "" and np.all(np.isfinite(v) if not isinstance(v, str) else True)}


def pixel_mask(h5, datasets: list) -> np.ndarray | None:
    """The NeXus ``pixel_mask`` of the frames' detector (non-zero = bad), as a 2-D bool array."""
    det = detector_group(h5, datasets)
    for group, name in ((det, "pixel_mask"), (det, "detectorSpecific/pixel_mask")):
        if group is not None and name in group:
            mask = np.asarray(group[name][()]) != 0
            while mask.ndim > 2 and mask.shape[0] == 1:      # some writers (Lambda) store a (1, rows, cols) stack
                mask = mask[0]
            return mask if mask.ndim == 2 else None
    return None
