"""Conversion between kube-node's dataclass models and the JSON-shaped dicts the API server speaks.

Each field maps to its camelCase name unless ``field(metadata={"json": ...})`` says otherwise. Nested
dataclasses, lists and dicts of them, and optional fields are converted recursively. ``to_dict`` leaves out
fields that are None, so what a model writes is what a person would write by hand.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


class ModelError(ValueError):
    """A dict does not have the shape of the model it is read into."""


def json_name(field: dataclasses.Field[Any]) -> str:
    """Return the JSON key of a dataclass field."""
    explicit = field.metadata.get("json")
    if explicit:
        return str(explicit)
    head, *rest = field.name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def to_dict(obj: Any) -> Any:
    """Convert a model (or a list or dict of models) to plain JSON-shaped data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for field in dataclasses.fields(obj):
            value = getattr(obj, field.name)
            if value is None:
                continue
            out[json_name(field)] = to_dict(value)
        return out
    if isinstance(obj, list):
        return [to_dict(item) for item in obj]
    if isinstance(obj, dict):
        return {key: to_dict(value) for key, value in obj.items()}
    return obj


def from_dict(cls: type[T], data: Any) -> T:
    """Read JSON-shaped data into the model ``cls``; unknown keys are ignored, missing ones take defaults."""
    return typing.cast(T, _convert(cls, data, cls.__name__))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(tp: Any, data: Any, where: str) -> Any:
    if data is None:
        return None
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [arg for arg in get_args(tp) if arg is not type(None)]
        if len(options) == 1:
            return _convert(options[0], data, where)
        return data
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(data, dict):
            raise ModelError(f"{where}: expected an object, got {type(data).__name__}")
        hints = _hints(tp)
        kwargs: dict[str, Any] = {}
        for field in dataclasses.fields(tp):
            key = json_name(field)
            if key in data:
                kwargs[field.name] = _convert(hints[field.name], data[key], f"{where}.{key}")
        return tp(**kwargs)
    if origin is list:
        if not isinstance(data, list):
            raise ModelError(f"{where}: expected a list, got {type(data).__name__}")
        (item_tp,) = get_args(tp)
        return [_convert(item_tp, item, f"{where}[{i}]") for i, item in enumerate(data)]
    if origin is dict:
        if not isinstance(data, dict):
            raise ModelError(f"{where}: expected an object, got {type(data).__name__}")
        _, value_tp = get_args(tp)
        return {key: _convert(value_tp, value, f"{where}.{key}") for key, value in data.items()}
    if tp is float and isinstance(data, int):
        return float(data)
    return data
