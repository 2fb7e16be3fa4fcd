"""Running a model over many images: where they come from, which were skipped, and batches.

`scan_layer` is the loop fitted bases use: it takes a folder (searched recursively), a list of
paths, or any iterable of images, reads them one by one, skips (and records in a `ScanReport`)
those that cannot be read instead of crashing halfway, runs the model in batches with a tqdm
progress bar, and yields each batch's images and layer activations, so memory stays bounded
whatever the number of images. Reading, decoding and resizing the next batches happen in a
background thread while the model runs (_prefetch.py, at most PREFETCH_BATCHES ahead), with
the same values as one after the other. Dataset scans (_scan_blocks.py) read their blocks of
images with the same pieces: `image_sources`, `numbered`, `readable` and `batches`.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

from ._checks import positive_int
from ._images import IMAGE_SUFFIXES, is_url, load_image, to_batch
from ._paths import local_path
from ._prefetch import prefetched
from ._progress import progress_bar
from .errors import DownloadError, ImageError

if TYPE_CHECKING:
    from ._model import Model

MAX_LISTED_SKIPS = 50
# Batches read and resized ahead of the model: two keep it fed (measured in
# benchmarks/spritemap_overhead.py) and hold two batches' images and inputs in memory.
PREFETCH_BATCHES = 2
# Images read ahead per reading thread (readable with threads > 1).
READ_AHEAD_PER_THREAD = 4

Batch = list[tuple[str, Image.Image]]


class SkipRecorder(Protocol):
    """Anything that records skipped images: a ScanReport, a DatasetState."""

    def skip(self, name: str, reason: str) -> None: ...


@dataclass
class ScanReport:
    """What a scan read and what it had to skip (names of the first MAX_LISTED_SKIPS)."""

    images_seen: int = 0
    skipped_count: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)

    def skip(self, name: str, reason: str) -> None:
        """Record one image that could not be used."""
        self.skipped_count += 1
        if len(self.skipped) < MAX_LISTED_SKIPS:
            self.skipped.append({"source": name, "reason": reason})

    def summary(self) -> str:
        """One line: how many images were used and skipped, and which."""
        text = f"{self.images_seen} images read"
        if self.skipped_count:
            names = ", ".join(item["source"] for item in self.skipped)
            more = self.skipped_count - len(self.skipped)
            text += f"; skipped {self.skipped_count} that could not be read: {names}"
            text += f" and {more} more" if more else ""
        return text


def image_sources(images: Any, report: SkipRecorder) -> tuple[Iterable[Any], int | None]:
    """The items to scan and their number when known; files passed over go into `report`.

    A folder is searched recursively for IMAGE_SUFFIXES; other files in it are reported as
    skipped. A single path, URL, PIL image or array is one image; a 4-D array is a batch. A
    path that does not exist is an ImageError at once, not one skipped image.
    """
    folder = None
    if isinstance(images, (str, os.PathLike)) and not is_url(images):
        folder = local_path(images)
        if not folder.exists():
            raise ImageError(
                f"no such folder or image file: {str(folder)!r}; point --images / images= at a "
                "folder of photos (searched recursively) or one image"
            )
    if folder is not None and folder.is_dir():
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        found = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        for other in (p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES):
            report.skip(str(other), "not an image file (by its suffix)")
        if not found:
            raise ImageError(
                f"no images in folder {str(folder)!r} (searched recursively for "
                f"{', '.join(IMAGE_SUFFIXES)}; found {len(files)} other files); "
                "point --images / images= at a folder of photos"
            )
        return found, len(found)
    if isinstance(images, (str, os.PathLike, bytes, Image.Image)) or (
        isinstance(images, np.ndarray) and images.ndim < 4
    ):
        return [images], 1
    if not isinstance(images, Iterable):
        raise ImageError(
            f"cannot read images from a {type(images).__name__}: pass a folder, a list of "
            "paths, or an iterable of images"
        )
    return images, len(images) if hasattr(images, "__len__") else None


def scan_layer(
    images: Any,
    model: Model,
    layer: str,
    report: ScanReport,
    *,
    batch_size: int,
    progress: bool,
    desc: str,
    stacklevel: int = 3,
) -> Iterator[tuple[Batch, np.ndarray]]:
    """Yield each batch's (id, image) pairs and its `layer` activations [N, H, W, C].

    Unreadable images are recorded in `report` and counted by the progress bar. At the end a
    scan that could read nothing is an ImageError, and skipped images are one warning
    (`stacklevel` as in `warnings.warn`, counted from this generator: 3 is the caller's caller).
    """
    positive_int(batch_size, "batch_size")
    model.info.layer(layer)
    items, total = image_sources(images, report)
    bar = progress_bar(total=total, unit="img", desc=desc, disable=not progress)
    height, width = model.input_size

    def skip(image_id: str, reason: str) -> None:
        report.skip(image_id, reason)
        bar.set_postfix(skipped=report.skipped_count, refresh=False)
        bar.update(1)

    def model_inputs() -> Iterator[tuple[Batch, np.ndarray]]:
        """Each batch with its input array (a float array at the input size goes in as it is)."""
        for batch in batches(readable(numbered(items), skip), batch_size):
            yield batch, to_batch([image for _, image in batch], height, width)

    try:
        with contextlib.closing(prefetched(model_inputs(), PREFETCH_BATCHES)) as ahead:
            for batch, inputs in ahead:
                acts = model.activations(inputs, [layer], batch_size)[layer]
                yield batch, acts
                report.images_seen += len(batch)
                bar.update(len(batch))
    finally:
        bar.close()
    if report.images_seen == 0:
        raise ImageError(f"none of the images could be read: {report.summary()}")
    if report.skipped_count:
        warnings.warn(report.summary(), stacklevel=stacklevel)


def numbered(items: Iterable[Any]) -> Iterator[tuple[str, Any]]:
    """(id, item) pairs: a path or URL names itself, an in-memory image its place in the input."""
    for index, item in enumerate(items):
        yield image_id(item, index), item


def readable(
    pairs: Iterable[tuple[str, Any]],
    skip: Callable[[str, str], None],
    read: Callable[[Any], Image.Image] = load_image,
    threads: int = 1,
) -> Iterator[tuple[str, Image.Image]]:
    """(id, RGB image) for each item that `read` loads; the others go to `skip(id, reason)`.

    `threads` > 1 reads that many items at once, ahead of the consumer (PIL decodes without
    holding the GIL), at most READ_AHEAD_PER_THREAD per thread; the order stays the input's.
    """
    if threads <= 1:
        for name, item in pairs:
            outcome = _attempt(read, item)
            if isinstance(outcome, str):
                skip(name, outcome)
            else:
                yield name, outcome
        return
    window: collections.deque[tuple[str, Future]] = collections.deque()
    with ThreadPoolExecutor(threads, thread_name_prefix="semdict-read") as pool:
        for pair in itertools.chain(pairs, [None]):
            if pair is not None:
                window.append((pair[0], pool.submit(_attempt, read, pair[1])))
            while window and (pair is None or len(window) > threads * READ_AHEAD_PER_THREAD):
                name, future = window.popleft()
                outcome = future.result()
                if isinstance(outcome, str):
                    skip(name, outcome)
                else:
                    yield name, outcome


def _attempt(read: Callable[[Any], Image.Image], item: Any) -> Image.Image | str:
    """The image `read` makes of `item`, or why it could not (an unreadable image's reason)."""
    try:
        return read(item)
    except (ImageError, DownloadError) as exc:
        return str(exc)


def image_id(item: Any, index: int) -> str:
    """A path or URL names itself; an in-memory image is named by its place in the input."""
    return str(item) if isinstance(item, (str, os.PathLike)) else f"image #{index}"


def batches(pairs: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of at most `size` items."""
    batch = []
    for pair in pairs:
        batch.append(pair)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
