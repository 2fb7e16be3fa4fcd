"""Reading untrusted JSON (model cards, spritemap manifests): parsed safely, each field checked.

A model card or a manifest may come from anyone (a shared file, a downloaded model), so what
the library reads of it is checked field by field, and every fault becomes the caller's own
error class (`ModelFormatError`, `SpritemapError`) naming the field, never a TypeError,
KeyError, RecursionError or IndexError from deep inside. `parse_json_object` parses text that
must hold one JSON object nested at most MAX_DEPTH deep; `Fields` reads one object's fields,
each with the type and range it must have.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from .errors import SemdictError

# Our files nest about 5 deep; far deeper nesting is hostile or broken.
MAX_DEPTH = 32
MAX_INT = 2**31 - 1
_REQUIRED: Any = object()


def _kind(value: object) -> str:
    """A JSON value's type in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _shown(value: object) -> str:
    """A value for an error message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _depth(value: object) -> int:
    """How deeply lists and objects nest in `value` (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                children = item.values() if isinstance(item, dict) else item
                stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json_object(text: str | bytes, what: str, error: type[SemdictError]) -> dict[str, Any]:
    """The JSON object in `text`, or `error` saying why it is not one (`what` names the text)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise error(f"{what} nests lists or objects too deeply to be read") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"{what} is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise error(f"{what} is {_kind(value)} in JSON, not an object")
    if _depth(value) > MAX_DEPTH:
        raise error(f"{what} nests lists or objects over {MAX_DEPTH} deep; it is not ours")
    return value


class Fields:
    """The fields of one JSON object, read with checks; `where` names it in messages."""

    def __init__(self, raw: object, where: str, error: type[SemdictError]) -> None:
        if not isinstance(raw, dict):
            raise error(f"{where} must be an object, not {_kind(raw)}")
        self.raw = raw
        self.where = where
        self.error = error

    def _value(self, key: str, default: Any) -> Any:
        """The value of `key`: `default` when it is missing (an error when required), and None
        when it is null and may be (a null where a value is needed fails the type check)."""
        if key not in self.raw:
            if default is _REQUIRED:
                raise self.error(f"{self.where} lacks {key!r}")
            return default
        value = self.raw[key]
        return default if value is None and default is None else value

    def _fail(self, key: str, expected: str, value: object) -> SemdictError:
        return self.error(f"{self.where}: {key!r} must be {expected}, not {_shown(value)}")

    def text(self, key: str, default: Any = _REQUIRED) -> Any:
        """A string field."""
        value = self._value(key, default)
        if value is not default and not isinstance(value, str):
            raise self._fail(key, "a string", value)
        return value

    def integer(self, key: str, default: Any = _REQUIRED, low: int = 1, high: int = MAX_INT) -> Any:
        """An integer field from `low` to `high` (a boolean is not an integer)."""
        value = self._value(key, default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self._fail(key, f"an integer from {low} to {high}", value)
        return value

    def flag(self, key: str, default: Any = _REQUIRED) -> Any:
        """A boolean field."""
        value = self._value(key, default)
        if value is not default and not isinstance(value, bool):
            raise self._fail(key, "true or false", value)
        return value

    def number(self, key: str, default: Any = _REQUIRED, magnitude: float = math.inf) -> Any:
        """A finite number field of at most `magnitude` either way, as a float."""
        value = self._value(key, default)
        if value is default:
            return value
        if not _is_number(value) or abs(float(value)) > magnitude:
            what = "a finite number" + (
                f" of at most {magnitude:g} either way" * (magnitude < math.inf)
            )
            raise self._fail(key, what, value)
        return float(value)

    def numbers(self, key: str, count: int, default: Any = _REQUIRED) -> Any:
        """A list of `count` finite numbers, as a tuple of floats."""
        value = self._value(key, default)
        if value is default:
            return value
        if not (isinstance(value, list) and len(value) == count and all(map(_is_number, value))):
            raise self._fail(key, f"a list of {count} finite numbers", value)
        return tuple(float(v) for v in value)

    def choice(self, key: str, choices: tuple[str, ...], default: Any = _REQUIRED) -> Any:
        """A string field that must be one of `choices`."""
        value = self._value(key, default)
        if value is not default and value not in choices:
            raise self._fail(key, f"one of {', '.join(choices)}", value)
        return value

    def texts(self, key: str, default: Any = _REQUIRED) -> Any:
        """A list of strings, as a tuple."""
        value = self._value(key, default)
        if value is default:
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "a list of strings", value)
        return tuple(value)

    def items(self, key: str, default: Any = _REQUIRED) -> Any:
        """A list field, its items unchecked (read each with `Fields` or a check of its own)."""
        value = self._value(key, default)
        if value is not default and not isinstance(value, list):
            raise self._fail(key, "a list", value)
        return value

    def child(self, key: str, default: Any = _REQUIRED) -> Any:
        """An object field, as Fields (`default` when missing)."""
        value = self._value(key, default)
        return value if value is default else Fields(value, f"{self.where}.{key}", self.error)

    def each(self, key: str, read: Callable[[Fields], Any], default: Any = _REQUIRED) -> Any:
        """A list of objects, each read by `read` as Fields named `where.key[i]`."""
        values = self.items(key, default)
        if values is default:
            return values
        return [
            read(Fields(item, f"{self.where}.{key}[{index}]", self.error))
            for index, item in enumerate(values)
        ]


def _is_number(value: object) -> bool:
    """True for a finite JSON number that fits a float (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer with hundreds of digits
        return False
