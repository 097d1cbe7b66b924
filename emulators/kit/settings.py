"""Typed device settings: one frozen dataclass per device, whose field metadata holds each setting's rules.

``--print-config`` and each device page's settings table are generated from the same dataclass.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

from emulators.kit.errors import FieldError


def setting(
    default: Any,
    *,
    doc: str,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[Any, ...] | None = None,
) -> Any:
    """A settings field: its default, what it means, and what values are allowed."""
    metadata = {"doc": doc, "minimum": minimum, "maximum": maximum, "choices": choices}
    if isinstance(default, list | dict | set):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class DeviceSettings:
    """Base of a device's settings dataclass; a subclass sets ``device`` and declares fields with ``setting``.

    A subclass with rules across fields overrides ``validate`` and calls ``super().validate()`` first.
    """

    device: ClassVar[str] = ""

    @classmethod
    def from_mapping(cls, overrides: Mapping[str, Any]) -> Self:
        """The defaults with ``overrides`` applied; FieldError naming ``<device>.<field>`` for any bad one."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in overrides:
            if key not in known:
                raise FieldError(cls._name(str(key)), f"is not a setting of {cls.device}; known: "
                                                      f"{', '.join(sorted(known))}")
        hints = typing.get_type_hints(cls)
        values = {key: _convert(cls._name(key), hints[key], value) for key, value in overrides.items()}
        instance = cls(**values)
        instance.validate()
        return instance

    @classmethod
    def _name(cls, key: str) -> str:
        return f"{cls.device}.{key}" if cls.device else key

    def validate(self) -> None:
        """Check every field against its type, range and allowed values."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            name = self._name(f.name)
            value = getattr(self, f.name)
            _convert(name, hints[f.name], value)
            if value is None:
                continue
            lo, hi, choices = f.metadata.get("minimum"), f.metadata.get("maximum"), f.metadata.get("choices")
            if choices is not None and value not in choices:
                raise FieldError(name, f"must be one of {', '.join(map(str, choices))}, got {value!r}")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise FieldError(name, f"must be {_range(lo, hi)}, got {value!r}")

    def as_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return cls().as_dict()

    @classmethod
    def markdown_table(cls) -> str:
        """The settings table of the device page: name, default, allowed values, meaning."""
        hints = typing.get_type_hints(cls)
        rows = ["| Setting | Default | Allowed | Meaning |", "| --- | --- | --- | --- |"]
        defaults = cls.defaults()
        for f in dataclasses.fields(cls):
            choices, lo, hi = f.metadata.get("choices"), f.metadata.get("minimum"), f.metadata.get("maximum")
            if choices is not None:
                allowed = ", ".join(f"`{c}`" for c in choices)
            elif lo is not None or hi is not None:
                allowed = _range(lo, hi)
            else:
                allowed = _describe(hints[f.name])
            cells = (f"`{f.name}`", f"`{defaults[f.name]!r}`", allowed, f.metadata.get("doc", ""))
            rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        return "\n".join(rows) + "\n"


def _range(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"between {lo} and {hi}"
    return f">= {lo}" if lo is not None else f"<= {hi}"


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin is Literal:
        return ", ".join(repr(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return f"a list of {_describe(args[0])}" if args else "a list"
    if origin is dict or hint is dict:
        return "a table"
    if hint is float:
        return "a number"
    if hint is int:
        return "an integer"
    if hint is bool:
        return "true or false"
    if hint is str:
        return "a string"
    return getattr(hint, "__name__", str(hint))


def _convert(name: str, hint: Any, value: Any) -> Any:
    """``value`` as the annotated type (an int where a float is declared, a tuple for a list); FieldError if it
    is not one."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            try:
                return _convert(name, arg, value)
            except FieldError:
                continue
    elif origin is Literal:
        if value in typing.get_args(hint):
            return value
    elif hint is type(None):
        if value is None:
            return value
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin in (list, tuple):
        if isinstance(value, list | tuple):
            args = [a for a in typing.get_args(hint) if a is not Ellipsis]
            items = [_convert(f"{name}[{i}]", args[0], v) for i, v in enumerate(value)] if args else list(value)
            return tuple(items) if origin is tuple else items
    elif origin is dict or hint is dict:
        if isinstance(value, dict):
            return value
    else:
        return value
    raise FieldError(name, f"must be {_describe(hint)}, got {value!r}")
