"""Adam, as TensorFlow's tf.train.AdamOptimizer (which Lucid uses) computes it.

Elementwise, so each image of a batch follows its own path; float32 throughout, so a seed
gives the same result bit for bit on one machine.
"""

from __future__ import annotations

import numpy as np

BETA1 = 0.9
BETA2 = 0.999
EPSILON = 1e-8


class Adam:
    """Adam over one parameter array, ascending the objective at `learning_rate`."""

    def __init__(self, params: np.ndarray, learning_rate: float) -> None:
        self.learning_rate = float(learning_rate)
        self._m = np.zeros_like(params, np.float32)
        self._v = np.zeros_like(params, np.float32)
        self._step = 0

    def ascend(self, params: np.ndarray, grad: np.ndarray) -> None:
        """One step up the gradient, updating `params` in place."""
        self.update(params, grad, slice(None), self.next_rate())

    def next_rate(self) -> np.float32:
        """Start a step: its step size (TensorFlow's form, bias corrections folded in)."""
        self._step += 1
        t = self._step
        return np.float32(self.learning_rate * np.sqrt(1 - BETA2**t) / (1 - BETA1**t))

    def update(self, params: np.ndarray, grad: np.ndarray, rows: slice, rate: np.float32) -> None:
        """The step on params[rows] (updated in place) with their gradient, at `rate`.

        The rows of one step may be updated by several threads at once, each its own rows.
        """
        m, v = self._m[rows], self._v[rows]
        m *= np.float32(BETA1)
        m += np.float32(1 - BETA1) * grad
        v *= np.float32(BETA2)
        v += np.float32(1 - BETA2) * grad * grad
        params[rows] += rate * m / (np.sqrt(v) + np.float32(EPSILON))
