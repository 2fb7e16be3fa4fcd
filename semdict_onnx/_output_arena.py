"""Memory for output arrays, reused once the caller has let go of an array and its views.

Writing a batch's activations into freshly allocated memory costs the kernel's page faults
and zeroing on every call (about 0.4 ms per GoogLeNet image, 5% of the model's time, with
outliers twice that); ONNX Runtime avoids them for its own outputs by keeping freed memory
in its arena. `OutputArena` does the same for the arrays the runtime writes itself
(_parallel.py): each output array is a view of a block of its own, and when the last view
of it is gone (the array, and any slice the caller took of it) the block goes back to the
arena for the next call. Arrays the caller still holds are never reused, and keeping one
output keeps only that output's memory, as with ordinary arrays.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence

import numpy as np

# Each array starts on a 64-byte boundary (a cache line; what vector stores like).
ALIGN_FLOATS = 16
# Free blocks kept for later calls (the outputs of a call or two); beyond that, the longest
# kept is dropped.
MAX_FREE_BLOCKS = 24


class OutputArena:
    """Hands out float32 arrays on reusable blocks; thread-safe."""

    def __init__(self, max_free_blocks: int = MAX_FREE_BLOCKS) -> None:
        self._max_free = max_free_blocks
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    @property
    def free_blocks(self) -> int:
        """How many blocks wait for reuse."""
        return len(self._free)

    def arrays(self, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
        """Uninitialized C-contiguous float32 arrays of `shapes`, each on a block of its own."""
        return [self._array(tuple(shape)) for shape in shapes]

    def _array(self, shape: tuple[int, ...]) -> np.ndarray:
        size = math.prod(shape)
        block = self._take(size + ALIGN_FLOATS)
        start = (-block.ctypes.data // 4) % ALIGN_FLOATS  # floats to the first aligned one
        # The view's base is the memoryview numpy makes here; it dies with the last view.
        window = np.frombuffer(memoryview(block), np.float32)
        weakref.finalize(window.base, self._give_back, block)
        return window[start : start + size].reshape(shape)

    def _take(self, floats: int) -> np.ndarray:
        """The smallest free block of at least `floats` (not over twice that), else a new one."""
        with self._lock:
            fits = [i for i, block in enumerate(self._free) if floats <= block.size <= 2 * floats]
            if fits:
                return self._free.pop(min(fits, key=lambda i: self._free[i].size))
        return np.empty(floats, np.float32)

    def _give_back(self, block: np.ndarray) -> None:
        with self._lock:
            self._free.append(block)
            del self._free[: -self._max_free]
