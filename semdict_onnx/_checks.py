"""Argument checks used across the package, so that each rule is written once.

A positive integer is an integer (Python's or numpy's, never a bool) of at least 1.
"""

from __future__ import annotations

import numbers

from .errors import OptionError, SemdictError


def is_integer(value: object) -> bool:
    """True for a Python or numpy integer; a bool is not one."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_positive_int(value: object) -> bool:
    """True for an integer (never a bool) of at least 1."""
    return is_integer(value) and value >= 1


def positive_int(
    value: object,
    name: str,
    *,
    most: int | None = None,
    where: str = "",
    error: type[SemdictError] = OptionError,
) -> int:
    """`value` as an int if it is a positive integer up to `most` (if given), else `error`.

    The message names the argument: "`name` must be a positive integer, not ...", or with
    `most` "`name` must be an integer from 1 to `most``where`, not ...".
    """
    if is_positive_int(value) and (most is None or value <= most):
        return int(value)
    if most is None:
        raise error(f"{name} must be a positive integer, not {value!r}")
    raise error(f"{name} must be an integer from 1 to {most}{where}, not {value!r}")
