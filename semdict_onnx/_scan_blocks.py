"""The blocks of a dataset scan: what a scan is of, how images are cut into blocks, and how
one block becomes its partial state. Both engines use these; they differ in where
`scan_block` runs (here, or on a Ray actor: _ray_engine.py) and _dataset_scan.py folds the
results.

`plan_blocks` lists the images (a folder, local or a storage URI, searched recursively; a
list; any iterable), names each by its id (a path or URI names itself, an in-memory image its
place in the input) and cuts them into blocks; files the listing passes over are recorded as
skipped, and images a checkpoint covers are dropped. `scan_block` reads a block's images (the
unreadable skipped, with reasons), runs them through the model in batches, projects them
onto the basis and folds them into a fresh DatasetState.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._bases import NEURONS, Basis, resolve_basis
from ._checks import is_integer, positive_int
from ._dataset_state import DatasetState, StateKind
from ._defaults import DEFAULT_BATCH_SIZE
from ._image_scan import PREFETCH_BATCHES, Batch, batches, image_sources, numbered, readable
from ._images import to_batch
from ._model import Model
from ._prefetch import prefetched
from ._storage import is_storage_uri, list_images, read_image
from .errors import OptionError


@dataclass(frozen=True)
class ScanSettings:
    """What every block of one scan needs: the state's kind, the basis, the batch size."""

    kind: StateKind
    basis: Basis
    batch_size: int


@dataclass
class BlockPlan:
    """The blocks still to scan, the number of images listed, and the listing's skips."""

    blocks: Iterator[Iterator[tuple[str, Any]]]
    total: int | None
    listing: DatasetState


def scan_settings(
    model: Model,
    layer: str,
    examples_per_channel: int,
    basis: Basis | np.ndarray | str | None,
    sample_size: int = 0,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ScanSettings:
    """The settings of a scan of `layer` of `model`, checked."""
    channels = model.info.layer(layer).channels
    directions = resolve_basis(basis, layer, channels)
    if not is_integer(sample_size) or sample_size < 0:
        raise OptionError(f"sample_size must be an integer of at least 0, not {sample_size!r}")
    if not is_integer(seed):
        raise OptionError(f"seed must be an integer, not {seed!r}")
    kind = StateKind(
        layer=layer,
        channels=directions.k,
        layer_channels=channels,
        examples_per_channel=positive_int(examples_per_channel, "examples_per_channel"),
        basis=NEURONS if directions.method == NEURONS else directions.fingerprint,
        model=model_digest(model),
        sample_size=int(sample_size),
        seed=int(seed),
    )
    return ScanSettings(kind, directions, positive_int(batch_size, "batch_size"))


def model_digest(model: Model) -> str:
    """A short SHA-256 of the model's file: the same file wherever it is copied to."""
    digest = hashlib.sha256()
    with open(model.path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def plan_blocks(
    images: Any,
    kind: StateKind,
    block_size: int,
    done: DatasetState,
) -> BlockPlan:
    """The blocks of `images` still to scan (those `done` does not cover), and the listing."""
    listing = DatasetState(kind)

    class _NewSkips:
        def skip(self, name: str, reason: str) -> None:
            if not done.covers_any([name])[0]:
                listing.skip(name, reason)

    if is_storage_uri(images):
        items, total = list_images(images, _NewSkips())
    else:
        items, total = image_sources(images, _NewSkips())
    return BlockPlan(_blocks(items, block_size, done), total, listing)


def _blocks(
    items: Iterable[Any], block_size: int, done: DatasetState
) -> Iterator[Iterator[tuple[str, Any]]]:
    """Consecutive blocks of (id, item), without the images `done` already covers.

    Each block is read lazily from the items (so a block of in-memory images is never all in
    memory), and must be consumed before the next. Blocks are cut before the covered images
    are dropped, so a resumed scan cuts its remaining blocks exactly as the first run did.
    """
    pairs = numbered(items)
    for first in pairs:
        block = itertools.chain([first], itertools.islice(pairs, block_size - 1))
        if done.images_covered:
            block = (pair for pair in block if not done.covers_any([pair[0]])[0])
            head = next(block, None)
            if head is None:  # all done: no block to scan
                continue
            block = itertools.chain([head], block)
        yield block


def scan_block(
    pairs: Iterable[tuple[str, Any]],
    model: Model,
    settings: ScanSettings,
    *,
    read: Callable[[Any], Any] = read_image,
    after_batch: Callable[[Batch, DatasetState], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    read_threads: int = 1,
) -> DatasetState:
    """The partial state of one block of (id, image source) pairs.

    `read` loads a source (default: paths, URLs, storage URIs, bytes, arrays, PIL images);
    `on_progress(images, skipped)` hears of every batch read and every image skipped.
    As for scan_layer, the next batches are read, decoded and resized in a background thread
    while the model runs (_prefetch.py, at most PREFETCH_BATCHES ahead); `read_threads` > 1
    decodes that many images at once there (for a GPU, which one decoding thread cannot keep
    busy). The state is only touched on the calling thread, in the input's order.
    """
    state = DatasetState(settings.kind)
    layer, basis = settings.kind.layer, settings.basis
    height, width = model.input_size

    def model_inputs() -> Iterator[tuple[list[tuple[str, str]], Batch, np.ndarray | None]]:
        """(images skipped since the last batch, the batch, its input array); a last item
        without a batch carries the skips after it."""
        skipped: list[tuple[str, str]] = []
        readable_pairs = readable(
            pairs, lambda name, reason: skipped.append((name, reason)), read, read_threads
        )
        for batch in batches(readable_pairs, settings.batch_size):
            inputs = to_batch([image for _, image in batch], height, width)
            yield skipped[:], batch, inputs
            skipped.clear()
        yield skipped, [], None

    with contextlib.closing(prefetched(model_inputs(), PREFETCH_BATCHES)) as ahead:
        for skipped, batch, inputs in ahead:
            for name, reason in skipped:
                state.skip(name, reason)
                if on_progress is not None:
                    on_progress(1, 1)
            if not batch:
                continue
            acts = model.activations(inputs, [layer], settings.batch_size)[layer]
            coefficients = acts if basis.method == NEURONS else basis.project(acts)
            state.update(coefficients, [name for name, _ in batch], acts)
            if after_batch is not None:
                after_batch(batch, state)
            if on_progress is not None:
                on_progress(len(batch), 0)
    return state
