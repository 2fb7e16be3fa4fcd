"""The saved state of a spritemap render: the sprites finished so far, to resume from.

A checkpoint is one .npz file holding a key (everything that decides what the sprites look
like: layer, model file hash, directions, settings, sprite size), the finished indices,
their sprites (uint8, lossless) and their final objectives. `render_spritemap` rewrites it
atomically after every batch, so an interrupted run keeps every finished batch; a run with
the same key picks up where it stopped. A checkpoint made with another key is refused rather
than mixed in.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import write_bytes_atomic
from ..errors import RenderError

KIND = "semdict_onnx.featurevis.checkpoint"
SCHEMA = 1


class RenderCheckpoint:
    """Finished sprites of one render, keyed by what decides them."""

    def __init__(self, key: dict[str, Any], sprite_size: int) -> None:
        self.key = key
        self.sprite_size = sprite_size
        self.sprites: dict[int, np.ndarray] = {}
        self.objectives: dict[int, float] = {}

    @classmethod
    def open(
        cls, path: str | os.PathLike[str] | None, key: dict[str, Any], sprite_size: int
    ) -> RenderCheckpoint:
        """The checkpoint at `path` when it exists (checked against `key`), else an empty one."""
        state = cls(key, sprite_size)
        if path is None or not Path(path).exists():
            return state
        source = Path(path)
        try:
            with np.load(source, allow_pickle=False) as data:
                fields = {name: data[name] for name in data.files}
            saved_key = json.loads(str(fields["key"]))
            kind, schema = str(fields["kind"]), int(fields["schema"])
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise RenderError(
                f"cannot read the render checkpoint {str(source)!r} ({exc}); delete it to "
                "start the render afresh"
            ) from exc
        if kind != KIND or schema != SCHEMA:
            raise RenderError(f"{str(source)!r} is not a version-{SCHEMA} render checkpoint")
        if saved_key != key:
            changed = sorted(
                name for name in {*key, *saved_key} if key.get(name) != saved_key.get(name)
            )
            raise RenderError(
                f"the render checkpoint {str(source)!r} was made with other settings "
                f"({', '.join(changed)} differ); pass the same settings to resume it, or "
                "delete it (or pass another checkpoint path) to start afresh"
            )
        for index, sprite, objective in zip(
            fields["indices"].tolist(),
            fields["sprites"],
            fields["objectives"].tolist(),
            strict=True,
        ):
            state.sprites[int(index)] = sprite
            state.objectives[int(index)] = float(objective)
        return state

    def add(self, indices: list[int], sprites: np.ndarray, objectives: np.ndarray) -> None:
        """Record finished sprites [n, size, size, 3] (uint8) and their final objectives."""
        for index, sprite, objective in zip(indices, sprites, objectives, strict=True):
            self.sprites[int(index)] = sprite
            self.objectives[int(index)] = float(objective)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the checkpoint atomically."""
        indices = sorted(self.sprites)
        size = self.sprite_size
        sprites = (
            np.stack([self.sprites[i] for i in indices])
            if indices
            else np.zeros((0, size, size, 3), np.uint8)
        )
        buffer = io.BytesIO()
        np.savez(
            buffer,
            kind=np.array(KIND),
            schema=np.array(SCHEMA),
            key=np.array(json.dumps(self.key, sort_keys=True)),
            indices=np.array(indices, np.int64),
            sprites=sprites,
            objectives=np.array([self.objectives[i] for i in indices], np.float32),
        )
        return write_bytes_atomic(path, buffer.getvalue())
