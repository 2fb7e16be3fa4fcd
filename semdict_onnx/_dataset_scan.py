"""One pass over a dataset into a `DatasetState`, the same on both engines but for scheduling.

The images are planned into blocks and each block becomes its partial state
(_scan_blocks.py): block after block in this process on the local engine, on a pool of Ray
actors on the Ray engine (_ray_engine.py, imported only then). `fold` merges block states
into the running state as they come (a block that arrives twice, as from a retried task,
counts once) and checkpoints it now and then (_checkpoint.py); the driver holds states, never
activations. `run_scan` drives a pass and shows its progress (images done, images per second)
on the driver; `scan_dataset` is the public entry, build_spritemap (_dataset_examples.py)
calls `run_scan`."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from ._bases import Basis
from ._checkpoint import Checkpoint
from ._checks import positive_int
from ._dataset_state import DatasetState
from ._defaults import DEFAULT_BATCH_SIZE
from ._engines import LOCAL, RayEngine, resolve_engine
from ._image_scan import Batch
from ._model import Model, as_model
from ._progress import progress_bar
from ._scan_blocks import BlockPlan, ScanSettings, plan_blocks, scan_block, scan_settings
from .errors import ImageError, OptionError

DEFAULT_BLOCK_SIZE = 256
# Block states merged at once on the Ray engine (merging costs grow with the running state).
MERGE_BATCH = 16


def scan_dataset(
    images: Any,
    layer: str,
    model: Model | str | os.PathLike[str] | None = None,
    *,
    examples_per_channel: int = 1,
    basis: Basis | np.ndarray | str | None = None,
    sample_size: int = 0,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    block_size: int = DEFAULT_BLOCK_SIZE,
    engine: str | RayEngine = LOCAL,
    checkpoint: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> DatasetState:
    """One pass over many images: per-direction top examples and statistics, and a sample.

    `images` is a folder (local or a storage URI such as s3://bucket/photos/, searched
    recursively), a list of paths or URIs, any iterable of images, or (engine="ray") a
    ray.data.Dataset. `sample_size` > 0 also draws that many activation vectors uniformly
    from all positions, for fit_basis. `engine` is "local" (this process) or "ray" /
    RayEngine(...) (Ray Data; `pip install 'semdict_onnx[ray]'`); both give the same state.
    `checkpoint` is a folder (or storage URI) where the state is saved as it grows, and from
    which a stopped scan resumes. Images are read and run in blocks of `block_size`.
    """
    model = as_model(model)
    settings = scan_settings(
        model, layer, examples_per_channel, basis, sample_size, seed, batch_size
    )
    return run_scan(
        images,
        model,
        settings,
        engine=engine,
        block_size=block_size,
        checkpoint=checkpoint,
        progress=progress,
    )


def run_scan(
    images: Any,
    model: Model,
    settings: ScanSettings,
    *,
    engine: str | RayEngine,
    block_size: int,
    checkpoint: str | os.PathLike[str] | None,
    progress: bool,
    after_batch: Callable[[Batch, DatasetState], None] | None = None,
    after_merge: Callable[[DatasetState], None] | None = None,
) -> DatasetState:
    """The state of one pass over `images` on `engine`, resumed from `checkpoint` if saved.

    `after_batch` sees each batch of (id, image) the local engine read, and its block's state
    so far; `after_merge` the running state after each merge. Skipped images are one
    warning; none readable, an error.
    """
    ray_engine = resolve_engine(engine)
    positive_int(block_size, "block_size")
    store = Checkpoint(checkpoint, settings.kind) if checkpoint is not None else None
    start = (store.load() if store is not None else None) or DatasetState(settings.kind)
    desc = f"dataset examples {settings.kind.layer}"
    if ray_engine is None:
        if type(images).__module__.startswith("ray.data"):
            raise OptionError("a ray.data.Dataset is scanned by engine='ray', not 'local'")
        plan = plan_blocks(images, settings.kind, block_size, start)
        bar = Progress(plan.total, start, desc, progress)
        states: Iterable[DatasetState] = (
            scan_block(block, model, settings, after_batch=after_batch, on_progress=bar.advance)
            for block in plan.blocks
        )
        merge_every = 1
    else:
        from ._ray_engine import ray_block_states

        ray_states, total, listing = ray_block_states(
            images, model, settings, ray_engine, block_size, start
        )
        plan = BlockPlan(iter(()), total, listing)
        bar = Progress(total, start, desc, progress)
        states = bar.counted(ray_states)
        merge_every = MERGE_BATCH
    bar.advance(0, plan.listing.skipped_count)
    try:
        state = fold(
            itertools.chain([plan.listing], states), start, store, merge_every, after_merge
        )
    finally:
        bar.close()
    report = state.report()
    if report.images_seen == 0:
        raise ImageError(f"none of the images could be read: {report.summary()}")
    if report.skipped_count:
        warnings.warn(report.summary(), stacklevel=3)  # the caller's caller
    return state


class Progress:
    """The scan's tqdm bar on the driver: images done (read or skipped) and their rate in
    images per second, starting past the images a resumed checkpoint covers, and how many
    were skipped."""

    def __init__(self, total: int | None, start: DatasetState, desc: str, show: bool) -> None:
        self._bar = progress_bar(total=total, unit="img", desc=desc, disable=not show)
        self._skipped = start.skipped_count
        self._bar.update(min(start.images_covered, total or start.images_covered))

    def advance(self, images: int, skipped: int = 0) -> None:
        """`images` more done, `skipped` of them skipped."""
        self._bar.update(images)
        if skipped:
            self._skipped += skipped
            self._bar.set_postfix(skipped=self._skipped, refresh=False)

    def counted(self, states: Iterable[DatasetState]) -> Iterator[DatasetState]:
        """The block states, advancing the bar by each one's images as it arrives."""
        for state in states:
            self.advance(state.images_covered, state.skipped_count)
            yield state

    def close(self) -> None:
        """Finish the bar."""
        self._bar.close()


def fold(
    states: Iterable[DatasetState],
    start: DatasetState,
    store: Checkpoint | None,
    merge_every: int,
    after_merge: Callable[[DatasetState], None] | None,
) -> DatasetState:
    """`start` merged with every state of `states`, checkpointed when due and at the end.

    A state covering exactly the images of one already folded in is a repeat (a retried
    block) and is passed over. Whatever stops the fold (an error, Ctrl-C) first saves what
    was merged.
    """
    total, pending, seen = start, [], set()

    def merge() -> None:
        nonlocal total, pending
        if pending:
            total = DatasetState.merged([total, *pending])
            pending = []
            if after_merge is not None:
                after_merge(total)

    try:
        for state in states:
            key = hashlib.blake2b(state.covered.tobytes(), digest_size=16).digest()
            if not state.images_covered or key in seen:
                continue
            seen.add(key)
            pending.append(state)
            due = store is not None and store.due()
            if len(pending) >= merge_every or due:
                merge()
            if due:
                store.save(total)
        merge()
    except BaseException:
        if store is not None and seen:
            with contextlib.suppress(Exception):  # the first error is the one to report
                merge()
                store.save(total)
        raise
    if store is not None:
        store.save(total)
    return total
