"""Experiment configs: frozen dataclasses whose fields carry help text and bounds.

A config class is a ``@dataclasses.dataclass(frozen=True)`` whose fields are
declared with :func:`setting`. :func:`resolve` applies ``key=value`` overrides
from the command line, converting each value to the field's declared type and
checking its bounds, so a typo fails with one clear line instead of a
traceback deep inside training. A field typed ``tuple[int, ...]`` (or of
floats, strings or choices) takes comma-separated values, ``sizes=1,10,100``;
the settings that an experiment trains side by side in one vmapped program
are a :class:`Sweep`, written by the runner, never given as text.

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
import itertools
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

    Args:
      default: the field's default value (a tuple for a ``tuple[T, ...]`` field).
      help: one line for ``--help-config``: what the setting does, with its unit.
      gt: a bound the value (each item of a tuple) must be greater than.
      ge: a bound the value must be greater than or equal to.
      lt: a bound the value must be less than.
      le: a bound the value must be less than or equal to.
      applies_if: ``(other field, value)``: the setting may only be given when that field
        has that value.

    Returns:
      A ``dataclasses.field`` whose metadata holds ``help``, ``bounds`` and ``applies_if``.
    """
    bounds = {k: v for k, v in dict(gt=gt, ge=ge, lt=lt, le=le).items() if v is not None}
    return dataclasses.field(default=default, metadata={"help": help, "bounds": bounds, "applies_if": applies_if})


@dataclasses.dataclass(frozen=True)
class Sweep:
    """Settings trained side by side in one vmapped program: each key's values, keys in the order given.

    Every combination of the values is a replica (times the seeds); the runner
    builds one from a grid such as ``--set lr=0.001,0.003`` on a setting the
    experiment can vary inside one program.

    Example:
        >>> sweep = Sweep.of({"lr": [0.001, 0.003], "weight_decay": [0, 0.05]})
        >>> len(sweep.combinations()), sweep.combinations()[1]
        (4, {'lr': 0.001, 'weight_decay': 0.05})
        >>> str(sweep)
        'lr=0.001,0.003 x weight_decay=0,0.05'

    Attributes:
      values: ``((key, (value, ...)), ...)``, in the order given; empty: no sweep.
    """

    values: tuple[tuple[str, tuple[float, ...]], ...] = ()

    @classmethod
    def of(cls, grid: Any) -> Sweep:
        """A sweep from ``{key: [value, ...]}`` (numbers or their text), as JSON holds it.

        Args:
          grid: a mapping from setting name to its values; a ``Sweep`` is returned as is.

        Returns:
          The sweep, values as floats.

        Raises:
          JaxdlError: a value that is not a number.
        """
        if isinstance(grid, Sweep):
            return grid
        try:
            return cls(tuple((str(k), tuple(float(v) for v in values)) for k, values in dict(grid).items()))
        except (TypeError, ValueError):
            raise JaxdlError(f"a sweep holds numbers per setting, got {grid!r}") from None

    def __bool__(self) -> bool:
        return bool(self.values)

    def keys(self) -> list[str]:
        """The swept settings' names, in the order given.

        Returns:
          The keys, a new list.
        """
        return [k for k, _ in self.values]

    def as_dict(self) -> dict[str, list[float]]:
        """``{key: [value, ...]}``: the JSON form, which :meth:`of` reads back.

        Returns:
          A new dict of lists of floats, keys in the order given.
        """
        return {k: list(values) for k, values in self.values}

    def combinations(self) -> list[dict[str, float]]:
        """Every combination of the values, the last key varying fastest (one replica group each).

        Returns:
          ``[{key: value, ...}, ...]``, as many as the product of each key's number of
          values; ``[{}]`` for an empty sweep.
        """
        names = self.keys()
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(v for _, v in self.values))]

    def __str__(self) -> str:
        return " x ".join(f"{k}={','.join(f'{v:g}' for v in values)}" for k, values in self.values)


def _choices(tp: Any) -> tuple | None:
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else None


