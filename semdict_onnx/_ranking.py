"""Top-k ranking: at every position of one image's layer, its strongest channels.

Pure numpy, no model. `top_k_channels` ranks [rows, cols, channels] activations (or a basis's
coefficients) at every position, ties to the lower channel so the result is fully determined
(ReLU layers have many exact zeros); `strongest_position` is a dictionary's first selection;
`check_top_k` refuses a k the layer cannot give. Axes are named once: activations are
[rows, cols, channels] (rows = height, cols = width), and a position is always (row, col).
"""

from __future__ import annotations

import numpy as np

from ._checks import positive_int
from .errors import ActivationsError

# Up to this top_k, ranking takes k passes of argmax; beyond, a full sort is cheaper.
ARGMAX_TOP_K = 16


def top_k_channels(activations: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per position of [rows, cols, channels] activations, the k strongest channels and values.

    Strongest first; among equal values the lower channel comes first, so the result is fully
    determined (ReLU layers have many exact zeros). Returns int32 channel ids and float32 values,
    each shaped [rows, cols, k].
    """
    acts = np.asarray(activations)
    if acts.ndim != 3 or min(acts.shape) == 0:
        raise ActivationsError(
            f"activations must be one image's layer shaped [rows, cols, channels], "
            f"not {acts.shape}; take [0] of a batch"
        )
    check_top_k(k, acts.shape[2])
    acts = acts.astype(np.float32, copy=False)
    if not np.isfinite(acts).all():
        raise ActivationsError(
            "the activations contain NaN or infinity; check the model and the image"
        )
    rows, cols, size = acts.shape
    flat = acts.reshape(rows * cols, size)
    if k <= ARGMAX_TOP_K:
        # k passes of argmax, each taking out the channel found: argmax returns the first
        # of equal maxima, so ties go to the lower channel (0.05 ms for 14x14x528, k 4).
        remaining = flat.copy()
        positions = np.arange(len(flat))
        channels = np.empty((len(flat), k), np.intp)
        for rank in range(k):
            channels[:, rank] = remaining.argmax(axis=-1)
            remaining[positions, channels[:, rank]] = -np.inf
    else:  # a stable sort keeps equal values in channel order
        channels = np.argsort(-flat, axis=-1, kind="stable")[:, :k]
    values = np.take_along_axis(flat, channels, axis=-1)
    return channels.astype(np.int32).reshape(rows, cols, k), values.reshape(rows, cols, k)


def check_top_k(k: object, channels: int, layer: str | None = None) -> None:
    """Refuse a top_k that is not an integer from 1 to the layer's channel count."""
    where = f"the {channels} channels of {layer!r}" if layer else f"the {channels} channels"
    positive_int(k, "top_k", most=channels, where=f" ({where})")


def strongest_position(activations: np.ndarray) -> tuple[int, int]:
    """The (row, col) of the largest of [rows, cols, channels] activations (first in row order)."""
    acts = np.asarray(activations)
    row, col, _ = np.unravel_index(int(np.argmax(acts)), acts.shape)
    return int(row), int(col)
