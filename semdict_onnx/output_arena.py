"""Memory for output arrays, reused once the caller has let go of every array cut from it.

Writing a batch's activations into freshly allocated memory costs the kernel's page faults
and zeroing on every call (about 0.4 ms per GoogLeNet image, 5% of the model's time, with
outliers twice that); ONNX Runtime avoids them for its own outputs by keeping freed memory
in its arena. `OutputArena` does the same for the arrays the runtime writes itself
(parallel.py): all the outputs of one call are views of one block, and when the last of
them is gone the block goes back to the arena for the next call. Arrays the caller still
holds are never reused.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence

import numpy as np

# Each array starts on a 64-byte boundary (a cache line; what vector stores like).
ALIGN_FLOATS = 16
# Free blocks kept for later calls; beyond that, the longest kept is dropped.
MAX_FREE_BLOCKS = 1


class OutputArena:
    """Hands out float32 arrays cut from reusable blocks; thread-safe."""

    def __init__(self, max_free_blocks: int = MAX_FREE_BLOCKS) -> None:
        self._max_free = max_free_blocks
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    @property
    def free_blocks(self) -> int:
        """How many blocks wait for reuse."""
        return len(self._free)

    def arrays(self, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
        """Uninitialized C-contiguous float32 arrays of `shapes`, all views of one block."""
        sizes = [math.prod(shape) for shape in shapes]
        offsets = []
        total = 0
        for size in sizes:
            offsets.append(total)
            total += -(-size // ALIGN_FLOATS) * ALIGN_FLOATS
        block = self._take(total + ALIGN_FLOATS)
        start = (-block.ctypes.data // 4) % ALIGN_FLOATS  # floats to the first aligned one
        # The views' base is the memoryview numpy makes here; it dies with the last view.
        window = np.frombuffer(memoryview(block), np.float32)
        weakref.finalize(window.base, self._give_back, block)
        return [
            window[start + offset : start + offset + size].reshape(shape)
            for offset, size, shape in zip(offsets, sizes, shapes, strict=True)
        ]

    def _take(self, floats: int) -> np.ndarray:
        """A free block of at least `floats` (and not over twice that), else a new one."""
        with self._lock:
            for index, block in enumerate(self._free):
                if floats <= block.size <= 2 * floats:
                    return self._free.pop(index)
        return np.empty(floats, np.float32)

    def _give_back(self, block: np.ndarray) -> None:
        with self._lock:
            self._free.append(block)
            del self._free[: -self._max_free]
