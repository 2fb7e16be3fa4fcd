"""Argument checks used across the package, so that each rule is written once.

A positive integer is an integer (Python's or numpy's, never a bool) of at least 1.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from .errors import ExamplesError, OptionError, SemdictError


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


def check_activation_batch(acts: Any, channels: int, image_ids: Sequence[str], what: str) -> None:
    """Refuse, as an ExamplesError naming `what`, anything but activations [N, H, W, channels]
    for N image ids."""
    if acts.ndim != 4 or acts.shape[3] != channels or acts.shape[0] != len(image_ids):
        raise ExamplesError(
            f"{what} takes activations [N, H, W, {channels}] for N image ids, "
            f"got {acts.shape} for {len(image_ids)} ids"
        )