def _item_type(tp: Any) -> Any:
    """The element type of a ``tuple[T, ...]`` field, else None."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    return None


def describe_type(tp: Any) -> str:
    """A short human name for a field type: 'int', 'float', 'one of a|b', 'comma-separated int'.

    Args:
      tp: the field's type: a class, a ``Literal`` of choices or a ``tuple[T, ...]``.

    Returns:
      The name, as ``--help-config`` and error messages show it.
    """
    item = _item_type(tp)
    if item is not None:
        return "comma-separated " + describe_type(item)
    choices = _choices(tp)
    if choices is not None:
        return "one of " + "|".join(str(c) for c in choices)
    return getattr(tp, "__name__", str(tp))


def parse_value(name: str, tp: Any, text: str) -> Any:
    """Converts command-line text to the field type ``tp``; raises JaxdlError.

    Args:
      name: the setting's name, for the error message.
      tp: the field's type: bool, int, float, str, a ``Literal`` of choices or a
        ``tuple[T, ...]`` of one of those (comma-separated text; empty text is
        the empty tuple).
      text: what the command line gave.

    Returns:
      The value, of type ``tp``.
    """
    item = _item_type(tp)
    if item is not None:
        parts = [part.strip() for part in text.split(",")] if text.strip() else []
        try:
            return tuple(parse_value(name, item, part) for part in parts)
        except JaxdlError:
            raise JaxdlError(f"setting {name}: expected {describe_type(tp)}, got {text!r}") from None
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
    """Checks every field's bounds (and the class's own ``check`` if it has one).

    Args:
      config: an instance of a config dataclass.

    Raises:
      JaxdlError: a value (or a tuple's item) out of its field's bounds, or whatever the
        class's ``check`` refuses.
    """
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        for op, bound in field.metadata.get("bounds", {}).items():
            for item in value if isinstance(value, tuple) else (value,):  # a tuple's bounds hold for each value
                ok = {
                    "gt": item > bound,
                    "ge": item >= bound,
                    "lt": item < bound,
                    "le": item <= bound,
                }[op]
                if not ok:
                    raise JaxdlError(f"setting {field.name} must be {_BOUNDS[op]} {bound}, got {item}")
    extra_check = getattr(config, "check", None)
    if extra_check is not None:
        extra_check()


def resolve(cls: type, overrides: list[str] | tuple[str, ...] = (), *, sweep: Sweep | None = None) -> Any:
    """Builds ``cls`` from its defaults and ``key=value`` overrides, then checks it.

    Args:
      cls: a frozen dataclass declared with :func:`setting` fields.
      overrides: strings ``"key=value"``; later ones win.
      sweep: the settings trained side by side in one program (the runner's), for
        a class with a ``sweep`` field.

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
        if key == "sweep" and types.get(key) in (Sweep, "Sweep"):
            raise JaxdlError("setting sweep is written by the runner; give a grid as --set KEY=A,B instead")
        if key not in types:
            close = difflib.get_close_matches(key, types, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise JaxdlError(f"unknown setting {key!r}; {hint}known settings: {', '.join(types)}")
        values[key] = parse_value(key, types[key], text.strip())
    config = cls(**values, **({"sweep": sweep} if sweep else {}))
    check(config)
    _check_applies(config, values)
    return config


def split_grid(cls: type, overrides: list[str] | tuple[str, ...]) -> tuple[list[str], dict[str, list[str]]]:
    """Separates grid settings (``key=a,b,c`` for a number or choice) from plain ones.

    Every value of a grid is checked as a plain setting would be (type, bounds,
    recipe), so a bad grid fails here, before anything runs.

    Args:
      cls: the experiment's config class.
      overrides: ``"key=value"`` strings, as ``--set`` gave them.

    Returns:
      ``(plain overrides, {key: [value text, ...]})``, keys in the order given.

    Raises:
      JaxdlError: an empty or repeated value in a grid, or any setting :func:`resolve` refuses.
    """
    types = _field_types(cls)
    plain: list[str] = []
    grid: dict[str, list[str]] = {}
    for pair in overrides:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if sep and key in types and types[key] is not str and _item_type(types[key]) is None and "," in text:
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
    """The config as a JSON-ready dict: tuples as lists, a sweep as ``{key: [value, ...]}``.

    Args:
      config: an instance of a config dataclass.

    Returns:
      ``{field name: value}`` for every field, in declaration order (what config.json holds).
    """
    return {f.name: _json_value(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _json_value(value: Any) -> Any:
    if isinstance(value, Sweep):
        return value.as_dict()
    return list(value) if isinstance(value, tuple) else value


def as_overrides(values: dict[str, Any]) -> list[str]:
    """``key=value`` text for saved values (a config.json's): the inverse of :func:`to_dict` for
    every setting the command line can give, so the sweep is left out.

    Args:
      values: setting name to JSON value (bool, number, text, list).

    Returns:
      ``["key=value", ...]`` that :func:`resolve` turns back into the same values.
    """
    out = []
    for key, value in values.items():
        if key == "sweep":
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | tuple):
            text = ",".join(str(v) for v in value)
        else:
            text = str(value)
        out.append(f"{key}={text}")
    return out


def help_lines(cls: type) -> list[str]:
    """One line per field: name, type, default and help text.

    Args:
      cls: a config dataclass declared with :func:`setting` fields.

    Returns:
      The lines of ``--help-config``, indented two spaces; the runner's ``sweep`` is left out.
    """
    lines = []
    for field in dataclasses.fields(cls):
        tp = _field_types(cls)[field.name]
        if tp in (Sweep, "Sweep"):
            continue  # written by the runner from a grid, never given
        default = ",".join(map(str, field.default)) if isinstance(field.default, tuple) else field.default
        lines.append(f"  {field.name} ({describe_type(tp)}, default {default!r}): {field.metadata.get('help', '')}")
    return lines
