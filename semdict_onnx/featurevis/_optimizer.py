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
        self._step += 1
        t = self._step
        # TensorFlow's form: the bias corrections folded into the step size.
        rate = np.float32(self.learning_rate * np.sqrt(1 - BETA2**t) / (1 - BETA1**t))
        self._m *= np.float32(BETA1)
        self._m += np.float32(1 - BETA1) * grad
        self._v *= np.float32(BETA2)
        self._v += np.float32(1 - BETA2) * grad * grad
        params += rate * self._m / (np.sqrt(self._v) + np.float32(EPSILON))
