"""Dataset scans on Ray Data: blocks of images become partial states on a pool of actors.

Imported only for engine="ray" (the local engine and `import semdict_onnx` never import Ray).
The pass is _dataset_scan.py's; this module only schedules its blocks:

- A folder, a list of paths or URIs, or a storage URI: the driver lists the images and cuts
  them into blocks (`plan_blocks`, which drops what a checkpoint covers), and makes a dataset
  with one row, and one Ray block, per block of images (`ray.data.from_items`), so a retried
  task redoes exactly one block.
- A ray.data.Dataset the user built: its rows are images, batched into blocks of
  `block_size` by `map_batches`. A row names its image in a "path" column (read_images or
  read_binary_files with include_paths=True) or an "id" column, and holds it in a "bytes"
  column (read_binary_files: decoded by us, as on the local engine), an "image" column
  (read_images: pixels decoded by Ray), or neither (the actor reads the path). Rows a
  checkpoint covers are dropped by the actor before they are read.
- `map_batches(BlockScanner, compute=ActorPoolStrategy(size=workers), ...)`: each actor
  writes the model's bytes (shipped once through the object store, so nodes need no shared
  disk) to a local file and opens one ONNX Runtime session on it, on CUDA when the actor has
  GPUs, else on `cpus_per_worker` CPU threads. It turns each block into the block's
  DatasetState (`scan_block`) and returns it as bytes: activations never leave the actor.
- The driver iterates the results as they stream in (`iter_rows`) and hands the states to
  `fold`. Ray Data restarts an actor that dies and retries its task (actor pools default to
  max_restarts=-1 and max_task_retries=-1); a retried block's state covers the same images
  as the first, so if both arrive the fold counts it once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._dataset_state import DatasetState, covered_mask
from ._engines import RayEngine
from ._model import Model, load_model
from ._providers import CPU, CUDA
from ._scan_blocks import ScanSettings, plan_blocks, scan_block
from ._storage import INSTALL_HINT
from .errors import ImageError, MissingDependencyError, OptionError, SemdictError

if TYPE_CHECKING:
    import ray.data

STATE_COLUMN = "state"
ID_COLUMNS = ("path", "id")
CONTENT_COLUMNS = ("bytes", "image")


def import_ray() -> Any:
    """The ray module, or a MissingDependencyError saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingDependencyError(
            f"engine='ray' needs Ray Data, which is not installed ({exc}); {INSTALL_HINT} "
            "(or use the default engine='local')"
        ) from exc
    return ray


def ray_block_states(
    images: Any,
    model: Model,
    settings: ScanSettings,
    engine: RayEngine,
    block_size: int,
    done: DatasetState,
) -> tuple[Iterator[DatasetState], int | None, DatasetState]:
    """The block states as Ray computes them, the images listed (if known), the listing's skips."""
    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=engine.address)
    reads = isinstance(images, ray.data.Dataset)  # a user's dataset may read in Ray tasks
    _check_fits(ray.cluster_resources(), engine)
    workers = engine.workers or _default_workers(ray, engine, reads)
    quiet = contextlib.ExitStack()  # Ray Data's bars and logs off until the results are read
    quiet.enter_context(_quiet(ray))
    try:
        states, total, listing = _schedule(
            ray, images, model, settings, engine, workers, block_size, done
        )
    except BaseException:
        quiet.close()
        raise
    return _states(ray, states, quiet), total, listing


def _schedule(
    ray: Any,
    images: Any,
    model: Model,
    settings: ScanSettings,
    engine: RayEngine,
    workers: int,
    block_size: int,
    done: DatasetState,
) -> tuple[ray.data.Dataset | None, int | None, DatasetState]:
    """The dataset of block states (None: nothing to do), images listed, listing's skips."""
    common = {
        "model_file": [ray.put(Path(model.path).read_bytes())],
        "settings": settings,
        "threads": engine.cpus_per_worker,
        "gpu": engine.gpus_per_worker > 0,
    }
    if isinstance(images, ray.data.Dataset):
        covered = [ray.put(done.covered)] if done.images_covered else None
        dataset, batch_size = images, block_size
        total, listing = None, DatasetState(settings.kind)
        arguments = {**common, "done": covered}
    else:
        plan = plan_blocks(images, settings.kind, block_size, done)
        total, listing = plan.total, plan.listing
        rows = [{"ids": _ids(block)} for block in plan.blocks]
        if not rows:
            return None, total, listing
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
        batch_size, arguments = 1, common
        workers = min(workers, len(rows))  # an actor without a block would only cost
    results = dataset.map_batches(
        BlockScanner,
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=workers),
        fn_constructor_kwargs=arguments,
        num_cpus=engine.cpus_per_worker,
        num_gpus=engine.gpus_per_worker or None,
        batch_format="numpy",
    )
    return results, total, listing


def _check_fits(resources: dict[str, float], engine: RayEngine) -> None:
    """An OptionError if no node of the cluster could hold one actor (it would wait forever)."""
    for name, per_actor in (("CPU", engine.cpus_per_worker), ("GPU", engine.gpus_per_worker)):
        if per_actor > resources.get(name, 0):
            flag = f"--{name.lower()}s-per-worker"
            raise OptionError(
                f"each actor asks for {per_actor:g} {name}s ({flag}) but the Ray cluster has "
                f"{resources.get(name, 0):g}; ask for fewer, or add nodes that have them"
            )


