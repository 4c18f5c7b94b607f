"""Typed settings: a params mapping becomes a frozen dataclass, or fails naming the bad key.

The library never reads params.yaml; stage entry points read their own section and call `from_mapping`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A params section is missing a key, has an unknown key, or a value of the wrong type or range."""


def bounded(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
            lt: float | None = None) -> Any:
    """A numeric setting's default and the range its values must lie in (each number of a tuple, too), checked
    by `from_mapping`: `batch_size: int = bounded(8, ge=1)`."""
    return dataclasses.field(default=default, metadata={"range": (ge, gt, le, lt)})


def checked(default: Any, valid: typing.Callable[[Any], bool], description: str) -> Any:
    """A setting's default and a test its values must pass, with what the test wants in words."""
    return dataclasses.field(default=default, metadata={"valid": (valid, description)})


def _out_of_range(value: Any, bounds: tuple) -> str | None:
    ge, gt, le, lt = bounds
    for v in value if isinstance(value, tuple) else (value,):
        if ((ge is not None and v < ge) or (gt is not None and v <= gt) or (le is not None and v > le)
                or (lt is not None and v >= lt)):
            parts = [f">= {ge:g}" if ge is not None else "", f"> {gt:g}" if gt is not None else "",
                     f"<= {le:g}" if le is not None else "", f"< {lt:g}" if lt is not None else ""]
            return f"{value!r} is out of range: must be {' and '.join(p for p in parts if p)}"
    return None


def from_mapping(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass `cls` from `data`, checking keys and types recursively.

    `where` names the section (e.g. "crop") so errors read "crop.second_pass.thresholds: expected ...".
    Fields with defaults may be omitted; unknown keys always fail, so a typo never silently uses a default.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(fields)}")
    values = {}
    for name, field in fields.items():
        key = f"{where}.{name}"
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key}: missing")
            continue
        values[name] = _coerce(hints[name], data[name], key)
        if "range" in field.metadata and values[name] is not None:
            problem = _out_of_range(values[name], field.metadata["range"])
            if problem:
                raise ConfigError(f"{key}: {problem}")
        if "valid" in field.metadata:
            valid, description = field.metadata["valid"]
            if not valid(values[name]):
                raise ConfigError(f"{key}: {values[name]!r} is not {description}")
    return cls(**values)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, key)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {list(args)}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} matches none of {args}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if hint is float:
        # YAML reads `1` as int; an int is a fine float, a bool is not.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint in (str, bool):
        if not isinstance(value, hint):
            raise ConfigError(f"{key}: expected {hint.__name__}, got {value!r}")
        return value
    raise TypeError(f"{key}: unsupported settings type {hint!r}")  # a programming error, not a user one
