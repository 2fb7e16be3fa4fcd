"""What one pass over a dataset keeps: `DatasetState`, mergeable exactly, and its file format.

A `DatasetState` holds, for one layer and one basis (the neurons or a fitted one):
- per direction, the top examples (_top_examples.py);
- per direction, statistics of its per-image maximum (_channel_stats.py);
- optionally, a uniform sample of activation vectors (_activation_sample.py);
- which images it covers (a 64-bit hash of each image id, read or skipped), and the skipped
  ones with their reasons (the first MAX_LISTED_SKIPS by id) and their number.

States of disjoint sets of images merge, in any order and grouping, into exactly the state of
their union; a state merged with itself (a block that was computed twice, as when Ray retries
a task) is that state again; states that share only some images are an error, so no image is
ever counted twice. `to_bytes` and `from_bytes` write and read a state as an .npz archive of
plain arrays (no pickles), the form blocks travel in; `save` and `load` put it in a file (a
checkpoint, _checkpoint.py, is one). `StateKind` says what a state is about; only states of
one kind merge.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._activation_sample import ActivationSample, id_hashes
from ._atomic import write_bytes_atomic
from ._channel_stats import ChannelStats
from ._image_scan import MAX_LISTED_SKIPS, ScanReport
from ._storage import is_storage_uri, read_bytes
from ._storage import write_bytes_atomic as write_uri_atomic
from ._top_examples import TopExamples
from .errors import ExamplesError

STATE_FORMAT = "semdict_onnx.dataset_state/1"
_COVER_SALT = "image id"


@dataclass(frozen=True)
class StateKind:
    """What a state describes: only states of one kind merge, or resume one another.

    `channels` are the directions ranked (the layer's channels, or a basis's directions) and
    `layer_channels` the layer's own, which the sample's vectors have; `basis` is "neurons"
    or a basis fingerprint; `model` a digest of the ONNX file; `sample_size` 0 keeps no sample.
    """

    layer: str
    channels: int
    layer_channels: int
    examples_per_channel: int
    basis: str
    model: str
    sample_size: int = 0
    seed: int = 0

    def differences(self, other: StateKind) -> list[str]:
        """The fields in which `other` differs from this kind, as 'name: mine vs theirs'."""
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        return [f"{k}: {mine[k]!r} vs {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]


class DatasetState:
    """Top examples, channel statistics and (optionally) a sample over a set of images."""

    def __init__(self, kind: StateKind) -> None:
        self.kind = kind
        self.top = TopExamples(kind.channels, kind.examples_per_channel, kind.layer)
        self.stats = ChannelStats(kind.channels)
        self.sample = (
            ActivationSample(kind.sample_size, kind.layer_channels, kind.layer, kind.seed)
            if kind.sample_size
            else None
        )
        self.covered = np.zeros(0, np.uint64)
        self.skipped: list[dict[str, str]] = []
        self.skipped_count = 0

    @property
    def images_seen(self) -> int:
        """How many images were read and folded in (not counting skipped ones)."""
        return self.top.images_seen

    @property
    def images_covered(self) -> int:
        """How many images this state accounts for: read or skipped."""
        return len(self.covered)

    def update(
        self, coefficients: np.ndarray, image_ids: Sequence[str], acts: np.ndarray | None = None
    ) -> None:
        """Fold in a batch: the values ranked [N, H, W, directions] of `image_ids`.

        `acts` are the raw activations the sample draws from, when a basis made the
        coefficients (default: the coefficients themselves).
        """
        self._cover(image_ids)
        self.top.update(coefficients, image_ids)
        self.stats.update(coefficients.max(axis=(1, 2)))
        if self.sample is not None:
            self.sample.update(coefficients if acts is None else acts, image_ids)

    def skip(self, image_id: str, reason: str) -> None:
        """Record one image that could not be used, and why."""
        self._cover([image_id])
        self.skipped_count += 1
        self.skipped = _first_skips([self.skipped, [{"source": image_id, "reason": reason}]])

    def covers_any(self, image_ids: Sequence[str]) -> np.ndarray:
        """For each image id, whether this state already accounts for it."""
        return covered_mask(self.covered, image_ids)

    @classmethod
    def merged(cls, states: Sequence[DatasetState]) -> DatasetState:
        """The state over the images of all `states`.

        A state covering exactly the images of another is taken to be a repeat of it and
        counts once; states sharing only some images are an ExamplesError.
        """
        if not states:
            raise ExamplesError("no states to merge")
        unique: dict[bytes, DatasetState] = {}
        for state in states:
            if state.kind != states[0].kind:
                raise ExamplesError(
                    "cannot merge dataset states of different scans ("
                    + "; ".join(states[0].kind.differences(state.kind))
                    + "); merge states of the same layer, basis, model and sample settings"
                )
            unique.setdefault(state.covered.tobytes(), state)
        parts = [state for state in unique.values() if state.images_covered] or [states[0]]
        merged = cls(states[0].kind)
        merged.covered = np.sort(np.concatenate([p.covered for p in parts]), kind="stable")
        repeated = int(np.count_nonzero(merged.covered[1:] == merged.covered[:-1]))
        if repeated:
            raise ExamplesError(
                f"{repeated} images are in more than one of the states merged (or were given "
                "twice): states must cover different images; list each image once"
            )
        top = parts[0].top
        for part in parts[1:]:
            top = top.merge(part.top)
        merged.top = top
        merged.stats = ChannelStats.merged([p.stats for p in parts])
        if merged.sample is not None:
            sample = parts[0].sample
            for part in parts[1:]:
                sample = sample.merge(part.sample)
            merged.sample = sample
        merged.skipped_count = sum(p.skipped_count for p in parts)
        merged.skipped = _first_skips([p.skipped for p in parts])
        return merged

    def merge(self, other: DatasetState) -> DatasetState:
        """A new state over both states' images (see `merged`)."""
        return DatasetState.merged([self, other])

    def report(self) -> ScanReport:
        """How many images were read and which were skipped, as a scan reports it."""
        return ScanReport(self.images_seen, self.skipped_count, [dict(s) for s in self.skipped])

    def to_bytes(self) -> bytes:
        """The state as an .npz archive of plain arrays; `from_bytes` restores it exactly."""
        meta = {
            "format": STATE_FORMAT,
            "kind": dataclasses.asdict(self.kind),
            "skipped": self.skipped,
            "skipped_count": self.skipped_count,
            "top_images_seen": self.top.images_seen,
        }
        arrays: dict[str, np.ndarray] = {
            "meta": np.frombuffer(json.dumps(meta).encode(), np.uint8),
            "covered": self.covered,
            "top_values": self.top.values,
            "top_rows": self.top.rows,
            "top_cols": self.top.cols,
            **_packed("top_ids", self.top.image_ids.ravel().tolist()),
        }
        arrays.update({f"stats_{k}": v for k, v in self.stats.to_arrays().items()})
        if self.sample is not None:
            for name, value in self.sample.to_arrays().items():
                if name == "image_ids":
                    arrays.update(_packed("sample_ids", value))
                else:
                    arrays[f"sample_{name}"] = value
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "a dataset state") -> DatasetState:
        """The state `to_bytes` wrote; `where` names its origin in errors."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
            meta = json.loads(arrays["meta"].tobytes().decode())
            if meta.get("format") != STATE_FORMAT:
                raise ExamplesError(f"{where} is not a {STATE_FORMAT} archive")
            state = cls(StateKind(**meta["kind"]))
            state.covered = arrays["covered"].astype(np.uint64)
            state.skipped, state.skipped_count = meta["skipped"], int(meta["skipped_count"])
            top = state.top
            top.values = arrays["top_values"].astype(np.float32)
            top.rows, top.cols = arrays["top_rows"], arrays["top_cols"]
            ids = _unpacked(arrays, "top_ids")
            top.image_ids = np.array(ids + [None], object)[:-1].reshape(top.values.shape)
            top.images_seen = int(meta["top_images_seen"])
            stats = {k[len("stats_") :]: v for k, v in arrays.items() if k.startswith("stats_")}
            state.stats = ChannelStats.from_arrays(stats)
            if state.sample is not None:
                sample = {
                    k[len("sample_") :]: v for k, v in arrays.items() if k.startswith("sample_")
                }
                sample["image_ids"] = _unpacked(arrays, "sample_ids")
                state.sample = ActivationSample.from_arrays(sample, state.kind.layer)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            if isinstance(exc, ExamplesError):
                raise
            raise ExamplesError(f"{where} is not a readable dataset state ({exc})") from exc
        return state

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state to `path` (a file path or a storage URI such as s3://...), atomically."""
        if is_storage_uri(path):
            write_uri_atomic(str(path), self.to_bytes())
        else:
            write_bytes_atomic(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DatasetState:
        """The state `save` wrote to `path` (an ExamplesError if it cannot be read)."""
        try:
            if is_storage_uri(path):
                data = read_bytes(str(path))
            else:
                data = Path(path).expanduser().read_bytes()
        except OSError as exc:
            raise ExamplesError(f"cannot read a dataset state from {str(path)!r} ({exc})") from exc
        return cls.from_bytes(data, where=str(path))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatasetState):
            return NotImplemented
        return (
            self.kind == other.kind
            and np.array_equal(self.covered, other.covered)
            and self.top == other.top
            and self.stats == other.stats
            and self.sample == other.sample
            and (self.skipped, self.skipped_count) == (other.skipped, other.skipped_count)
        )

    def _cover(self, image_ids: Sequence[str]) -> None:
        """Add images to the covered set; an image already in it is an ExamplesError."""
        hashes = np.sort(id_hashes(image_ids, _COVER_SALT))
        both = np.sort(np.concatenate([self.covered, hashes]), kind="stable")
        if np.any(both[1:] == both[:-1]):
            counts = collections.Counter(image_ids)
            before = self.covers_any(image_ids)
            twice = [i for i, b in zip(image_ids, before, strict=True) if b or counts[i] > 1]
            raise ExamplesError(
                f"image {(twice or ['?'])[0]!r} was given more than once; list each "
                "image once (a dataset state counts every image once)"
            )
        self.covered = both


