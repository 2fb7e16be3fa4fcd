"""Rendering: gradient ascent from a random Fourier image to a picture that excites a layer.

`render` optimizes one picture per row of objective weights, a batch at a time
(_optimization.py: Lucid's parameterization, its random transforms with exact adjoints, the
gradient model on ONNX Runtime and Adam), with the settings of _settings.py. Picture n
starts from a generator seeded with (seed, keys[n]) and every batch sees the same transforms
at each step (drawn from the seed), so a picture depends on the seed and its key, not on
which others share its batch. `visualize` renders one channel, neuron group or direction;
`render_spritemap` renders many into a `Spritemap`, saving and resuming through a checkpoint
(_checkpoint.py).
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.std import tqdm

from .. import _providers as providers
from .._bases import Basis, resolve_basis
from .._limits import check_grid
from .._model import Model, as_model
from .._progress import progress_bar
from .._spritemap import Spritemap, blank_grid, manifest_header
from ..errors import RenderError
from ._checkpoint import RenderCheckpoint
from ._gradient_model import GradientSession, gradient_session
from ._optimization import Optimization
from ._settings import (
    DEFAULT_LEARNING_RATE,
    DEFAULT_SIZE,
    DEFAULT_STEPS,
    MAX_BATCH,
    MAX_SIZE,
    RenderSettings,
    check_int,
)

DEFAULT_BATCH = {"CPU": 8, "CUDA": 64}
METHOD = "feature visualization"


@dataclass(frozen=True)
class Rendered:
    """Rendered pictures and how their objectives went.

    `pictures` float32 [N, size, size, 3] in [0, 1]; `history` [steps, N]: the objective at
    each step on what the network saw (transformed); `start` and `end` [N]: the objective of
    the untransformed first and final pictures.
    """

    pictures: np.ndarray
    history: np.ndarray
    start: np.ndarray
    end: np.ndarray


def _default_batch(session: GradientSession) -> int:
    """Pictures per batch: enough to fill a GPU, a few on the CPU."""
    return DEFAULT_BATCH["CUDA" if session.provider == providers.CUDA else "CPU"]


def render(
    layer: str,
    weights: np.ndarray,
    model: Model | str | os.PathLike[str] | None = None,
    settings: RenderSettings | None = None,
    keys: Sequence[int] | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> Rendered:
    """One picture per row of `weights` [N, channels]: the objective weights . mean activation.

    `keys` (default 0..N-1) seed each picture's start with the settings' seed.
    """
    model = as_model(model)
    settings = settings or RenderSettings()
    channels = model.info.layer(layer).channels
    weights = _check_weights(weights, channels, layer)
    keys = list(range(len(weights))) if keys is None else [int(key) for key in keys]
    if len(keys) != len(weights):
        raise RenderError(f"{len(keys)} keys for {len(weights)} objectives")
    settings.check(model)
    session = gradient_session(model, layer)
    batch = _default_batch(session) if batch_size is None else batch_size
    batch = check_int("batch_size", batch, 1, MAX_BATCH)
    batches = [range(i, min(i + batch, len(weights))) for i in range(0, len(weights), batch)]
    with progress_bar(
        total=len(batches) * settings.steps,
        unit="step",
        desc=f"featurevis {layer}",
        disable=not progress,
    ) as bar:
        parts = [
            _render_batch(model, layer, settings, weights[list(b)], [keys[i] for i in b], bar)
            for b in batches
        ]
    pictures, history, start, end = zip(*parts, strict=True)
    return Rendered(
        np.concatenate(pictures),
        np.concatenate(history, axis=1),
        np.concatenate(start),
        np.concatenate(end),
    )


def _check_weights(weights: Any, channels: int, layer: str) -> np.ndarray:
    """Objective weights as float32 [N, channels], or a clear error."""
    matrix = np.asarray(weights, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != channels or matrix.shape[0] < 1:
        raise RenderError(
            f"objective weights must be [N, {channels}] for layer {layer!r}, not {matrix.shape}"
        )
    if not np.isfinite(matrix).all() or not matrix.any(axis=1).all():
        raise RenderError("every objective needs finite weights, not all zero")
    return matrix


def _render_batch(
    model: Model,
    layer: str,
    settings: RenderSettings,
    weights: np.ndarray,
    keys: list[int],
    bar: tqdm,
) -> tuple[np.ndarray, ...]:
    """Optimize one batch of pictures; returns (pictures, history, start, end)."""
    run = Optimization(model, layer, settings, weights, keys)
    start = run.objective(run.pictures())[0]
    history = np.empty((settings.steps, len(keys)), np.float32)
    for step in range(settings.steps):
        history[step] = run.step()
        bar.update(1)
    pictures = run.pictures()
    return pictures, history, start, run.objective(pictures)[0]


def to_image(picture: np.ndarray) -> Image.Image:
    """A float [H, W, 3] picture in [0, 1] as an 8-bit RGB image."""
    return Image.fromarray(np.round(np.clip(picture, 0, 1) * 255).astype(np.uint8), "RGB")


def objective_weights(
    layer: str,
    channels: int,
    channel: int | Sequence[int] | None = None,
    direction: Any = None,
) -> np.ndarray:
    """The weights [1, channels] of one objective: a channel, a neuron group or a direction."""
    if (channel is None) == (direction is None):
        raise RenderError("pass either channel= (one, or a list for a neuron group) or direction=")
    if direction is not None:
        vector = np.asarray(direction, dtype=np.float32).reshape(-1)
        if vector.shape != (channels,):
            raise RenderError(
                f"a direction of layer {layer!r} has {channels} entries, not {np.shape(direction)}"
            )
        return _check_weights(vector[None], channels, layer)
    group = [channel] if isinstance(channel, numbers.Integral) else list(channel)
    if not group:
        raise RenderError("a neuron group needs at least one channel")
    weights = np.zeros((1, channels), np.float32)
    for index in group:
        weights[0, _check_channel(index, channels, layer)] = 1.0
    return weights


def _check_channel(index: Any, count: int, layer: str, unit: str = "channel") -> int:
    """`index` if it names one of `count` channels (or directions), else a clear error."""
    if isinstance(index, bool) or not isinstance(index, numbers.Integral):
        raise RenderError(f"a {unit} is an integer, not {index!r}")
    if not 0 <= index < count:
        raise RenderError(
            f"{unit} {index} is out of range: layer {layer!r} has {count} {unit}s (0..{count - 1})"
        )
    return int(index)


def visualize(
    layer: str,
    channel: int | Sequence[int] | None = None,
    model: Model | str | os.PathLike[str] | None = None,
    *,
    direction: Any = None,
    size: int = DEFAULT_SIZE,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    transforms: bool = True,
    progress: bool = False,
) -> Image.Image:
    """A picture that excites `channel` of `layer` (a list: their sum), or a `direction`.

    `direction` is a vector over the layer's channels, e.g. a row of a Basis's components.
    Lucid's recipe: `steps` steps of Adam on a `size` x `size` Fourier image under random
    transforms; the same seed gives the same picture on one machine.
    """
    model = as_model(model)
    channels = model.info.layer(layer).channels
    weights = objective_weights(layer, channels, channel, direction)
    settings = RenderSettings(size, steps, seed, learning_rate, transforms)
    key = int(np.flatnonzero(weights[0])[0]) if direction is None else 0
    rendered = render(layer, weights, model, settings, [key], 1, progress)
    return to_image(rendered.pictures[0])


def render_spritemap(
    layer: str,
    model: Model | str | os.PathLike[str] | None = None,
    channels: Sequence[int] | None = None,
    *,
    basis: Basis | np.ndarray | str | None = None,
    size: int = DEFAULT_SIZE,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    transforms: bool = True,
    sprite_size: int | None = None,
    per_row: int | None = None,
    batch_size: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Spritemap:
    """A spritemap of feature visualizations: one sprite per channel (or `basis` direction).

    `channels` picks which to render (default: all); the others stay blank, and the
    manifest lists which were rendered. With `checkpoint` (an .npz path) the finished sprites
    are saved after every batch and a later call with the same settings resumes from them.
    """
    model = as_model(model)
    total = model.info.layer(layer).channels
    directions = resolve_basis(basis, layer, total)
    unit = directions.unit
    wanted = range(directions.k) if channels is None else list(dict.fromkeys(channels))
    wanted = [_check_channel(i, directions.k, layer, unit) for i in wanted]
    if not wanted:
        raise RenderError("channels is empty: pass None for all, or the indices to render")
    settings = RenderSettings(size, steps, seed, learning_rate, transforms)
    settings.check(model)
    sprite = settings.size if sprite_size is None else sprite_size
    sprite = check_int("sprite_size", sprite, 1, MAX_SIZE)
    per_row = math.ceil(math.sqrt(directions.k)) if per_row is None else per_row
    per_row = check_int("per_row", per_row, 1, directions.k)
    rows = math.ceil(directions.k / per_row)  # a grid too large to hold: refused before hours
    check_grid(per_row * sprite, rows * sprite, None, "the spritemap grid", RenderError)
    if checkpoint is not None and Path(checkpoint).suffix.lower() != ".npz":
        raise RenderError(f"a render checkpoint is an .npz file, not {str(checkpoint)!r}")
    key = {
        "layer": layer,
        "model_sha256": hashlib.sha256(
            model.source if isinstance(model.source, bytes) else model.source.read_bytes()
        ).hexdigest(),
        "basis": directions.fingerprint,
        "sprite_size": sprite,
        **settings.to_dict(),
    }
    state = RenderCheckpoint.open(checkpoint, key, sprite)
    todo = [index for index in wanted if index not in state.sprites]
    session = gradient_session(model, layer)
    batch = _default_batch(session) if batch_size is None else batch_size
    batch = check_int("batch_size", batch, 1, MAX_BATCH)
    components = directions.components
    with progress_bar(
        total=math.ceil(len(todo) / batch) * settings.steps,  # steps of whole batches
        unit="step",
        desc=f"featurevis {layer} ({len(wanted) - len(todo)} of {len(wanted)} done before)",
        disable=not progress,
    ) as bar:
        for first in range(0, len(todo), batch):
            indices = todo[first : first + batch]
            pictures, _, _, end = _render_batch(
                model, layer, settings, components[indices], indices, bar
            )
            state.add(indices, np.stack([_sprite(p, sprite) for p in pictures]), end)
            if checkpoint is not None:
                state.save(checkpoint)
    return _compose(state, directions, layer, model, settings, per_row)


def _sprite(picture: np.ndarray, size: int) -> np.ndarray:
    """A picture as a uint8 sprite of `size` pixels."""
    image = to_image(picture)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(image)


def _compose(
    state: RenderCheckpoint,
    directions: Basis,
    layer: str,
    model: Model,
    settings: RenderSettings,
    per_row: int,
) -> Spritemap:
    """The grid of every finished sprite (blank elsewhere) and its manifest."""
    size, count = state.sprite_size, directions.k
    rows = math.ceil(count / per_row)
    grid = blank_grid(rows, per_row, size)
    for index, sprite in state.sprites.items():
        top, left = (index // per_row) * size, (index % per_row) * size
        grid[top : top + size, left : left + size] = sprite
    rendered = sorted(state.sprites)
    manifest = {
        **manifest_header(METHOD, directions, model.info),
        "settings": settings.to_dict(),
        "rendered": rendered,
        "missing": [index for index in range(count) if index not in state.sprites],
        "renders": [{directions.unit: i, "objective": state.objectives[i]} for i in rendered],
    }
    return Spritemap(grid, per_row, size, count, layer=layer, manifest=manifest)
