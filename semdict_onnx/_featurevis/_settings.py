"""Render settings: what decides a picture besides its objective, and their limits.

`RenderSettings` holds the size, steps, seed, step size and whether the random transforms
run; `check` refuses, before anything runs, what a model cannot render or what lies beyond
the documented limits (MAX_SIZE, MAX_STEPS, MAX_BATCH).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any

from .._model import Model
from ..errors import RenderError
from . import _transforms

DEFAULT_SIZE = 128
DEFAULT_STEPS = 256
DEFAULT_LEARNING_RATE = 0.05
# Documented limits: larger pictures or longer runs are refused before anything runs.
MAX_SIZE = 512
MAX_STEPS = 4096
MAX_BATCH = 256


@dataclass(frozen=True)
class RenderSettings:
    """What decides a rendered picture besides its objective: size, steps, seed, step size."""

    size: int = DEFAULT_SIZE
    steps: int = DEFAULT_STEPS
    seed: int = 0
    learning_rate: float = DEFAULT_LEARNING_RATE
    transforms: bool = True

    def check(self, model: Model) -> None:
        """Refuse settings this model cannot render, saying what it takes."""
        info = model.info.input
        check_int("size", self.size, 1, MAX_SIZE)
        check_int("steps", self.steps, 1, MAX_STEPS)
        check_int("seed", self.seed, 0, 2**63 - 1)
        rate = self.learning_rate
        if not isinstance(rate, numbers.Real) or not math.isfinite(rate) or rate <= 0:
            raise RenderError(f"learning_rate must be a positive number, not {rate!r}")
        if not info.variable_size:
            if self.transforms or (self.size, self.size) != info.default_size:
                raise RenderError(
                    f"this model takes {info.describe_sizes()}; the random transforms change "
                    f"the size at every step: render with transforms=False and size="
                    f"{info.height}, or re-export the model for variable sizes"
                )
        square = (self.size, self.size)
        smallest = _transforms.smallest_output(square) if self.transforms else square
        if min(smallest) < info.min_side:
            raise RenderError(
                f"size {self.size} is too small: the network would see {min(smallest)} px, "
                f"and this model takes at least {info.min_side}; ask for a larger size"
            )

    def to_dict(self) -> dict[str, Any]:
        """The settings and the fixed recipe, for manifests and checkpoints."""
        recipe = {
            "parameterization": "Fourier spectrum, 1/f decay, decorrelated colour, sigmoid",
            "optimizer": "Adam",
        }
        if self.transforms:
            recipe["transforms"] = {
                "pad": _transforms.PAD,
                "fill": _transforms.FILL,
                "jitter": [_transforms.FIRST_JITTER, _transforms.SECOND_JITTER],
                "scales": [round(s, 4) for s in _transforms.SCALES],
                "angles": sorted(set(_transforms.ANGLES)),
            }
        return {**asdict(self), "recipe": recipe}


def check_int(name: str, value: Any, low: int, high: int) -> int:
    """`value` if it is an integer in [low, high], else a clear error."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or not low <= value <= high
    ):
        raise RenderError(f"{name} must be an integer from {low} to {high}, not {value!r}")
    return int(value)
