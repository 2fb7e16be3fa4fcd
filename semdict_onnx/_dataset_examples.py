"""Dataset examples: for each channel of a layer, the image patches that excite it most.

`build_spritemap` scans many images (_dataset_scan.py, on this process or on Ray) into a
`DatasetState`: per channel a bounded top list of (activation, image, row, col)
(_top_examples.py) and statistics of its per-image maximum (_channel_stats.py), both of which
merge exactly with those of other image sets (split a dataset across processes with
`scan_dataset` or `scan_examples`, merge, then `spritemap_from_examples`). Each winner's
picture is the patch of its source image that the position sees (the layer's receptive
field, clipped to the image), resized to the sprite size: the local engine keeps the winners'
images while it runs, otherwise they are read again by id. A channel that never fires (never
above 0) gets a blank sprite and is listed as dead in the manifest. With a `basis`
(_bases.py) the same is done per direction, ranking positions by their projection onto it
instead of by one channel; `own_patches_spritemap` does it for one image whose coefficients
are already known. A little over 400 lines: the three ways to a spritemap share the crop,
tile and grid helpers below, which belong with them.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ._bases import Basis, resolve_basis
from ._channel_stats import ChannelStats
from ._checks import positive_int
from ._dataset_scan import DEFAULT_BLOCK_SIZE, run_scan
from ._dataset_state import DatasetState
from ._defaults import DEFAULT_BATCH_SIZE
from ._engines import LOCAL, RayEngine
from ._image_scan import ScanReport
from ._images import ImageSource, is_url, load_image
from ._limits import check_grid, check_sprite_size
from ._model import Model, as_model
from ._receptive_field import ReceptiveField, receptive_fields
from ._scan_blocks import scan_settings
from ._spritemap import Spritemap, blank_grid, manifest_header
from ._storage import is_storage_uri, read_image
from ._top_examples import TopExamples
from .errors import ActivationsError, DownloadError, ExamplesError, ImageError, OptionError

DEFAULT_SPRITE_SIZE = 96
CROP_RESAMPLE = Image.Resampling.BILINEAR


@dataclass
class _Kept:
    """A winner's source image, shrunk to what its crops need, and its original size."""

    image: Image.Image
    size: tuple[int, int]


def build_spritemap(
    images: Any,
    layer: str,
    model: Model | str | os.PathLike[str] | None = None,
    sprite_size: int = DEFAULT_SPRITE_SIZE,
    per_row: int | None = None,
    examples_per_channel: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    crop_size: int | None = None,
    basis: Basis | np.ndarray | str | None = None,
    *,
    engine: str | RayEngine = LOCAL,
    block_size: int = DEFAULT_BLOCK_SIZE,
    checkpoint: str | os.PathLike[str] | None = None,
) -> Spritemap:
    """A spritemap of `layer` from dataset examples: each channel's most exciting image patches.

    `images` is a folder (searched recursively; also a storage URI such as s3://bucket/dir/),
    a list of paths or URIs, any iterable of images (paths, URLs, bytes, PIL images, arrays),
    or, on Ray, a ray.data.Dataset. Unreadable ones are skipped and summarised. Crops are the
    layer's receptive field, or `crop_size` model-input pixels square. `basis` (a Basis or a
    k x channels array) gives one sprite per direction instead, ranked by the projection onto
    it. The manifest also carries each direction's statistics over the images (max, mean,
    quantiles of its per-image maximum), which the page's dataset bar scale reads.
    `engine`, `block_size` and `checkpoint` are scan_dataset's: "ray" or RayEngine(...) runs
    the scan on Ray Data, with the same result.
    """
    model = as_model(model)
    field_ = receptive_fields(model, [layer])[layer]
    crop = _crop_field(field_, crop_size)
    settings = scan_settings(model, layer, examples_per_channel, basis, batch_size=batch_size)
    tile = _tile_size(sprite_size, examples_per_channel)
    grid_layout(settings.basis.k, sprite_size, per_row)  # over a limit: refused before the scan
    kept: dict[str, _Kept] = {}

    def keep_winners(batch: list[tuple[str, Image.Image]], block: DatasetState) -> None:
        wanted = block.top.referenced_ids()
        for image_id, image in batch:
            if image_id in wanted:
                kept[image_id] = _Kept(_shrink(image, crop, tile), image.size)

    def forget_losers(state: DatasetState) -> None:
        for image_id in set(kept) - state.top.referenced_ids():
            del kept[image_id]

    state = run_scan(
        images,
        model,
        settings,
        engine=engine,
        block_size=block_size,
        checkpoint=checkpoint,
        progress=progress,
        after_batch=keep_winners,
        after_merge=forget_losers,
    )
    reopen = _reopener(crop, tile)
    spritemap = _compose(
        state.top,
        field_,
        crop,
        sprite_size,
        per_row,
        lambda image_id: kept.get(image_id) or reopen(image_id),
        model,
        state.report(),
        settings.basis,
        state.stats,
    )
    return _with_folder_name(spritemap, images)


