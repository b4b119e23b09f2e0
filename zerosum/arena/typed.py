"""Strict loading of small typed dataclasses from YAML mappings, with one-line errors.

Each field may carry `check` metadata, a (predicate, what is allowed) pair; `load_typed`
rejects unknown keys, wrong types (a bool is not a number), non-finite floats and values the
predicate refuses, naming the field as `where` + its name.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, TypeVar

import dacite

from zerosum.config import ConfigError  # one error type for every config: the CLI prints it

T = TypeVar("T")


def fld(default: Any, help: str, check: tuple[Callable[[Any], bool], str] | None = None) -> Any:
    """A dataclass field with help text and an optional (predicate, allowed) check."""
    meta = {"help": help, "check": check}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


POSITIVE_INT = (lambda v: v >= 1, "an integer >= 1")
NON_NEGATIVE_INT = (lambda v: v >= 0, "an integer >= 0")
POSITIVE = (lambda v: v > 0, "a number > 0")
NON_NEGATIVE = (lambda v: v >= 0, "a number >= 0")
UNIT_INTERVAL = (lambda v: 0 < v <= 1, "a number in (0, 1]")


def _to_float(value: Any) -> Any:
    if isinstance(value, bool):
        return repr(value)  # a string, so the type check rejects it
    if isinstance(value, (int, str)):
        try:
            return float(value)  # YAML reads `1e-3` as a string
        except ValueError:
            return value
    return value


def _to_int(value: Any) -> Any:
    return repr(value) if isinstance(value, bool) else value


def load_typed(cls: type[T], data: Any, where: str) -> T:
    """`cls` from the mapping `data`; every problem is a `ConfigError` naming the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"config field {where.rstrip('.')!r} must be a mapping, got {data!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            raise ConfigError(
                f"unknown config field {where + str(key)!r}; valid fields: {', '.join(names)}"
            )
    hooks = {float: _to_float, int: _to_int}
    try:
        obj = dacite.from_dict(cls, data, dacite.Config(strict=True, type_hooks=hooks))
    except dacite.MissingValueError as err:
        raise ConfigError(f"config field {where + err.field_path!r} is required") from None
    except dacite.WrongTypeError as err:
        raise ConfigError(
            f"config field {where + err.field_path!r} = {err.value!r} is invalid; "
            f"allowed: {describe(err.field_type)}"
        ) from None
    except dacite.DaciteError as err:
        raise ConfigError(f"bad config at {where.rstrip('.')!r}: {err}") from None
    check_values(obj, where)
    return obj


def check_values(obj: Any, where: str) -> None:
    """Non-finite floats and values outside a field's `check` are one-line errors."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(
                f"config field {where + f.name!r} = {value!r} is invalid; allowed: a finite number"
            )
        check = f.metadata.get("check")
        if check and value is not None and not check[0](value):
            raise ConfigError(
                f"config field {where + f.name!r} = {value!r} is invalid; allowed: {check[1]}"
            )


def describe(tp: Any) -> str:
    import types
    import typing

    if typing.get_origin(tp) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(tp))
    if tp is bool:
        return "true or false"
    names = {type(None): "null", int: "an integer", float: "a number", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))
