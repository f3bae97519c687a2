"""Experiment configs: frozen dataclasses whose fields carry help text and bounds.

A config class is a ``@dataclasses.dataclass(frozen=True)`` whose fields are
declared with :func:`setting`. :func:`resolve` applies ``key=value`` overrides
from the command line, converting each value to the field's declared type and
checking its bounds, so a typo fails with one clear line instead of a
traceback deep inside training.

Example:
    >>> @dataclasses.dataclass(frozen=True)
    ... class Config:
    ...     lr: float = setting(0.1, "learning rate", gt=0)
    >>> resolve(Config, ["lr=0.5"]).lr
    0.5
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from typing import Any, Literal

from jaxdl.errors import JaxdlError

_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def setting(
    default: Any,
    help: str,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    applies_if: tuple[str, Any] | None = None,
) -> Any:
    """Declares a config field with its help text and optional numeric bounds.

    ``applies_if=("recipe", "tutorial")`` marks a setting that only that
    recipe reads: setting it under another recipe is refused, not ignored.
    """
    bounds = {k: v for k, v in dict(gt=gt, ge=ge, lt=lt, le=le).items() if v is not None}
    return dataclasses.field(default=default, metadata={"help": help, "bounds": bounds, "applies_if": applies_if})


def _choices(tp: Any) -> tuple | None:
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else None


def describe_type(tp: Any) -> str:
    """A short human name for a field type: 'int', 'float', 'one of a|b'."""
    choices = _choices(tp)
    if choices is not None:
        return "one of " + "|".join(str(c) for c in choices)
    return getattr(tp, "__name__", str(tp))


def parse_value(name: str, tp: Any, text: str) -> Any:
    """Converts command-line text to the field type ``tp``; raises JaxdlError."""
    choices = _choices(tp)
    if choices is not None:
        for choice in choices:
            if text == str(choice):
                return choice
        raise JaxdlError(f"setting {name}: expected {describe_type(tp)}, got {text!r}")
    try:
        if tp is bool:
            lowered = text.lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if tp is int:
            return int(text)
        if tp is float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
        if tp is str:
            return text
    except ValueError:
        raise JaxdlError(f"setting {name}: expected {describe_type(tp)}, got {text!r}") from None
    raise TypeError(f"config field {name} has unsupported type {tp!r}")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def check(config: Any) -> None:
    """Checks every field's bounds (and the class's own ``check`` if it has one)."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        for op, bound in field.metadata.get("bounds", {}).items():
            ok = {
                "gt": value > bound,
                "ge": value >= bound,
                "lt": value < bound,
                "le": value <= bound,
            }[op]
            if not ok:
                raise JaxdlError(f"setting {field.name} must be {_BOUNDS[op]} {bound}, got {value}")
    extra_check = getattr(config, "check", None)
    if extra_check is not None:
        extra_check()


def resolve(cls: type, overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """Builds ``cls`` from its defaults and ``key=value`` overrides, then checks it.

    Args:
      cls: a frozen dataclass declared with :func:`setting` fields.
      overrides: strings ``"key=value"``; later ones win.

    Returns:
      The checked config instance.

    Raises:
      JaxdlError: an unknown key, a malformed pair, a value of the wrong type or
        out of its bounds.
    """
    types = _field_types(cls)
    values: dict[str, Any] = {}
    for pair in overrides:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise JaxdlError(f"--set expects key=value, got {pair!r}")
        if key not in types:
            close = difflib.get_close_matches(key, types, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise JaxdlError(f"unknown setting {key!r}; {hint}known settings: {', '.join(types)}")
        values[key] = parse_value(key, types[key], text.strip())
    config = cls(**values)
    check(config)
    _check_applies(config, values)
    return config


def parse_sweep(text: str) -> dict[str, list[float]]:
    """``"lr=0.001,0.003;weight_decay=0,0.05"`` -> ``{"lr": [0.001, 0.003], "weight_decay": [0.0, 0.05]}``."""
    grid: dict[str, list[float]] = {}
    for part in filter(None, text.split(";")):
        key, sep, values = part.partition("=")
        try:
            grid[key.strip()] = [float(v) for v in values.split(",")]
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise JaxdlError(f"setting sweep: expected KEY=A,B;KEY=C, got {text!r}")
    return grid


def format_sweep(grid: dict[str, list[Any]]) -> str:
    """The inverse of :func:`parse_sweep`."""
    return ";".join(f"{k}={','.join(str(v) for v in values)}" for k, values in grid.items())


def split_grid(cls: type, overrides: list[str] | tuple[str, ...]) -> tuple[list[str], dict[str, list[str]]]:
    """Separates grid settings (``key=a,b,c`` for a number or choice) from plain ones.

    Every value of a grid is checked as a plain setting would be (type, bounds,
    recipe), so a bad grid fails here, before anything runs.

    Returns:
      ``(plain overrides, {key: [value text, ...]})``, keys in the order given.
    """
    types = _field_types(cls)
    plain: list[str] = []
    grid: dict[str, list[str]] = {}
    for pair in overrides:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if sep and key in types and types[key] is not str and "," in text:
            values = [v.strip() for v in text.split(",")]
            if "" in values:
                raise JaxdlError(f"setting {key}: empty value in the grid {text!r}; write {key}=A,B,C")
            if len(set(values)) < len(values):
                raise JaxdlError(f"setting {key}: the grid {text!r} repeats a value")
            grid[key] = values
        else:
            plain.append(pair)
    resolve(cls, plain)  # an unknown or bad plain setting
    for key, values in grid.items():
        for value in values:
            resolve(cls, [*plain, f"{key}={value}"])  # the same checks as one run's
    return plain, grid


def _check_applies(config: Any, given: dict[str, Any]) -> None:
    """A setting given for a recipe (or mode) the run does not use is an error, not a no-op."""
    for field in dataclasses.fields(config):
        condition = field.metadata.get("applies_if")
        if field.name in given and condition is not None:
            name, wanted = condition
            if getattr(config, name) != wanted:
                raise JaxdlError(
                    f"setting {field.name} applies only with {name}={wanted}; this run uses "
                    f"{name}={getattr(config, name)}"
                )


def to_dict(config: Any) -> dict[str, Any]:
    """The config as a JSON-ready dict."""
    return dataclasses.asdict(config)


def help_lines(cls: type) -> list[str]:
    """One line per field: name, type, default and help text."""
    lines = []
    for field in dataclasses.fields(cls):
        tp = _field_types(cls)[field.name]
        lines.append(
            f"  {field.name} ({describe_type(tp)}, default {field.default!r}): {field.metadata.get('help', '')}"
        )
    return lines