def scan_examples(
    images: Any,
    layer: str,
    model: Model | str | os.PathLike[str] | None = None,
    examples_per_channel: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    basis: Basis | np.ndarray | str | None = None,
) -> TopExamples:
    """The top examples alone, to split a dataset across processes and `merge` the results.

    scan_dataset gives them with channel statistics (and a sample), on either engine.
    """
    model = as_model(model)
    settings = scan_settings(model, layer, examples_per_channel, basis, batch_size=batch_size)
    state = run_scan(
        images,
        model,
        settings,
        engine=LOCAL,
        block_size=DEFAULT_BLOCK_SIZE,
        checkpoint=None,
        progress=progress,
    )
    return state.top


def spritemap_from_examples(
    top: TopExamples | DatasetState,
    model: Model | str | os.PathLike[str] | None = None,
    sprite_size: int = DEFAULT_SPRITE_SIZE,
    per_row: int | None = None,
    crop_size: int | None = None,
    basis: Basis | np.ndarray | str | None = None,
    *,
    images: Any = None,
) -> Spritemap:
    """The spritemap of merged top examples, re-reading each winner's image by its id (path).

    `top` is a TopExamples or a scan_dataset state (whose statistics and skipped images then
    go into the manifest too). `basis` is the one the examples were scanned with (default:
    the neurons). `images`, what the examples were scanned from, only names their folder in
    the manifest (and so on pages), as build_spritemap does.
    """
    model = as_model(model)
    state = top if isinstance(top, DatasetState) else None
    top = state.top if state is not None else top
    if top.layer is None:
        raise ExamplesError("these top examples do not say their layer; scan with a layer")
    field_ = receptive_fields(model, [top.layer])[top.layer]
    directions = resolve_basis(basis, top.layer, model.info.layer(top.layer).channels)
    if directions.k != top.channels:
        raise ExamplesError(
            f"the top examples have {top.channels} entries per position but the "
            f"{directions.describe()} of layer {top.layer!r} have {directions.k}; use the "
            "model and basis they were scanned with"
        )
    report = state.report() if state is not None else ScanReport(images_seen=top.images_seen)
    crop = _crop_field(field_, crop_size)
    reopen = _reopener(crop, _tile_size(sprite_size, top.k))
    stats = state.stats if state is not None else None
    spritemap = _compose(
        top, field_, crop, sprite_size, per_row, reopen, model, report, directions, stats
    )
    return _with_folder_name(spritemap, images)


def _reopener(crop: ReceptiveField, tile: int) -> Callable[[str], _Kept]:
    """Reads a winner's image again by its id (path, URL or storage URI), once, shrunk."""
    loaded: dict[str, _Kept] = {}

    def reopen(image_id: str) -> _Kept:
        if image_id not in loaded:
            try:
                image = read_image(image_id)
            except (ImageError, DownloadError) as exc:
                raise ImageError(
                    f"cannot re-read winning image {image_id!r} ({exc}); images given in memory "
                    "can only be cropped by build_spritemap on the local engine, which keeps "
                    "them while it runs"
                ) from exc
            loaded[image_id] = _Kept(_shrink(image, crop, tile), image.size)
        return loaded[image_id]

    return reopen


def own_patches_spritemap(
    image: ImageSource,
    coefficients: np.ndarray,
    layer: str,
    model: Model | str | os.PathLike[str] | None,
    basis: Basis,
    sprite_size: int = DEFAULT_SPRITE_SIZE,
    crop_size: int | None = None,
    input_size: tuple[int, int] | None = None,
) -> Spritemap:
    """One image's own patches: per direction, where its coefficients [rows, cols, k] peak.

    This is how groups fitted on a single image (_nmf.factorize) get their pictures without
    running the model again. `input_size` is the (height, width) the image went into the model
    at (default: the model's default size).
    """
    model = as_model(model)
    field_ = receptive_fields(model, [layer], input_size)[layer]
    crop = _crop_field(field_, crop_size)
    coefficients = np.asarray(coefficients, np.float32)
    if coefficients.shape != (*field_.grid, basis.k):
        raise ActivationsError(
            f"coefficients shaped {coefficients.shape} do not fit layer {layer!r} "
            f"({field_.grid[0]}x{field_.grid[1]} positions) and {basis.k} directions"
        )
    picture = load_image(image)
    top = TopExamples(basis.k, 1, layer)
    top.update(coefficients[None], ["image"])
    kept = _Kept(_shrink(picture, crop, _tile_size(sprite_size, 1)), picture.size)
    report = ScanReport(images_seen=1)
    return _compose(top, field_, crop, sprite_size, None, lambda _: kept, model, report, basis)


def _with_folder_name(spritemap: Spritemap, images: Any) -> Spritemap:
    """`spritemap`, its manifest naming the folder the images came from where there is one
    (the page says where the examples are from)."""
    folder = _folder_name(images)
    if folder is not None and spritemap.manifest is not None:
        spritemap.manifest["images_folder"] = folder
    return spritemap