def covered_mask(covered: np.ndarray, image_ids: Sequence[str]) -> np.ndarray:
    """For each image id, whether the sorted id hashes `covered` (a state's) hold it."""
    hashes = id_hashes(image_ids, _COVER_SALT)
    if not len(covered):
        return np.zeros(len(hashes), bool)
    found = np.minimum(np.searchsorted(covered, hashes), len(covered) - 1)
    return covered[found] == hashes


def _first_skips(lists: list[list[dict[str, str]]]) -> list[dict[str, str]]:
    """The skip records of `lists`, sorted by image id then reason, the first MAX_LISTED_SKIPS."""
    records = sorted(
        (dict(record) for part in lists for record in part),
        key=lambda r: (r["source"], r["reason"]),
    )
    return records[:MAX_LISTED_SKIPS]


def _packed(name: str, strings: list[str]) -> dict[str, np.ndarray]:
    """Strings as one UTF-8 byte array and their end offsets (no pickled objects)."""
    encoded = [str(s).encode("utf-8", "surrogatepass") for s in strings]
    return {
        f"{name}_utf8": np.frombuffer(b"".join(encoded), np.uint8),
        f"{name}_ends": np.cumsum([len(e) for e in encoded], dtype=np.int64),
    }


def _unpacked(arrays: dict[str, np.ndarray], name: str) -> list[str]:
    """The strings `_packed` stored under `name`."""
    data, ends = arrays[f"{name}_utf8"].tobytes(), arrays[f"{name}_ends"].tolist()
    starts = [0, *ends[:-1]]
    return [data[a:b].decode("utf-8", "surrogatepass") for a, b in zip(starts, ends, strict=True)]
