"""Block scanners that misbehave or keep count on purpose, for the Ray engine's tests.

The tests put one in place of _ray_engine.BlockScanner. Ray's workers cannot import tests/,
so this module registers itself to be pickled by value: the classes (with the attributes a
test sets on them) travel to the actors whole.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import numpy as np
import ray.cloudpickle

from semdict_onnx._ray_engine import BlockScanner


def _ids(scanner: BlockScanner, batch: dict[str, np.ndarray]) -> list[str]:
    return [name for name, _ in scanner.pairs(batch)]


class CrashOnce(BlockScanner):
    """Kills its actor's process (os._exit) on the block holding `victim`, the first time only:
    `marker` is the file that says it happened."""

    marker = ""
    victim = ""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.victim in _ids(self, batch) and not os.path.exists(self.marker):
            Path(self.marker).write_text(f"{os.getpid()}\n", encoding="utf-8")
            os._exit(1)
        return super().__call__(batch)


class CountBlocks(BlockScanner):
    """Writes the image ids of every block it scans to a new file in `folder`."""

    folder = ""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = _ids(self, batch)
        if names:  # Ray may hand over an empty batch, which is no block
            Path(self.folder, uuid.uuid4().hex).write_text("\n".join(names), encoding="utf-8")
        return super().__call__(batch)


def counted_blocks(folder: Path) -> list[frozenset[str]]:
    """The blocks a CountBlocks wrote to `folder`, each as its set of image ids."""
    return [frozenset(p.read_text(encoding="utf-8").splitlines()) for p in folder.iterdir()]


ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