def _folder_name(images: Any) -> str | None:
    """The name of the folder the images come from: `images` itself, or the one folder every
    path of a list of paths is in; None for anything else (one file, images in memory, ...).

    Only the folder's own name goes into the manifest and onto pages, never its whole path.
    """
    if isinstance(images, (str, os.PathLike)):
        folder = Path(images).expanduser()
        if not folder.is_dir():
            return None
    elif isinstance(images, (list, tuple)) and images:
        if not all(
            isinstance(item, (str, os.PathLike)) and not (is_url(item) or is_storage_uri(item))
            for item in images
        ):
            return None
        parents = {Path(item).expanduser().resolve().parent for item in images}
        if len(parents) != 1:
            return None
        folder = parents.pop()
    else:
        return None
    return folder.resolve().name or str(folder.resolve())


def grid_layout(channels: int, sprite_size: int, per_row: int | None) -> tuple[int, int]:
    """The (per_row, rows) of a grid of `channels` sprites (per_row None: near square),
    refused with the limit it breaks when its sprites or the grid would be too large."""
    positive_int(sprite_size, "sprite_size")
    check_sprite_size(sprite_size, OptionError)
    per_row = positive_int(per_row, "per_row") if per_row is not None else None
    per_row = per_row or math.ceil(math.sqrt(channels))
    rows = math.ceil(channels / per_row)
    check_grid(per_row * sprite_size, rows * sprite_size, None, "the spritemap grid", OptionError)
    return per_row, rows


def _tile_size(sprite_size: int, examples: int) -> int:
    """The side of one example's picture when `examples` share a sprite in a square mosaic."""
    positive_int(sprite_size, "sprite_size")
    positive_int(examples, "examples_per_channel")
    tile = sprite_size // math.ceil(math.sqrt(examples))
    if tile < 1:
        raise OptionError(f"{examples} examples do not fit in a {sprite_size} px sprite")
    return tile


def _crop_field(field_: ReceptiveField, crop_size: int | None) -> ReceptiveField:
    """The field crops are cut from: `crop_size` px square, else the receptive field capped at
    half the model input's shorter side (the effective field is far smaller than the
    theoretical one).
    """
    if crop_size is None:
        cap = min(field_.input_size) // 2
        return dataclasses.replace(field_, size=tuple(min(s, cap) for s in field_.size))
    side = positive_int(crop_size, "crop_size")
    return dataclasses.replace(field_, size=(side, side))


def _shrink(image: Image.Image, field_: ReceptiveField, tile: int) -> Image.Image:
    """`image` reduced to the resolution at which its field crops still fill a tile."""
    input_h, input_w = field_.input_size
    width = min(image.width, math.ceil(input_w * tile / min(field_.size[1], input_w)))
    height = min(image.height, math.ceil(input_h * tile / min(field_.size[0], input_h)))
    if (width, height) == image.size:
        return image
    return image.resize((width, height), Image.Resampling.BOX)


def _compose(
    top: TopExamples,
    field_: ReceptiveField,
    crop: ReceptiveField,
    sprite_size: int,
    per_row: int | None,
    source_of: Callable[[str], _Kept],
    model: Model,
    report: ScanReport,
    basis: Basis,
    stats: ChannelStats | None = None,
) -> Spritemap:
    """Paste every winner's crop into the grid and describe each sprite in the manifest.

    `stats`, where the scan kept them, go into the manifest as "channel_stats".
    """
    tile = _tile_size(sprite_size, top.k)
    per_side = sprite_size // tile
    per_row, rows = grid_layout(top.channels, sprite_size, per_row)
    grid = blank_grid(rows, per_row, sprite_size)
    sprites = []
    for channel in range(top.channels):
        top_row, left = (channel // per_row) * sprite_size, (channel % per_row) * sprite_size
        examples = []
        for i, example in enumerate(top.examples(channel)):
            kept = source_of(example.image_id)
            crop_box = crop.image_box(example.row, example.col, kept.image.size)
            picture = kept.image.crop(crop_box).resize((tile, tile), CROP_RESAMPLE)
            y, x = top_row + (i // per_side) * tile, left + (i % per_side) * tile
            grid[y : y + tile, x : x + tile] = np.asarray(picture)
            examples.append(
                {
                    "source": example.image_id,
                    "row": example.row,
                    "col": example.col,
                    "activation": example.value,
                    "box": list(crop.image_box(example.row, example.col, kept.size)),
                }
            )
        sprites.append(_sprite_entry(channel, examples))
    manifest = {
        **manifest_header("dataset examples", basis, model.info),
        "images_seen": report.images_seen,
        "skipped_count": report.skipped_count,
        "skipped": report.skipped,
        "examples_per_channel": top.k,
        "receptive_field": field_.to_dict(),
        "crop_size": list(crop.size),
        "dead_channels": top.dead,
        **({"channel_stats": stats.summary()} if stats is not None else {}),
        "sprites": sprites,
    }
    return Spritemap(grid, per_row, sprite_size, top.channels, layer=top.layer, manifest=manifest)


def _sprite_entry(channel: int, examples: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest entry of one sprite: its best example up front, then all of them."""
    best = examples[0] if examples else {}
    return {
        "channel": channel,
        "dead": not examples,
        "activation": best.get("activation", 0.0),
        "source": best.get("source"),
        "row": best.get("row"),
        "col": best.get("col"),
        "examples": examples,
    }
