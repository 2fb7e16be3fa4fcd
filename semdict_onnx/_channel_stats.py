"""Per channel, statistics of its per-image maximum over a dataset: `ChannelStats`, mergeable.

For each channel (or basis direction) and each image, the largest value over the image's
positions is one observation. `ChannelStats` keeps, over the images it has seen:
- the largest observation, exactly;
- their sum, exactly: each float32 is an integer mantissa times a power of two, and the
  mantissas are summed as integers per (channel, exponent), so the sum, and the mean read
  from it, come out the same bit for bit whatever the order images came in or states merged;
- a histogram of them on a fixed grid: a float32 truncated to HISTOGRAM_MANTISSA_BITS bits of
  mantissa (bfloat16's grid), counted per (channel, bucket). Quantiles are read from it.

Every part merges by integer addition or by a maximum, so the state of a set of images is
the same however the set was split and merged (associative, commutative). A quantile is the
nearest-rank one (the smallest observation with at least ceil(q * n) observations at or
below it), reported as the middle of its bucket, clipped to the channel's maximum (q = 1: the
maximum itself): within
QUANTILE_RELATIVE_ERROR (2^-8, 0.4%) of the exact nearest-rank quantile for normal floats,
and 0 for a quantile in the bucket of 0 (which holds 0 and denormals below 1e-40). The
histogram costs at most one entry per (channel, bucket) seen: about 128 buckets per power of
two that the maxima span.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from ._checks import positive_int
from .errors import ActivationsError, ExamplesError

HISTOGRAM_MANTISSA_BITS = 7
QUANTILE_RELATIVE_ERROR = 2.0 ** -(HISTOGRAM_MANTISSA_BITS + 1)
# The quantiles a summary lists; the page's dataset bar scale (_pipeline.py) is the 0.99 one.
DATASET_SCALE_QUANTILE = 0.99
SUMMARY_QUANTILES = (0.5, 0.9, DATASET_SCALE_QUANTILE)
_SHIFT = 23 - HISTOGRAM_MANTISSA_BITS  # float32 mantissa bits dropped by a bucket
_BUCKET_OFFSET = 1 << 31  # keeps a signed bucket positive inside a combined key
_EXPONENTS = 512  # frexp exponents of float32 (-148..128), offset to be positive
_MANTISSA_SCALE = 1 << 24  # frexp's mantissa in [0.5, 1) times this is an exact integer
_SUM_SCALE_BITS = 24 + 148  # 2^this times mantissa * 2^(exponent - 24) is an integer


class ChannelStats:
    """Max, exact mean and histogram quantiles of each channel's per-image maximum."""

    def __init__(self, channels: int) -> None:
        self.channels = positive_int(channels, "channels")
        self.count = 0
        self.maximum = np.full(self.channels, -np.inf, np.float32)
        empty = np.zeros(0, np.int64)
        self._sum_keys, self._sum_values = empty, empty.copy()
        self._bucket_keys, self._bucket_counts = empty.copy(), empty.copy()

    def update(self, per_image_max: np.ndarray) -> None:
        """Fold in observations [N images, channels]: each image's maximum per channel."""
        values = np.asarray(per_image_max)
        if values.ndim != 2 or values.shape[1] != self.channels:
            raise ExamplesError(
                f"channel statistics take [images, {self.channels}] maxima, got {values.shape}"
            )
        values = values.astype(np.float32)
        if not np.isfinite(values).all():
            raise ActivationsError(
                "the layer's values are not all finite (inf or NaN), so their statistics are "
                "undefined; check the model and the images"
            )
        channel = np.broadcast_to(np.arange(self.channels, dtype=np.int64), values.shape)
        mantissa, exponent = np.frexp(values)
        sum_keys = channel * _EXPONENTS + (exponent.astype(np.int64) + _EXPONENTS // 2)
        sum_values = (mantissa.astype(np.float64) * _MANTISSA_SCALE).astype(np.int64)
        self._sum_keys, self._sum_values = _add_counts(
            [self._sum_keys, sum_keys.ravel()], [self._sum_values, sum_values.ravel()]
        )
        bucket_keys = (channel << 32) + (_buckets(values) + _BUCKET_OFFSET)
        self._bucket_keys, self._bucket_counts = _add_counts(
            [self._bucket_keys, bucket_keys.ravel()],
            [self._bucket_counts, np.ones(values.size, np.int64)],
        )
        if len(values):
            self.maximum = np.maximum(self.maximum, values.max(axis=0))
        self.count += len(values)

    @classmethod
    def merged(cls, parts: list[ChannelStats]) -> ChannelStats:
        """The statistics over the images of all `parts` (which must not share an image)."""
        channels = {part.channels for part in parts}
        if len(channels) != 1:
            raise ExamplesError(f"cannot merge statistics of {sorted(channels)} channels")
        merged = cls(channels.pop())
        merged.count = sum(part.count for part in parts)
        merged.maximum = np.maximum.reduce([part.maximum for part in parts])
        merged._sum_keys, merged._sum_values = _add_counts(
            [p._sum_keys for p in parts], [p._sum_values for p in parts]
        )
        merged._bucket_keys, merged._bucket_counts = _add_counts(
            [p._bucket_keys for p in parts], [p._bucket_counts for p in parts]
        )
        return merged

    def merge(self, other: ChannelStats) -> ChannelStats:
        """A new state over both states' images."""
        return ChannelStats.merged([self, other])

    def mean(self) -> np.ndarray:
        """Each channel's mean per-image maximum (float64, correctly rounded; NaN if none)."""
        if self.count == 0:
            return np.full(self.channels, np.nan)
        totals = [0] * self.channels
        for key, value in zip(self._sum_keys.tolist(), self._sum_values.tolist(), strict=True):
            channel, exponent = divmod(key, _EXPONENTS)
            totals[channel] += value << (exponent - _EXPONENTS // 2 - 24 + _SUM_SCALE_BITS)
        scale = self.count << _SUM_SCALE_BITS
        return np.array([float(Fraction(total, scale)) for total in totals])

    def quantile(self, q: float) -> np.ndarray:
        """Each channel's nearest-rank `q` quantile, to QUANTILE_RELATIVE_ERROR (NaN if none)."""
        if not 0 <= q <= 1:
            raise ExamplesError(f"a quantile must be between 0 and 1, not {q!r}")
        if self.count == 0:
            return np.full(self.channels, np.nan, np.float32)
        rank = max(1, int(np.ceil(q * self.count)))
        # Every image adds one observation to every channel, so channel c's buckets hold the
        # cumulative counts from c * count to (c + 1) * count.
        targets = np.arange(self.channels, dtype=np.int64) * self.count + rank
        found = np.searchsorted(np.cumsum(self._bucket_counts), targets, side="left")
        buckets = (self._bucket_keys[found] & 0xFFFFFFFF) - _BUCKET_OFFSET
        if rank == self.count:  # the largest observation, known exactly
            return self.maximum.copy()
        return np.minimum(_bucket_middle(buckets), self.maximum)

    def summary(self, quantiles: tuple[float, ...] = SUMMARY_QUANTILES) -> dict[str, Any]:
        """Plain JSON data: images, max, mean and quantiles per channel, and the error bound."""
        return {
            "images": self.count,
            "max": _floats(self.maximum),
            "mean": _floats(self.mean()),
            "quantiles": {str(q): _floats(self.quantile(q)) for q in quantiles},
            "quantile_relative_error": QUANTILE_RELATIVE_ERROR,
        }

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The state as named arrays; `from_arrays` restores it exactly."""
        return {
            "count": np.array([self.count, self.channels], np.int64),
            "maximum": self.maximum,
            "sum_keys": self._sum_keys,
            "sum_values": self._sum_values,
            "bucket_keys": self._bucket_keys,
            "bucket_counts": self._bucket_counts,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ChannelStats:
        """The state `to_arrays` wrote."""
        count, channels = (int(v) for v in arrays["count"])
        state = cls(channels)
        state.count = count
        state.maximum = np.asarray(arrays["maximum"], np.float32)
        state._sum_keys = np.asarray(arrays["sum_keys"], np.int64)
        state._sum_values = np.asarray(arrays["sum_values"], np.int64)
        state._bucket_keys = np.asarray(arrays["bucket_keys"], np.int64)
        state._bucket_counts = np.asarray(arrays["bucket_counts"], np.int64)
        return state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChannelStats):
            return NotImplemented
        mine, theirs = self.to_arrays(), other.to_arrays()
        return all(np.array_equal(mine[name], theirs[name]) for name in mine)


def _buckets(values: np.ndarray) -> np.ndarray:
    """The histogram bucket of each float32: its bits with the low mantissa bits dropped.

    Monotone in the value: negative values get negative buckets (-1 holds the smallest
    magnitudes below 0), and both zeros bucket 0.
    """
    magnitude = (values.view(np.uint32).astype(np.int64) & 0x7FFFFFFF) >> _SHIFT
    return np.where(values < 0, -magnitude - 1, magnitude)


def _bucket_middle(buckets: np.ndarray) -> np.ndarray:
    """The middle of each bucket as float32 (0 for bucket 0, which holds zero)."""
    magnitude = np.where(buckets < 0, -buckets - 1, buckets)
    low = (magnitude << _SHIFT).astype(np.uint32).view(np.float32).astype(np.float64)
    high = ((magnitude + 1) << _SHIFT).astype(np.uint32).view(np.float32).astype(np.float64)
    middle = np.where(np.isfinite(high), (low + high) / 2, low)
    middle = np.where(buckets < 0, -middle, middle)
    return np.where(buckets == 0, 0.0, middle).astype(np.float32)


def _add_counts(keys: list[np.ndarray], values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Integer values summed per key, sorted by key; keys whose sum is 0 are dropped."""
    key, value = np.concatenate(keys), np.concatenate(values)
    if len(key) == 0:
        return key, value
    order = np.argsort(key, kind="stable")
    key, value = key[order], value[order]
    starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    key, value = key[starts], np.add.reduceat(value, starts)
    kept = value != 0
    return key[kept], value[kept]


def _floats(values: np.ndarray) -> list[float | None]:
    """JSON numbers (None for NaN)."""
    return [None if np.isnan(v) else float(v) for v in np.asarray(values, np.float64)]
