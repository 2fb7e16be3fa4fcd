"""A bounded, uniformly random sample of a layer's activation vectors: `ActivationSample`.

Every position of every image is a candidate: its vector of channel values. Each candidate
gets a pseudo-random 64-bit key computed from (seed, image id, row, col) alone, and the
sample is the `size` candidates with the smallest keys (ties broken by image id, row, col).
That is a uniform sample without replacement (bottom-k sampling), and it is a function of
the set of candidates only: states of any split of a dataset merge, in any order and
grouping, into exactly the sample one pass over the whole would draw, and merging a state
with itself changes nothing. `fit_basis` (_nmf.py) fits a dictionary on one.

Keys: an image id's BLAKE2b hash (keyed by the seed), mixed with the position by the
splitmix64 finalizer, both deterministic across machines and Python processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._checks import check_activation_batch, is_integer, positive_int
from .errors import ExamplesError

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def id_hashes(image_ids: Sequence[str], salt: str) -> np.ndarray:
    """A 64-bit BLAKE2b hash of each image id, keyed by `salt`, as uint64."""
    key = salt.encode()
    return np.array(
        [
            int.from_bytes(
                hashlib.blake2b(
                    str(image_id).encode("utf-8", "surrogatepass"), digest_size=8, key=key
                ).digest(),
                "little",
            )
            for image_id in image_ids
        ],
        np.uint64,
    )


def _splitmix(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer of uint64 values (wrapping arithmetic)."""
    z = values + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    return z ^ (z >> np.uint64(31))


class ActivationSample:
    """Up to `size` activation vectors of `channels` values, drawn uniformly from all positions.

    `images_seen` counts the images the candidates came from (merged states add theirs, so
    they must come from different images; a position in both states is kept once).
    """

    def __init__(self, size: int, channels: int, layer: str | None = None, seed: int = 0) -> None:
        self.size = positive_int(size, "sample size")
        self.channels = positive_int(channels, "channels")
        if not is_integer(seed):
            raise ExamplesError(f"the sample seed must be an integer, not {seed!r}")
        self.layer, self.seed = layer, int(seed)
        self.images_seen = 0
        self.keys = np.zeros(0, np.uint64)
        self.image_ids = np.zeros(0, object)
        self.rows = np.zeros(0, np.int32)
        self.cols = np.zeros(0, np.int32)
        self.vectors = np.zeros((0, self.channels), np.float32)

    def update(self, acts: np.ndarray, image_ids: Sequence[str]) -> None:
        """Fold in a batch of activations [N, H, W, channels] of the images `image_ids`."""
        check_activation_batch(acts, self.channels, image_ids, "a sample")
        count, height, width, _ = acts.shape
        positions = np.arange(height * width, dtype=np.uint64)
        keys = _splitmix(
            id_hashes(image_ids, f"sample {self.seed}")[:, None] ^ _splitmix(positions + 1)
        )
        keys = keys.ravel()
        chosen = _smallest(keys, self.size)
        if len(self.keys) == self.size:  # full: only keys up to the largest kept can enter
            chosen = chosen[keys[chosen] <= self.keys[-1]]
        index = np.arange(count * height * width)[chosen]
        image = index // (height * width)
        new = (
            keys[chosen],
            np.asarray(list(image_ids), object)[image],
            ((index // width) % height).astype(np.int32),
            (index % width).astype(np.int32),
            acts.reshape(-1, self.channels)[chosen].astype(np.float32),
        )
        self._keep_smallest([self._entries(), new])
        self.images_seen += count

    def merge(self, other: ActivationSample) -> ActivationSample:
        """A new sample over both samples' positions (a position in both counts once)."""
        mine = (self.size, self.channels, self.layer, self.seed)
        theirs = (other.size, other.channels, other.layer, other.seed)
        if mine != theirs:
            raise ExamplesError(
                f"cannot merge samples of different kinds (size, channels, layer, seed): "
                f"{theirs} into {mine}"
            )
        merged = ActivationSample(self.size, self.channels, self.layer, self.seed)
        merged._keep_smallest([self._entries(), other._entries()])
        merged.images_seen = self.images_seen + other.images_seen
        return merged

    def to_arrays(self) -> dict[str, Any]:
        """The state as named arrays (ids as a list of str); `from_arrays` restores it."""
        return {
            "meta": np.array([self.size, self.channels, self.seed, self.images_seen], np.int64),
            "keys": self.keys,
            "image_ids": [str(i) for i in self.image_ids],
            "rows": self.rows,
            "cols": self.cols,
            "vectors": self.vectors,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any], layer: str | None) -> ActivationSample:
        """The state `to_arrays` wrote."""
        size, channels, seed, images_seen = (int(v) for v in arrays["meta"])
        sample = cls(size, channels, layer, seed)
        sample.images_seen = images_seen
        sample.keys = np.asarray(arrays["keys"], np.uint64)
        sample.image_ids = np.array(list(arrays["image_ids"]) + [None], object)[:-1]
        sample.rows = np.asarray(arrays["rows"], np.int32)
        sample.cols = np.asarray(arrays["cols"], np.int32)
        sample.vectors = np.asarray(arrays["vectors"], np.float32).reshape(-1, channels)
        return sample

    def __len__(self) -> int:
        return len(self.keys)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ActivationSample):
            return NotImplemented
        mine, theirs = self.to_arrays(), other.to_arrays()
        return (self.layer == other.layer) and all(
            np.array_equal(np.asarray(mine[name]), np.asarray(theirs[name])) for name in mine
        )

    def _entries(self) -> tuple[np.ndarray, ...]:
        return (self.keys, self.image_ids, self.rows, self.cols, self.vectors)

    def _keep_smallest(self, parts: list[tuple[np.ndarray, ...]]) -> None:
        """Keep the `size` smallest (key, id, row, col) entries of `parts`, each once."""
        keys, ids, rows, cols, vectors = (
            np.concatenate([part[i] for part in parts]) for i in range(5)
        )
        order = np.argsort(keys, kind="stable")
        if np.any(keys[order][1:] == keys[order][:-1]):  # equal keys: break ties, find repeats
            order = np.lexsort((cols, rows, ids.astype(str), keys))
        keys, ids, rows, cols, vectors = (a[order] for a in (keys, ids, rows, cols, vectors))
        same = (keys[1:] == keys[:-1]) & (ids[1:] == ids[:-1])
        same &= (rows[1:] == rows[:-1]) & (cols[1:] == cols[:-1])
        kept = np.flatnonzero(np.concatenate([[True], ~same])[: len(keys)])[: self.size]
        self.keys, self.image_ids = keys[kept], ids[kept].astype(object)
        self.rows, self.cols, self.vectors = rows[kept], cols[kept], vectors[kept]


def _smallest(keys: np.ndarray, size: int) -> np.ndarray:
    """Indices of the keys up to the `size`-th smallest, ties included (all if <= `size`)."""
    if len(keys) <= size:
        return np.arange(len(keys))
    kth = np.partition(keys, size - 1)[size - 1]
    return np.flatnonzero(keys <= kth)
