"""Pictures laid over a dictionary's image: group overlays and the total-activation heat map.

Each is a tiny RGBA PNG with one pixel per layer position (width = columns, height = rows),
which the page stretches over the image with crisp pixels so that they line up with the grid.
Groups get one hue each, evenly spaced around the colour wheel as in the Building Blocks
figures; a group's opacity at a position follows its coefficient there relative to its own
maximum. The heat map colours each position's total activation (the sum over channels)
relative to the layer's largest total, on a dark-to-light scale.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image

from ._picture import image_data_uri

MAX_GROUP_HUES = 12
GROUP_OPACITY = 0.65
HEAT_OPACITY = 0.75
# Anchors of the heat map's colour scale (magma-like): low is dark purple, high pale yellow.
HEAT_ANCHORS = np.array(
    [[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]], np.float64
)


def group_colours(count: int) -> list[tuple[int, int, int]]:
    """`count` distinct RGB colours, one hue per group, evenly spaced from red."""
    colours = []
    for index in range(count):
        red, green, blue = colorsys.hls_to_rgb(index / count, 0.5, 0.85)
        colours.append((round(255 * red), round(255 * green), round(255 * blue)))
    return colours


def hex_colour(colour: tuple[int, int, int]) -> str:
    """`(r, g, b)` as a CSS `#rrggbb` string."""
    return "#{:02x}{:02x}{:02x}".format(*colour)


def group_strengths(maps: np.ndarray) -> np.ndarray:
    """Coefficient maps [rows, cols, k] scaled to [0, 1] by each group's own maximum."""
    maps = np.asarray(maps, np.float64)
    peaks = maps.reshape(-1, maps.shape[2]).max(axis=0)
    return np.divide(maps, peaks, out=np.zeros_like(maps), where=peaks > 0)


def group_layers(maps: np.ndarray) -> np.ndarray:
    """RGBA uint8 [k, rows, cols, 4]: group g in its hue, opaque where it is strongest."""
    strengths = group_strengths(maps)
    colours = np.array(group_colours(maps.shape[2]), np.uint8)
    rows, cols, count = strengths.shape
    layers = np.zeros((count, rows, cols, 4), np.uint8)
    layers[..., :3] = colours[:, None, None, :]
    layers[..., 3] = np.round(255 * GROUP_OPACITY * np.moveaxis(strengths, 2, 0))
    return layers


def groups_blend(maps: np.ndarray) -> np.ndarray:
    """RGBA uint8 [rows, cols, 4]: every group's hue mixed by strength, opacity the strongest."""
    strengths = group_strengths(maps)
    colours = np.array(group_colours(maps.shape[2]), np.float64)
    total = strengths.sum(axis=2, keepdims=True)
    mixed = np.divide(strengths @ colours, total, out=np.zeros((*strengths.shape[:2], 3)),
                      where=total > 0)  # fmt: skip
    blend = np.empty((*strengths.shape[:2], 4), np.uint8)
    blend[..., :3] = np.round(mixed)
    blend[..., 3] = np.round(255 * GROUP_OPACITY * strengths.max(axis=2))
    return blend


def heat_layer(total: np.ndarray) -> np.ndarray:
    """RGBA uint8 [rows, cols, 4]: each position's total activation on the heat colour scale."""
    total = np.asarray(total, np.float64)
    peak = float(total.max())
    level = np.clip(total / peak, 0, 1) if peak > 0 else np.zeros_like(total)
    position = level * (len(HEAT_ANCHORS) - 1)
    low = np.minimum(np.floor(position).astype(int), len(HEAT_ANCHORS) - 2)
    fraction = (position - low)[..., None]
    rgb = HEAT_ANCHORS[low] * (1 - fraction) + HEAT_ANCHORS[low + 1] * fraction
    layer = np.empty((*total.shape, 4), np.uint8)
    layer[..., :3] = np.round(rgb)
    layer[..., 3] = round(255 * HEAT_OPACITY)
    return layer


def png_data_uri(rgba: np.ndarray) -> str:
    """An RGBA uint8 [rows, cols, 4] array as a PNG data URI (width = cols, height = rows)."""
    return image_data_uri(Image.fromarray(np.ascontiguousarray(rgba), "RGBA"))
