"""One batch of pictures being optimized, a step at a time.

`Optimization` holds a batch's Fourier parameters (_parameterization.py) and Adam's state
(_optimizer.py); each `step` draws the step's transforms (_transforms.py), makes the
pictures, runs the gradient model (_gradient_model.py; Lucid's redirected ReLU gradient for
the first REDIRECT_STEPS steps) and moves the parameters up the objective. The picture's
part of a step runs on shares of the batch in threads, one per core.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .._model import Model
from .._parallel import usable_cores
from . import _transforms
from ._gradient_model import GradientSession, gradient_session
from ._optimizer import Adam
from ._parameterization import FourierImage
from ._settings import RenderSettings

# Lucid's render_vis redirects ReLU gradients for its first 16 steps (see _vjp.py).
REDIRECT_STEPS = 16
# The fewest pictures per thread in the picture's part of a step (fewer are not worth one).
SHARE = 4


class Optimization:
    """One batch of pictures being optimized, a step at a time (see module doc)."""

    def __init__(
        self,
        model: Model,
        layer: str,
        settings: RenderSettings,
        weights: np.ndarray,
        keys: list[int],
    ) -> None:
        low, high = model.info.input.value_range
        self._span, self._offset = np.float32(high - low), np.float32(low)
        self._settings = settings
        self._size = (settings.size, settings.size)
        self._image = FourierImage(self._size)
        self.params = self._image.initial(settings.seed, keys)
        self._adam = Adam(self.params, settings.learning_rate)
        self._draws = _transforms.draw_transforms(settings.seed, settings.steps)
        self._true = gradient_session(model, layer)
        self._redirected = gradient_session(model, layer, redirect_relu=True)
        self._weights = weights
        self._shares = _shares(len(keys))
        self.steps_done = 0

    def objective(self, pictures: np.ndarray, session: GradientSession | None = None) -> tuple:
        """The objective [N] of `pictures` [N, H, W, 3] in [0, 1], and its picture gradient."""
        session = session or self._true
        session.set_weights(self._weights)
        value, grad = session(self._offset + self._span * pictures)
        grad *= self._span
        return value, grad

    def pictures(self) -> np.ndarray:
        """The current pictures [N, size, size, 3] in [0, 1]."""
        return self._image.image(self.params)[0]

    def step(self) -> np.ndarray:
        """One step of Adam up the objective; returns the objective [N] the network saw.

        The picture's part of the step (parameterization, transforms, their adjoints, Adam)
        runs on shares of the batch in threads, one per core; the pictures do not mix.
        """
        index = self.steps_done
        transform = (
            _transforms.Transform(self._size, self._draws[index % len(self._draws)])
            if self._settings.transforms
            else None
        )

        def forward(rows: slice) -> tuple[np.ndarray, Any]:
            picture, saved = self._image.image(self.params[rows])
            return (transform.apply(picture) if transform else picture), saved

        parts = _map(forward, self._shares)
        seen = parts[0][0] if len(parts) == 1 else np.concatenate([seen for seen, _ in parts])
        session = self._redirected if index < REDIRECT_STEPS else self._true
        value, grad = self.objective(seen, session)
        rate = self._adam.next_rate()

        def backward(rows: slice, saved: Any) -> None:
            share = transform.adjoint(grad[rows]) if transform else grad[rows]
            self._adam.update(self.params, self._image.backward(share, saved), rows, rate)

        _map(backward, self._shares, [saved for _, saved in parts])
        self.steps_done += 1
        return value


_POOL: list[ThreadPoolExecutor] = []


def _map(function: Callable[..., Any], *arguments: Sequence[Any]) -> list[Any]:
    """function over the arguments, in threads when there are several (one per core)."""
    if len(arguments[0]) == 1:
        return [function(*first) for first in zip(*arguments, strict=True)]
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(usable_cores(), thread_name_prefix="semdict-picture"))
    return list(_POOL[0].map(function, *arguments))


def _shares(count: int) -> list[slice]:
    """The batch split into one contiguous share per core, at least SHARE pictures each."""
    parts = max(1, min(usable_cores(), count // SHARE))
    bounds = np.linspace(0, count, parts + 1).astype(int)
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]
