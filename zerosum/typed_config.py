"""Typed dataclass settings from nested mappings (YAML): strict loading, one-line errors.

A setting is a dataclass field made with `fld`: its default, its help text and, where a value
can be out of range, its `Bound`, declared once beside the field. `load_dataclass` builds any
such dataclass (whose fields may be dataclass sections) from a mapping and refuses, in one
line naming the field and what is allowed: an unknown key, a missing required field, a value
of the wrong type (a bool is not a number), a float that is not finite (nan, inf, `1e400`),
a value outside its bound. The training config, the arena's and the API players' share it;
the command line derives its flags' checks from the same bounds.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import dacite
import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad configuration value; the message is one line."""


def check_combination(section: Any, where: str, build: Callable[[], object]) -> None:
    """Build what a section's fields make together (its `Prompting`, say). Its ValueError,
    worded "FIELD = VALUE ..." as the project words them, becomes a ConfigError naming the
    config field `where` + FIELD as the other config errors do (the section itself when
    FIELD is not one of its fields)."""
    try:
        build()
    except ValueError as err:
        field, said, rest = str(err).partition(" = ")
        if said and field in {f.name for f in dataclasses.fields(section)}:
            raise ConfigError(f"config field '{where}{field}' = {rest}") from None
        what = f"config section {where.rstrip('.')!r}" if where else "the config"
        raise ConfigError(f"{what}: {err}") from None


def load_yaml(path: str | Path, what: str) -> Any:
    """The YAML document in the file `path` (`what` names it in errors: "config file");
    a missing file or invalid YAML is a one-line `ConfigError` with the line and column."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {str(p)!r} does not exist")
    try:
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} {str(p)!r} is not valid YAML: {yaml_problem(err)}") from None


def yaml_problem(err: yaml.YAMLError) -> str:
    """Where and what (`line 3, column 7: mapping values are not allowed here`)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


@dataclass(frozen=True)
class Bound:
    """What values a setting allows: a predicate and its description ("an integer >= 1")."""

    ok: Callable[[Any], bool]
    allowed: str

    def check(self, name: str, value: Any) -> None:
        """Raise `ValueError("NAME = value is invalid; allowed: ...")` unless allowed."""
        if not self.ok(value):
            raise ValueError(f"{name} = {value!r} is invalid; allowed: {self.allowed}")


def _interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def ints(lo: int, hi: int | None = None, *, hi_open: bool = False, hi_text: str = "") -> Bound:
    """Integers from `lo` (to `hi`; `hi_text` names it, e.g. "2**32")."""
    text = _interval(lo, hi, False, hi_open)
    if hi_text:
        text = text.replace(f"{hi:g}", hi_text)
    return Bound(
        lambda v: v >= lo and (hi is None or (v < hi if hi_open else v <= hi)),
        f"an integer {text}",
    )


def numbers(
    lo: float,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    note: str = "",
) -> Bound:
    """Finite numbers from `lo` (to `hi`), either end open; `note` follows the range."""

    def ok(v: Any) -> bool:
        if not math.isfinite(v):
            return False
        above = v > lo if lo_open else v >= lo
        below = hi is None or (v < hi if hi_open else v <= hi)
        return above and below

    text = f"a number {_interval(lo, hi, lo_open, hi_open)}"
    return Bound(ok, f"{text} {note}" if note else text)


POSITIVE = ints(1)  # a count: games, turns, steps, tokens


def check_counts(owner: str, **counts: object) -> None:
    """Raise `ValueError("OWNER NAME = value is invalid; allowed: an integer >= 1")` for the
    first of `counts` that is not a positive integer (a bool is not one)."""
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{owner} {name} = {value!r} is invalid; allowed: {POSITIVE.allowed}")
        POSITIVE.check(f"{owner} {name}", value)


NON_NEGATIVE = ints(0)
SEED = ints(0, 2**32, hi_open=True, hi_text="2**32")
PROBABILITY = numbers(0, 1, lo_open=True)  # top-p, a learning rate's share: (0, 1]


def check_choice(what: str, value: object, allowed: tuple[str, ...]) -> None:
    """Raise `ValueError("unknown WHAT 'value'; valid: a, b")` unless `value` is allowed
    (the runtime check of an API that takes one of these choices)."""
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(allowed)}")


def fld(
    default: Any, help: str, bound: Bound | None = None, flag: str | None = None, **kw: Any
) -> Any:
    """A setting with help text and, optionally, its `bound` (None, for an optional setting,
    is always allowed); a list or dict default is copied for each instance, and
    `dataclasses.MISSING` makes the field required. `flag` names its command-line flag where
    that is not `--field-name` (a bool that is true by default: the flag turns it off)."""
    metadata = {"help": help, "bound": bound, "flag": flag}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata, **kw)
    return field(default=default, metadata=metadata, **kw)


