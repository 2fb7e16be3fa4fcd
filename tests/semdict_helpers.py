"""Helpers for the semantic dictionary tests: numbered spritemaps, activations, references."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from semdict_onnx._results import SemanticDict
from semdict_onnx._spritemap import Spritemap

SPRITE_SIZE = 40
PER_ROW = 8


def sprite_colour(channel: int) -> tuple[int, int, int]:
    """A colour per channel, far from its neighbours' (distinct for 0..255)."""
    return ((channel * 53) % 200 + 40, (channel * 97) % 200 + 40, (channel * 29) % 200 + 40)


def numbered_grid(channels: int, per_row: int = PER_ROW, size: int = SPRITE_SIZE) -> np.ndarray:
    """A uint8 spritemap grid: sprite n filled with sprite_colour(n), its number drawn in a corner.

    The centre of every sprite stays plain colour so a test can tell sprites apart by it.
    """
    rows = -(-channels // per_row)
    grid = Image.new("RGB", (per_row * size, rows * size), (0, 0, 0))
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default(size=max(8, size // 4))
    for n in range(channels):
        row, col = divmod(n, per_row)
        left, top = col * size, row * size
        draw.rectangle((left, top, left + size - 1, top + size - 1), fill=sprite_colour(n))
        draw.text((left + 2, top + 1), str(n), fill=(0, 0, 0), font=font)
    return np.asarray(grid)


def numbered_spritemap(
    channels: int, layer: str | None = None, per_row: int = PER_ROW, size: int = SPRITE_SIZE
) -> Spritemap:
    """An in-memory spritemap of numbered, coloured sprites."""
    return Spritemap(numbered_grid(channels, per_row, size), per_row, size, channels, layer=layer)


def random_activations(rows: int, cols: int, channels: int, seed: int = 0) -> np.ndarray:
    """ReLU-like activations with exact zeros and exact ties, and one clear maximum."""
    rng = np.random.default_rng(seed)
    acts = np.maximum(rng.normal(0, 1, (rows, cols, channels)), 0).astype(np.float32)
    acts[rng.random(acts.shape) < 0.1] = np.float32(0.75)  # plenty of ties at one value
    return acts


def reference_top_k(activations: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by a full stable sort: strongest first, lower channel first among equals."""
    order = np.argsort(-activations, axis=-1, kind="stable")[..., :k]
    return order, np.take_along_axis(activations, order, axis=-1)


def picture(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth colourful RGB picture of the given size."""
    y, x = np.mgrid[0:height, 0:width]
    phase = seed * 0.7
    array = np.stack(
        [
            127 + 120 * np.sin(x / 23 + phase),
            127 + 120 * np.cos(y / 17 - phase),
            127 + 120 * np.sin((x + y) / 31),
        ],
        axis=-1,
    )
    return Image.fromarray(array.astype(np.uint8), "RGB")


def synthetic_dict(
    rows: int = 6,
    cols: int = 9,
    channels: int = 40,
    top_k: int = 4,
    seed: int = 0,
    spritemap: Spritemap | None | str = "numbered",
    **details: object,
) -> tuple[SemanticDict, np.ndarray]:
    """A SemanticDict from random activations (and those activations), without a model."""
    acts = random_activations(rows, cols, channels, seed)
    sprites = numbered_spritemap(channels) if spritemap == "numbered" else spritemap
    image = picture(cols * 40, rows * 40, seed)
    details = {"title": f"synthetic {seed}", **details}
    return SemanticDict.from_activations(
        acts, "layer_x", image, top_k, spritemap=sprites, **details
    ), acts
