"""One basis's reading of one image: `BasisView`, and the image's classes: `TopClass`.

A `BasisView` is the per-position top-k ranking of one basis (the neurons, NMF groups of the
image, or a given or fitted dictionary; see _bases.py) with what the page pictures it by, and
`to_dict` gives it as plain data. A `SemanticDict` (_results.py) holds one or more of them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ._bases import NEURONS, NMF_METHOD, Basis
from ._ranking import top_k_channels
from ._spritemap import Spritemap
from .errors import DictionaryError


class TopClass(NamedTuple):
    """One of the image's most probable classes."""

    index: int
    label: str
    probability: float


class BasisView:
    """One basis's dictionary of an image: per position its k strongest directions, as data.

    `channels` (int32, direction ids from 0 to `size` - 1) and `values` (float32) are shaped
    [rows, cols, k], strongest first. `basis` is None for the neurons. `maps` holds every
    direction's coefficients [rows, cols, size] where the page draws them over the image (NMF
    groups and other small bases); `typical` each direction's typical maximum over a dataset
    (from a spritemap manifest), for bars scaled per direction.
    """

    def __init__(
        self,
        channels: np.ndarray,
        values: np.ndarray,
        *,
        size: int,
        basis: Basis | None = None,
        spritemap: Spritemap | None = None,
        sprite_note: str | None = None,
        maps: np.ndarray | None = None,
        typical: np.ndarray | None = None,
    ) -> None:
        channels = np.asarray(channels)
        values = np.asarray(values, dtype=np.float32)
        if channels.ndim != 3 or channels.shape != values.shape or channels.shape[2] < 1:
            raise DictionaryError(
                f"channels and values must both be [rows, cols, k] arrays, not {channels.shape} "
                f"and {values.shape}"
            )
        if channels.min() < 0 or channels.max() >= size:
            raise DictionaryError(f"{_unit(basis)} ids must lie in 0..{size - 1}")
        if maps is not None and np.shape(maps) != (*channels.shape[:2], size):
            raise DictionaryError(f"maps must be [rows, cols, {size}], not {np.shape(maps)}")
        if typical is not None and np.shape(typical) != (size,):
            raise DictionaryError(f"typical maxima must be one per direction ({size})")
        self.channels = channels.astype(np.int32, copy=False)
        self.values = values
        self.size = int(size)
        self.basis = basis
        self.spritemap = spritemap
        self.sprite_note = sprite_note
        self.maps = None if maps is None else np.asarray(maps, np.float32)
        self.typical = None if typical is None else np.asarray(typical, np.float32)

    @classmethod
    def from_coefficients(
        cls, coefficients: np.ndarray, top_k: int, basis: Basis | None = None, **details: Any
    ) -> BasisView:
        """Rank [rows, cols, size] coefficients (for the neurons: activations).

        `details` as in the constructor.
        """
        channels, values = top_k_channels(coefficients, top_k)
        return cls(channels, values, size=np.shape(coefficients)[2], basis=basis, **details)

    @property
    def method(self) -> str:
        """The basis's method: "neurons", "nmf" or "given"."""
        return NEURONS if self.basis is None else self.basis.method

    @property
    def unit(self) -> str:
        """What one direction is called: channel, group or direction."""
        return _unit(self.basis)

    @property
    def label(self) -> str:
        """The short name on the page's basis switch."""
        if self.basis is None:
            return "neurons"
        if self.basis.method == NMF_METHOD:
            return "NMF groups" if self.basis.images_seen == 1 else "fitted NMF"
        return "given directions"

    @property
    def description(self) -> str:
        """A longer description, e.g. "6 NMF groups of mixed4d over 1 image"."""
        return f"{self.size} neurons" if self.basis is None else self.basis.describe()

    @property
    def top_k(self) -> int:
        """Directions shown per position."""
        return self.channels.shape[2]

    @property
    def max_value(self) -> float:
        """The largest value anywhere in this view: the bars' full length at image scale."""
        return float(self.values[..., 0].max())

    def entries(self, row: int, col: int) -> list[tuple[int, float]]:
        """The (direction, value) pairs shown at (row, col), strongest first."""
        return [
            (int(c), float(v))
            for c, v in zip(self.channels[row, col], self.values[row, col], strict=True)
        ]

    def to_dict(self) -> dict[str, Any]:
        """This view as plain JSON-able data (nested lists, rows then columns then rank)."""
        return {
            "method": self.method,
            "label": self.label,
            "unit": self.unit,
            "description": self.description,
            "size": self.size,
            "top_k": self.top_k,
            "channels": self.channels.tolist(),
            "values": self.values.astype(float).tolist(),
            "components": None
            if self.basis is None
            else self.basis.components.astype(float).tolist(),
            "typical_max": None if self.typical is None else self.typical.astype(float).tolist(),
        }


def _unit(basis: Basis | None) -> str:
    """What one direction of `basis` (None: the neurons) is called."""
    return "channel" if basis is None else basis.unit