def known_keys(cls: type, prefix: str = "") -> list[str]:
    """Every field's dotted path, sections expanded."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys += known_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def load_dataclass(
    cls: type[T], data: Any, where: str = "", renamed: Mapping[str, str] | None = None
) -> T:
    """A `cls` (a dataclass, whose fields may be dataclass sections) from nested mappings.

    Strict: an unknown key (or one of `renamed`, whose message says what replaced it), a
    missing required field, a value of the wrong type (a bool is not a number), a float that
    is not finite or a value outside its field's bound is a `ConfigError` with one line
    naming the field (`where` + its path, e.g. "players[1]." + "top_p") and what is allowed.
    """
    if not isinstance(data, dict):
        what = f"config field {where.rstrip('.')!r}" if where else "the config"
        raise ConfigError(f"{what} must be a mapping, got {data!r}")
    _check_keys(data, cls, where, cls, renamed or {})
    obj = _typed(cls, data, where)
    _check_values(obj, where)
    return obj


def _check_keys(data: dict, cls: type, prefix: str, root: type, renamed: Mapping[str, str]) -> None:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if prefix + str(key) in renamed:
            raise ConfigError(
                f"config field {prefix + str(key)!r} was replaced; write "
                f"{renamed[prefix + str(key)]}"
            )
        if key not in names:
            valid = ", ".join(known_keys(root))
            raise ConfigError(f"unknown config field {prefix + str(key)!r}; valid fields: {valid}")
        if dataclasses.is_dataclass(hints[key]):
            if not isinstance(value, dict):
                raise ConfigError(
                    f"config section {prefix + key!r} must be a mapping, got {value!r}"
                )
            _check_keys(value, hints[key], f"{prefix}{key}.", root, renamed)


def _to_float(value: Any) -> Any:
    """Accept ints and numeric strings for float fields (YAML reads `1e-6` as a string)."""
    if isinstance(value, bool):
        return repr(value)  # a string, so the type check rejects it
    if isinstance(value, int):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _to_int(value: Any) -> Any:
    """A bool is not an int here (`run.steps: true` is a mistake, not 1 step)."""
    return repr(value) if isinstance(value, bool) else value


def _lookup(data: Any, path: str, default: Any) -> Any:
    """The value at dotted `path` of the raw `data`, or `default`."""
    for part in path.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return default
        data = data[part]
    return data


def _typed(cls: type[T], data: dict, where: str) -> T:
    hooks = {float: _to_float, int: _to_int}
    try:
        return dacite.from_dict(
            cls, data, config=dacite.Config(strict=True, check_types=True, type_hooks=hooks)
        )
    except dacite.MissingValueError as err:
        raise ConfigError(f"config field {where + err.field_path!r} is required") from None
    except dacite.WrongTypeError as err:
        value = _lookup(data, err.field_path, err.value)  # dacite may hold a generator
        raise ConfigError(
            f"config field {where + err.field_path!r} = {value!r} is invalid; allowed: {describe_type(err.field_type)}"
        ) from None
    except dacite.DaciteError as err:
        at = f" at {where.rstrip('.')!r}" if where else ""
        raise ConfigError(f"bad config{at}: {err}") from None


def _values(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any, Any, Bound | None]]:
    """(field path, type, value, bound) of every setting, sections expanded."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        key, value, hint = prefix + f.name, getattr(obj, f.name), hints[f.name]
        if dataclasses.is_dataclass(hint):
            yield from _values(value, f"{key}.")
        else:
            yield key, hint, value, f.metadata.get("bound")


def _check_values(obj: Any, where: str) -> None:
    """Finite floats (mapping values included), then every field's bound."""
    checked = list(_values(obj))
    for key, hint, value, _ in checked:
        floats: list[tuple[str, Any]] = []
        if hint is float:
            floats = [("", value)]
        elif typing.get_origin(hint) is dict and typing.get_args(hint)[1] is float:
            floats = [(f" value of {k!r}", v) for k, v in value.items()]
        for entry, v in floats:
            if not math.isfinite(v):  # nan fails no `v > 0` check; inf crashes a run later
                raise ConfigError(
                    f"config field {where + key!r}{entry} = {v!r} is invalid; allowed: a finite number"
                )
    for key, _, value, bound in checked:
        if bound is not None and value is not None and not bound.ok(value):
            raise ConfigError(
                f"config field {where + key!r} = {value!r} is invalid; allowed: {bound.allowed}"
            )


def declared_bounds(obj: Any) -> list[tuple[str, Any, Bound]]:
    """(field path, value, bound) of every field of `obj` that declares a bound."""
    return [(key, value, bound) for key, _, value, bound in _values(obj) if bound is not None]


def check_fields(obj: Any) -> None:
    """Raise a `ValueError` naming the first field of `obj` (settings built in code rather
    than loaded) whose value is outside its bound, or a bool where a number belongs."""
    for key, _, value, bound in _values(obj):
        if bound is None or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key} = {value!r} is invalid; allowed: {bound.allowed}")
        bound.check(key, value)


def describe_type(tp: Any) -> str:
    """A type as error messages and the configuration reference spell it."""
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(describe_type(arg) for arg in typing.get_args(tp))
    if tp is bool:
        return "true or false"
    if tp is type(None):
        return "null"  # as YAML writes it
    return getattr(tp, "__name__", str(tp))


def settings_help(cls: type) -> str:
    """Every field of `cls` (sections expanded) with its default and help text."""
    lines = []

    def walk(c: type, prefix: str) -> None:
        hints = typing.get_type_hints(c)
        for f in dataclasses.fields(c):
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], f"{prefix}{f.name}.")
            else:
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
                lines.append(f"{prefix}{f.name} = {default!r}  # {f.metadata.get('help', '')}")

    walk(cls, "")
    return "\n".join(lines)
