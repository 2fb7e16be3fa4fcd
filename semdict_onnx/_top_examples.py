"""Per channel, the strongest activations seen so far: `TopExamples`, a mergeable state.

`TopExamples` keeps, per channel (or basis direction), a bounded top list of (activation,
image id, row, col), with ties broken by image id, then row, then column, so that the result
over a set of images depends neither on their order nor on how they were split: the states
of disjoint image sets merge exactly into the state over their union. It saves itself as
JSON. _dataset_examples.py fills one from a model's activations and pictures its winners.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import write_text_atomic
from ._checks import check_activation_batch, positive_int
from .errors import ExamplesError

TOP_EXAMPLES_KIND = "semdict_onnx.top_examples"
TOP_EXAMPLES_SCHEMA = 1


@dataclass(frozen=True)
class Example:
    """One winning position: its activation, the image it is in, and its row and column."""

    value: float
    image_id: str
    row: int
    col: int


class TopExamples:
    """Per channel, the `k` strongest positive activations seen so far, in a fixed-size state.

    Ties are broken by image id, then row, then column, so the result over a set of images does
    not depend on their order or on how they were split: merging the states of disjoint image
    sets gives exactly the state over their union.
    """

    def __init__(self, channels: int, k: int = 1, layer: str | None = None) -> None:
        self.channels, self.k = positive_int(channels, "channels"), positive_int(k, "k")
        self.layer = layer
        self.values = np.full((self.channels, self.k), -np.inf, np.float32)
        self.image_ids = np.full((self.channels, self.k), "", object)
        self.rows = np.zeros((self.channels, self.k), np.int32)
        self.cols = np.zeros((self.channels, self.k), np.int32)
        self.images_seen = 0

    def update(self, acts: np.ndarray, image_ids: Sequence[str]) -> None:
        """Fold in a batch of activations [N, H, W, channels] of the images `image_ids`."""
        check_activation_batch(acts, self.channels, image_ids, "TopExamples.update")
        count, height, width, _ = acts.shape
        flat = acts.reshape(-1, self.channels)
        positions = flat.shape[0]
        if self.k == 1:
            kth = flat.max(axis=0)
        elif positions > self.k:
            kth = np.partition(flat, positions - self.k, axis=0)[positions - self.k]
        else:
            kth = flat.min(axis=0)
        threshold = np.maximum(kth, self.values[:, -1])
        position, channel = np.nonzero((flat >= threshold) & (flat > 0))
        ids = np.asarray(list(image_ids), object)[position // (height * width)]
        candidates = (
            channel,
            flat[position, channel],
            ids,
            (position // width) % height,
            position % width,
        )
        self._keep_best(_concat(self._entries(), candidates))
        self.images_seen += count

    def merge(self, other: TopExamples) -> TopExamples:
        """A new state equal to the one over both states' images (which must be disjoint).

        The examples of a position in both count once; `images_seen` adds up.
        """
        if (self.channels, self.k, self.layer) != (other.channels, other.k, other.layer):
            raise ExamplesError(
                f"cannot merge top examples of layer {other.layer!r} ({other.channels} channels, "
                f"k={other.k}) into layer {self.layer!r} ({self.channels} channels, k={self.k})"
            )
        merged = TopExamples(self.channels, self.k, self.layer)
        merged._keep_best(_concat(self._entries(), other._entries()))
        merged.images_seen = self.images_seen + other.images_seen
        return merged

    def examples(self, channel: int) -> list[Example]:
        """The winners of `channel`, strongest first (empty for a dead channel)."""
        filled = np.nonzero(np.isfinite(self.values[channel]))[0]
        return [
            Example(
                value=float(self.values[channel, i]),
                image_id=str(self.image_ids[channel, i]),
                row=int(self.rows[channel, i]),
                col=int(self.cols[channel, i]),
            )
            for i in filled
        ]

    @property
    def dead(self) -> list[int]:
        """Channels that were never above 0 on any position of any image."""
        return [int(c) for c in np.nonzero(~np.isfinite(self.values[:, 0]))[0]]

    def referenced_ids(self) -> set[str]:
        """The image ids that hold at least one winner."""
        return set(self.image_ids[np.isfinite(self.values)].tolist())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; `from_dict` restores it exactly."""
        return {
            "kind": TOP_EXAMPLES_KIND,
            "schema": TOP_EXAMPLES_SCHEMA,
            "layer": self.layer,
            "channels": self.channels,
            "k": self.k,
            "images_seen": self.images_seen,
            "examples": [
                [[e.value, e.image_id, e.row, e.col] for e in self.examples(c)]
                for c in range(self.channels)
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TopExamples:
        """The state `to_dict` wrote."""
        if data.get("kind") != TOP_EXAMPLES_KIND or data.get("schema") != TOP_EXAMPLES_SCHEMA:
            raise ExamplesError(
                f"not version-{TOP_EXAMPLES_SCHEMA} top examples; write them with TopExamples.save"
            )
        try:
            state = cls(data["channels"], data["k"], data["layer"])
            state.images_seen = int(data["images_seen"])
            if len(data["examples"]) != state.channels:
                raise ExamplesError(f"{len(data['examples'])} example lists for {state.channels}")
            for channel, entries in enumerate(data["examples"]):
                for i, (value, image_id, row, col) in enumerate(entries[: state.k]):
                    state.values[channel, i] = value
                    state.image_ids[channel, i] = str(image_id)
                    state.rows[channel, i], state.cols[channel, i] = row, col
        except (KeyError, TypeError, ValueError) as exc:
            raise ExamplesError(f"malformed top examples ({exc})") from exc
        return state

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the state as JSON, atomically."""
        return write_text_atomic(path, json.dumps(self.to_dict()) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TopExamples:
        """Read a state `save` wrote."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ExamplesError(f"cannot read top examples from {str(path)!r} ({exc})") from exc
        return cls.from_dict(data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TopExamples):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def _entries(self) -> tuple[np.ndarray, ...]:
        """The filled slots as (channel, value, image id, row, col) arrays."""
        channel, slot = np.nonzero(np.isfinite(self.values))
        return (
            channel,
            self.values[channel, slot],
            self.image_ids[channel, slot],
            self.rows[channel, slot],
            self.cols[channel, slot],
        )

    def _keep_best(self, entries: tuple[np.ndarray, ...]) -> None:
        """Refill the state with the best `k` entries per channel, in the tie-broken order.

        An entry found twice (the same position of the same image) is kept once, so a state
        merged with itself keeps its examples.
        """
        channel, value, ids, rows, cols = entries
        order = np.lexsort((cols, rows, ids.astype(str), -value, channel))
        channel, value, ids, rows, cols = (a[order] for a in (channel, value, ids, rows, cols))
        repeat = (channel[1:] == channel[:-1]) & (value[1:] == value[:-1]) & (ids[1:] == ids[:-1])
        repeat &= (rows[1:] == rows[:-1]) & (cols[1:] == cols[:-1])
        once = np.concatenate([[True], ~repeat])[: len(channel)]
        channel, value, ids, rows, cols = (a[once] for a in (channel, value, ids, rows, cols))
        slot = np.arange(len(channel)) - np.searchsorted(channel, channel, side="left")
        keep = slot < self.k
        channel, slot = channel[keep], slot[keep]
        self.values.fill(-np.inf)
        self.image_ids.fill("")
        self.values[channel, slot] = value[keep]
        self.image_ids[channel, slot] = ids[keep]
        self.rows[channel, slot] = rows[keep]
        self.cols[channel, slot] = cols[keep]


def _concat(*parts: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Concatenate entry tuples field by field."""
    return tuple(np.concatenate([part[i] for part in parts]) for i in range(5))
