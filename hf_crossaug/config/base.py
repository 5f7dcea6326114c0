"""One way to validate configuration: build nested dataclasses from YAML/CLI dicts, check types from the
annotations and values through each config's ``problems()``, and fail with one line naming the field.

Every config dataclass in ``hf_crossaug.config`` follows the same two rules: fields are typed, and
``problems()`` returns ``(ok, field, why)`` checks for what a type cannot say (ranges, choices, pairs of
fields). Nested configs are checked recursively, so a parent never repeats its children's checks.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache

Problem = tuple[bool, str, str]


class ConfigError(ValueError):
    """A configuration value that cannot work; the message is one line naming the field."""


class FieldProblem(ConfigError):
    """The first problem of a config raised while it is built; `build` re-raises it naming the recipe and field."""

    def __init__(self, owner: str, name: str, why: str):
        super().__init__(f"{owner}: field {name!r} {why}")
        self.name, self.why = name, why


class Validated:
    """Mixin of the config dataclasses: ``problems()`` is checked when an object is built or replaced
    (``dataclasses.replace``), so no code path -- YAML, CLI or Python -- ever holds an invalid config."""

    def __post_init__(self):
        for ok, name, why in self.problems():
            if not ok:
                raise FieldProblem(type(self).__name__, name, why)

    def problems(self) -> list[Problem]:
        return []


@cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def type_options(tp) -> tuple:
    """The alternatives of ``X | Y | None`` (or ``(tp,)``)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def _check_value(tp, value, name: str, where: str):
    options = type_options(tp)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"{where}: field {name!r} must not be empty")
    for opt in options:
        if dataclasses.is_dataclass(opt):
            return build(opt, value, where, name + ".")
        base = typing.get_origin(opt) or opt
        if base is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if base in (bool, int, float, str, list, dict) and isinstance(value, base) and not (
                base is int and isinstance(value, bool)):
            if base is list and typing.get_args(opt) and typing.get_args(opt)[0] is str and not all(
                    isinstance(v, str) for v in value):
                continue
            return value
    want = " or ".join(getattr(typing.get_origin(o) or o, "__name__", str(o)) for o in options if o is not type(None))
    raise ConfigError(f"{where}: field {name!r} must be {want}, got {type(value).__name__} {value!r}")


def option(default, help: str, *flags: str):
    """A config field that is also a command-line option: ``help`` is its text, ``flags`` extra spellings
    (``--lr``). The CLI reads these (`hf_crossaug.cli.config_options`) instead of re-declaring the field."""
    return dataclasses.field(default=default, metadata={"help": help, "flags": flags})


def build(cls, data, where: str = "config", prefix: str = ""):
    """Instantiate a (nested) config dataclass from a mapping, rejecting unknown fields and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: field {prefix.rstrip('.') or 'config'!r} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(f"{where}: unknown field {prefix + str(unknown[0])!r} (known: {', '.join(fields)})")
    hints = _hints(cls)
    kwargs = {name: _check_value(hints[name], value, prefix + name, where) for name, value in data.items()}
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: missing required field {prefix + missing[0]!r}")
    try:
        return cls(**kwargs)
    except FieldProblem as problem:
        raise ConfigError(f"{where}: field {prefix + problem.name!r} {problem.why}") from None


def check(config, where: str = "config", prefix: str = ""):
    """Raise one `ConfigError` line for the first problem of ``config`` or of a nested config; return it."""
    for ok, name, why in getattr(config, "problems", lambda: [])():
        if not ok:
            raise ConfigError(f"{where}: field {prefix + name!r} {why}")
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check(value, where, f"{prefix}{f.name}.")
    return config


def at_least(config, minimum: float, *names: str) -> list[Problem]:
    """``(ok, field, why)`` checks that each named numeric field is >= ``minimum`` (None passes: unset)."""
    return [(getattr(config, n) is None or getattr(config, n) >= minimum, n, f"must be >= {minimum:g}, got "
             f"{getattr(config, n)!r}") for n in names]


def check_options(minimum: int, **values) -> None:
    """Arguments that are also command-line options (None: not given): one line naming both spellings for
    the first below ``minimum``, before it reaches a stage as a field or as numpy's "expected non-negative"."""
    for name, value in values.items():
        if value is not None and value < minimum:
            raise ConfigError(f"{name} (--{name.replace('_', '-')}) must be >= {minimum}, got {value}")


def one_of(config, name: str, choices) -> Problem:
    value = getattr(config, name)
    return value in choices, name, f"must be one of {', '.join(map(str, choices))}, got {value!r}"
