"""Typed building of configuration dataclasses from plain mappings (YAML, --set), with errors
that name the key, the value and what is allowed.

The project's configuration (sections, defaults, versions) is ``xray_spark.config``; this module
is the machinery under it: field declaration with limits, type checking of nested mappings
against dataclass annotations, environment expansion, overrides.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import field
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A configuration that cannot be used: names the key, the value and what is allowed."""


def option(default, help: str, **limits):
    """A field with its documentation and optional limits (min, max, gt: greater than, finite, choices)."""
    factory = (lambda: type(default)(default)) if isinstance(default, (list, dict)) else None
    meta = {"help": help, **limits}
    if factory:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, key: str) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of ``value``; an unset VAR without default fails."""
    if isinstance(value, str):
        def sub(m):
            if m.group(1) in os.environ:
                return os.environ[m.group(1)]
            if m.group(2) is not None:
                return m.group(2)
            raise ConfigError(f"{key} = {value!r}: environment variable {m.group(1)} is not set "
                              f"(give a default with ${{{m.group(1)}:-default}})")
        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_env(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, key) for v in value]
    return value


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key} = {value!r}: expected {_type_name(tp)}")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{key} = {value!r}: allowed values are {', '.join(map(repr, args))}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} = {value!r}: expected a list of {_type_name(args[0])}")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} = {value!r}: expected a mapping of {_type_name(args[1])}")
        return {str(k): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} = {value!r}: expected a section (mapping) with keys "
                              f"{', '.join(f.name for f in dataclasses.fields(tp))}")
        return build(tp, value, key)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if tp in (int, str, bool) and type(value) is tp:
        return value
    raise ConfigError(f"{key} = {value!r}: expected {_type_name(tp)}, got {type(value).__name__}")


def _check_limits(f: dataclasses.Field, value: Any, key: str) -> None:
    meta = f.metadata
    if value is None:  # an optional key left unset has no limits to check
        return
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{key} = {value!r}: allowed values are {', '.join(map(repr, meta['choices']))}")
    if meta.get("finite") and not math.isfinite(value):
        raise ConfigError(f"{key} = {value!r}: must be a finite number")
    if "gt" in meta and not value > meta["gt"]:
        raise ConfigError(f"{key} = {value!r}: must be > {meta['gt']}")
    if "min" in meta and value < meta["min"]:
        raise ConfigError(f"{key} = {value!r}: must be >= {meta['min']}")
    if "max" in meta and value > meta["max"]:
        raise ConfigError(f"{key} = {value!r}: must be <= {meta['max']}")


def build(cls, data: dict, prefix: str = ""):
    """An instance of the dataclass ``cls`` from ``data``, type-checked; missing keys keep their defaults."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"section '{prefix}'" if prefix else "top level"
        raise ConfigError(f"unknown key{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(repr(f'{prefix}.{k}' if prefix else k) for k in unknown)}; "
                          f"allowed in {where}: {', '.join(fields)}")
    values = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        value = _coerce(value, hints[name], key)
        _check_limits(fields[name], value, key)
        values[name] = value
    default = cls()
    for name in fields:
        if name not in values:
            values[name] = getattr(default, name)
    return cls(**values)


def merge(base: dict, update: dict) -> dict:
    """``base`` updated by ``update``, section by section (nested mappings merge, values replace)."""
    out = dict(base)
    for k, v in update.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def to_dict(config) -> dict:
    """Plain nested mapping of a configuration (for manifests, provenance and ``config show``)."""
    return dataclasses.asdict(config)


def parse_override(text: str) -> dict:
    """``section.key=value`` to a nested mapping; the value is read as YAML (``3``, ``true``, ``[a, b]``)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    dotted, raw = text.split("=", 1)
    parts = dotted.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
        value = raw.strip()  # YAML 1.1 reads yes/no/on/off as booleans; here they are words
    nested: dict = value
    for part in reversed(parts):
        nested = {part: nested}
    return nested


def migrated(data: dict, version: int, current: int, migrations: dict, source: str, error=ConfigError) -> dict:
    """``data`` of schema ``version`` brought up to ``current`` by ``migrations`` (version -> a function
    to version + 1), one step at a time; shared by conf/ files and run sidecars."""
    while version < current:
        if version not in migrations:
            raise error(f"{source}: 'version' = {version}: no migration from it (known: {sorted(migrations)})")
        data = migrations[version](data)
        version += 1
        data["version"] = version
    return data
