"""One batch of pictures being optimized, a step at a time.

`Optimization` holds a batch's Fourier parameters (_parameterization.py) and Adam's state
(_optimizer.py); each `step` takes the step's transforms (_transforms.py), makes the
pictures, runs the gradient model (_gradient_model.py; Lucid's redirected ReLU gradient for
the first REDIRECT_STEPS steps) and moves the parameters up the objective.

How a step is scheduled (the arithmetic is the same either way):
- On the CPU with several cores and several pictures, the batch is split into one share per
  core, and each share goes through its whole step in its own thread: picture, transforms,
  a one-thread run of the gradient model, adjoints, Adam. The shares never wait for each
  other within a step.
- Otherwise (one picture, one core, or a GPU) the gradient model runs on the whole batch at
  once and the picture's part runs around it (on shares of the batch in threads when it is
  large).
The transforms do not depend on the pictures, so the next step's resampling matrices are
built in a background thread while this step finishes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
# The fewest pictures per thread in the picture's part of a step when the gradient model
# runs on the whole batch (fewer are not worth a thread).
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
        self._weights = np.ascontiguousarray(weights, np.float32)
        self._pipelined = self._true.cores > 1 and len(keys) > 1
        self._shares = (
            _split(len(keys), self._true.cores)
            if self._pipelined
            else _split(len(keys), min(usable_cores(), len(keys) // SHARE))
        )
        self._upcoming: dict[int, Future] = {}
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
        """One step of Adam up the objective; returns the objective [N] the network saw."""
        index = self.steps_done
        transform = self._transform(index)
        session = self._redirected if index < REDIRECT_STEPS else self._true
        if self._pipelined:
            self._prefetch(index + 1)
            rate = self._adam.next_rate()
            values = _map(
                lambda rows: self._share_step(rows, transform, session, rate), self._shares
            )
            value = np.concatenate(values)
        else:
            value = self._batch_step(index, transform, session)
        self.steps_done += 1
        return value

    def _share_step(
        self,
        rows: slice,
        transform: _transforms.Transform | None,
        session: GradientSession,
        rate: np.float32,
    ) -> np.ndarray:
        """A whole step for one share of the batch, on a one-thread run of the gradient model."""
        picture, saved = self._image.image(self.params[rows])
        seen = transform.apply(picture) if transform else picture
        value, grad = session.share(self._offset + self._span * seen, self._weights[rows])
        grad *= self._span
        back = transform.adjoint(grad) if transform else grad
        self._adam.update(self.params, self._image.backward(back, saved), rows, rate)
        return value

    def _batch_step(
        self, index: int, transform: _transforms.Transform | None, session: GradientSession
    ) -> np.ndarray:
        """A step with the gradient model on the whole batch, the picture's part around it."""

        def forward(rows: slice) -> tuple[np.ndarray, Any]:
            picture, saved = self._image.image(self.params[rows])
            return (transform.apply(picture) if transform else picture), saved

        parts = _map(forward, self._shares)
        seen = parts[0][0] if len(parts) == 1 else np.concatenate([seen for seen, _ in parts])
        value, grad = self.objective(seen, session)
        self._prefetch(index + 1)  # the cores are free again: build the next transforms
        rate = self._adam.next_rate()

        def backward(rows: slice, saved: Any) -> None:
            share = transform.adjoint(grad[rows]) if transform else grad[rows]
            self._adam.update(self.params, self._image.backward(share, saved), rows, rate)

        _map(backward, self._shares, [saved for _, saved in parts])
        return value

    def _transform(self, index: int) -> _transforms.Transform | None:
        """Step `index`'s transforms (built ahead by `_prefetch`, or now)."""
        if not self._settings.transforms:
            return None
        future = self._upcoming.pop(index, None)
        return future.result() if future else self._build(index)

    def _prefetch(self, index: int) -> None:
        """Start building step `index`'s transforms in the background."""
        if self._settings.transforms and index < len(self._draws) and index not in self._upcoming:
            if not _BUILDER:
                _BUILDER.append(ThreadPoolExecutor(1, thread_name_prefix="semdict-transforms"))
            self._upcoming[index] = _BUILDER[0].submit(self._build, index)

    def _build(self, index: int) -> _transforms.Transform:
        """The resampling matrices of step `index`'s draw."""
        return _transforms.Transform(self._size, self._draws[index % len(self._draws)])


_POOL: list[ThreadPoolExecutor] = []
_BUILDER: list[ThreadPoolExecutor] = []


def _map(function: Callable[..., Any], *arguments: Sequence[Any]) -> list[Any]:
    """function over the arguments, in threads when there are several (one per core)."""
    if len(arguments[0]) == 1:
        return [function(*first) for first in zip(*arguments, strict=True)]
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(usable_cores(), thread_name_prefix="semdict-picture"))
    return list(_POOL[0].map(function, *arguments))


def _split(count: int, parts: int) -> list[slice]:
    """`count` pictures as `parts` contiguous shares (at least one)."""
    bounds = np.linspace(0, count, max(1, min(parts, count)) + 1).astype(int)
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]