def _default_workers(ray: Any, engine: RayEngine, reads: bool) -> int:
    """As many actors as the cluster's CPUs (or GPUs, when actors take GPUs) allow.

    With `reads` (a user's dataset, whose reading runs as Ray tasks) one CPU is left to them:
    actors holding every CPU would starve the reads and the scan would wait forever.
    """
    resources = ray.cluster_resources()
    if engine.gpus_per_worker:
        return int(resources.get("GPU", 0) // engine.gpus_per_worker)
    cpus = resources.get("CPU", 1) - (1 if reads else 0)
    return max(1, int(cpus // engine.cpus_per_worker))


def _ids(block: Iterator[tuple[str, Any]]) -> list[str]:
    """The image ids of a block, checked to be paths or URIs the actors can read."""
    ids = []
    for name, item in block:
        if not isinstance(item, (str, os.PathLike)):
            raise OptionError(
                f"the Ray engine reads every image by its path or URI, and {name} is a "
                f"{type(item).__name__} in memory; pass a folder, a list of paths or URIs, or a "
                "ray.data.Dataset (or use engine='local' for images in memory)"
            )
        ids.append(name)
    return ids


@contextlib.contextmanager
def _quiet(ray: Any) -> Iterator[None]:
    """Ray Data's progress bars and execution logs off (the scan shows its own bar)."""
    context = ray.data.DataContext.get_current()
    saved = (context.enable_progress_bars, context.print_on_execution_start)
    # Execution logs are INFO of "ray.data"; the note that its bars are off, a WARNING of
    # its progress module.
    levels = {"ray.data": logging.WARNING, "ray.data._internal.progress": logging.ERROR}
    loggers = {logging.getLogger(name): level for name, level in levels.items()}
    before = {logger: logger.level for logger in loggers}
    context.enable_progress_bars, context.print_on_execution_start = False, False
    for logger, level in loggers.items():
        logger.setLevel(level)
    try:
        yield
    finally:
        context.enable_progress_bars, context.print_on_execution_start = saved
        for logger, level in before.items():
            logger.setLevel(level)


def _states(
    ray: Any, results: ray.data.Dataset | None, quiet: contextlib.ExitStack
) -> Iterator[DatasetState]:
    """The block states as they stream in; `quiet` is closed once they have all come.

    An error of ours raised in an actor is raised here as itself, not wrapped by Ray.
    """
    try:
        for row in results.iter_rows() if results is not None else ():
            yield DatasetState.from_bytes(row[STATE_COLUMN], where="a block state from Ray")
    except ray.exceptions.RayError as exc:
        cause = _semdict_cause(exc)
        if cause is None:
            raise
        raise cause from exc
    finally:
        quiet.close()


def _semdict_cause(error: BaseException) -> SemdictError | None:
    """The first of our errors in `error`'s chain of causes (Ray wraps a task's errors)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, SemdictError):
            return error
        seen.add(id(error))
        error = getattr(error, "cause", None) or error.__cause__
    return None


class BlockScanner:
    """One actor of the pool: one ONNX Runtime session, turning blocks into their states.

    `model_file` holds the object reference of the model's bytes; `done`, for a user's
    dataset resumed from a checkpoint, that of the covered image hashes to pass over.
    """

    def __init__(
        self,
        model_file: list[Any],
        settings: ScanSettings,
        threads: int,
        gpu: bool,
        done: list[Any] | None = None,
    ) -> None:
        import ray

        self._folder = tempfile.TemporaryDirectory(prefix="semdict-model-")
        path = Path(self._folder.name) / "model.onnx"
        path.write_bytes(ray.get(model_file[0]))
        providers = [CUDA] if gpu else [CPU]
        self.model = load_model(path, providers=providers, threads=None if gpu else threads)
        self.settings = settings
        # On a GPU the actor's CPUs decode images; on the CPU they run the model.
        self.read_threads = threads if gpu else 1
        self.done = ray.get(done[0]) if done else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A block of images (one planned row, or a batch of a user's rows) -> its state.

        No row for a batch with nothing to scan (Ray may hand over an empty one).
        """
        pairs = self.pairs(batch)
        if not pairs:
            return {STATE_COLUMN: np.array([], dtype=object)}
        state = scan_block(pairs, self.model, self.settings, read_threads=self.read_threads)
        return {STATE_COLUMN: np.array([state.to_bytes()], dtype=object)}

    def pairs(self, batch: dict[str, np.ndarray]) -> list[tuple[str, Any]]:
        """The block's (id, source) pairs, without those a checkpoint covers."""
        if "ids" in batch and len(batch) == 1:  # planned blocks: the actor reads each path
            return [(str(name), str(name)) for ids in batch["ids"] for name in ids]
        id_column = next((c for c in ID_COLUMNS if c in batch), None)
        if id_column is None:
            raise ImageError(
                f"the dataset's rows have columns {sorted(batch)} but none of "
                f"{', '.join(ID_COLUMNS)} naming each image; read it with include_paths=True "
                "(ray.data.read_binary_files or read_images), or add an 'id' column of paths"
            )
        content = next((c for c in CONTENT_COLUMNS if c in batch), None)
        names = [str(name) for name in batch[id_column]]
        sources = batch[content] if content is not None else names
        keep = np.ones(len(names), bool)
        if self.done is not None:
            keep = ~covered_mask(self.done, names)
        return [(n, _source(s)) for n, s, k in zip(names, sources, keep, strict=True) if k]


def _source(value: Any) -> Any:
    """A row's image as load_image takes it (numpy bytes scalars become bytes)."""
    if isinstance(value, np.bytes_):
        return bytes(value)
    with contextlib.suppress(AttributeError):
        if value.dtype == object and value.ndim == 0:
            return value.item()
    return value
