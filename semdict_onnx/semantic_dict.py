"""Semantic dictionaries: per-position top-k channels (or basis directions) of one image's layer.

This module owns the data: `top_k_channels` (pure numpy, no model) ranks the channels at every
position; a `BasisView` is one basis's ranking (neurons, NMF groups of this image, or a given or
fitted dictionary; see bases.py) with its pictures; `SemanticDict` holds one or more views
together with the image and what the page needs to show it; `semantic_dict` /
`show_semantic_dict` run a model to make one, and `gallery` many. The HTML itself is
`render.py`'s concern.

Axes are named once: activations are [rows, cols, channels] (rows = height, cols = width), and
a position is always (row, col).
"""

from __future__ import annotations

import functools
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote, urlsplit

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from . import render
from .atomic import write_bytes_atomic, write_text_atomic
from .bases import NMF_METHOD, Basis, factorize, resolve_basis
from .errors import (
    ActivationsError,
    BasisError,
    DictionaryError,
    ImageError,
    OptionError,
    SpritemapError,
)
from .images import ImageSource, InputSize, is_url, load_image
from .overlays import MAX_GROUP_HUES
from .spritemap import Spritemap

if TYPE_CHECKING:
    from .metadata import ModelInfo
    from .model import Model

DEFAULT_LAYER = "mixed4d"
DEFAULT_TOP_K = 4
DEFAULT_GROUPS = 6
TOP_CLASSES = 5
# Up to this top_k, ranking takes k passes of argmax; beyond, a full sort is cheaper.
ARGMAX_TOP_K = 16
# The page's copy of the picture: twice the size it is shown at, for high-density screens.
# A photo up to that size is embedded as it is, with no resampling (a bicubic resample of a
# 512 px photo took 2.5 ms, a fifth of the model call).
DISPLAY_IMAGE_MAX_PX = 2 * render.IMAGE_DISPLAY_PX
# A JPEG or PNG file within DISPLAY_IMAGE_MAX_PX and this many bytes is embedded as it is:
# no re-encoding (0.6 ms for a 512 px photo) and no second JPEG loss.
IMAGE_FILE_MAX_BYTES = 512 * 1024
IMAGE_FILE_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}
EXIF_ORIENTATION = 0x0112
NEURON_BASIS = "neurons"
NMF_BASIS = NMF_METHOD
SCALES = ("image", "raw", "dataset")
DICT_KIND = "semdict_onnx.semantic_dict"
DICT_SCHEMA = 1

BasisSpec = str | Basis | np.ndarray
SpritemapSpec = Spritemap | str | os.PathLike[str]


class TopClass(NamedTuple):
    """One of the image's most probable classes."""

    index: int
    label: str
    probability: float


def top_k_channels(activations: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per position of [rows, cols, channels] activations, the k strongest channels and values.

    Strongest first; among equal values the lower channel comes first, so the result is fully
    determined (ReLU layers have many exact zeros). Returns int32 channel ids and float32 values,
    each shaped [rows, cols, k].
    """
    acts = np.asarray(activations)
    if acts.ndim != 3 or min(acts.shape) == 0:
        raise ActivationsError(
            f"activations must be one image's layer shaped [rows, cols, channels], "
            f"not {acts.shape}; take [0] of a batch"
        )
    check_top_k(k, acts.shape[2])
    acts = acts.astype(np.float32, copy=False)
    if not np.isfinite(acts).all():
        raise ActivationsError(
            "the activations contain NaN or infinity; check the model and the image"
        )
    rows, cols, size = acts.shape
    flat = acts.reshape(rows * cols, size)
    if k <= ARGMAX_TOP_K:
        # k passes of argmax, each taking out the channel found: argmax returns the first
        # of equal maxima, so ties go to the lower channel (0.05 ms for 14x14x528, k 4).
        remaining = flat.copy()
        positions = np.arange(len(flat))
        channels = np.empty((len(flat), k), np.intp)
        for rank in range(k):
            channels[:, rank] = remaining.argmax(axis=-1)
            remaining[positions, channels[:, rank]] = -np.inf
    else:  # a stable sort keeps equal values in channel order
        channels = np.argsort(-flat, axis=-1, kind="stable")[:, :k]
    values = np.take_along_axis(flat, channels, axis=-1)
    return channels.astype(np.int32).reshape(rows, cols, k), values.reshape(rows, cols, k)


def check_top_k(k: object, channels: int, layer: str | None = None) -> None:
    """Refuse a top_k that is not an integer from 1 to the layer's channel count."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= channels:
        where = f"the {channels} channels of {layer!r}" if layer else f"the {channels} channels"
        raise OptionError(f"top_k must be an integer from 1 to {channels} ({where}), not {k!r}")


def strongest_position(activations: np.ndarray) -> tuple[int, int]:
    """The (row, col) of the largest of [rows, cols, channels] activations (first in row order)."""
    acts = np.asarray(activations)
    row, col, _ = np.unravel_index(int(np.argmax(acts)), acts.shape)
    return int(row), int(col)


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
        return NEURON_BASIS if self.basis is None else self.basis.method

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


class SemanticDict:
    """One image's semantic dictionary for one layer, in one or more bases, as plain data.

    `views` holds one `BasisView` per basis, the first shown first; `channels`, `values`,
    `spritemap` and `sprite_note` are the first view's. Show it with `_repr_html_` (notebooks),
    `to_html()` (an HTML fragment) or `save(path)`; export it with `to_dict()` / `save_npz()`.
    `image_file` may hold the image's own JPEG or PNG file, which the page then embeds as it is
    (checked to be that image at its display size, without EXIF rotation or transparency).
    `input_size` is the (height, width) the image went into the model at, where known.
    """

    def __init__(
        self,
        layer: str,
        views: Sequence[BasisView],
        image: Image.Image,
        *,
        layer_channels: int,
        top_classes: Sequence[TopClass] | None = None,
        title: str = "",
        weights_note: str | None = None,
        replica: bool = False,
        scale: str = "image",
        total: np.ndarray | None = None,
        image_file: bytes | None = None,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        views = list(views)
        if not views or not all(isinstance(view, BasisView) for view in views):
            raise DictionaryError("a SemanticDict needs at least one BasisView")
        grids = {view.channels.shape[:2] for view in views}
        if len(grids) != 1:
            raise DictionaryError(f"every basis must cover the same grid, not {sorted(grids)}")
        if scale not in SCALES:
            raise OptionError(f"scale must be one of {', '.join(SCALES)}, not {scale!r}")
        if total is not None and np.shape(total) != views[0].channels.shape[:2]:
            raise DictionaryError(
                f"total activation must be [rows, cols] = {views[0].channels.shape[:2]}, "
                f"not {np.shape(total)}"
            )
        if not isinstance(image, Image.Image):
            raise ImageError(f"the image must be a PIL image, not {type(image).__name__}")
        self.layer = layer
        self.views = views
        self.image = _display_copy(image)
        self._image_uri = _file_uri(image_file, self.image) if image_file is not None else None
        self.layer_channels = int(layer_channels)
        self.top_classes = tuple(top_classes) if top_classes is not None else None
        self.title = title
        self.weights_note = weights_note
        self.replica = bool(replica)
        self.scale = scale
        self.total = None if total is None else np.asarray(total, np.float32)
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))

    @classmethod
    def from_activations(
        cls,
        activations: np.ndarray,
        layer: str,
        image: Image.Image,
        top_k: int = DEFAULT_TOP_K,
        *,
        spritemap: Spritemap | None = None,
        sprite_note: str | None = None,
        **details: Any,
    ) -> SemanticDict:
        """The neuron dictionary of one image's [rows, cols, channels] activations.

        The total-activation heat map comes from them too; `details` as in the constructor.
        """
        acts = np.asarray(activations, np.float32)
        view = BasisView.from_coefficients(
            acts, top_k, spritemap=spritemap, sprite_note=sprite_note
        )
        details.setdefault("total", acts.sum(axis=2))
        return cls(layer, [view], image, layer_channels=acts.shape[2], **details)

    @property
    def image_uri(self) -> str:
        """The picture as the page embeds it: its own file where given, else a JPEG data URI."""
        if self._image_uri is None:
            self._image_uri = render.image_data_uri(self.image)
        return self._image_uri

    @property
    def channels(self) -> np.ndarray:
        """The first view's [rows, cols, k] direction (for the neurons: channel) ids."""
        return self.views[0].channels

    @property
    def values(self) -> np.ndarray:
        """The first view's [rows, cols, k] values."""
        return self.views[0].values

    @property
    def spritemap(self) -> Spritemap | None:
        """The first view's pictures."""
        return self.views[0].spritemap

    @property
    def sprite_note(self) -> str | None:
        """The first view's note on its pictures."""
        return self.views[0].sprite_note

    @property
    def basis(self) -> str:
        """The method of the first view's basis: "neurons", "nmf" or "given"."""
        return self.views[0].method

    @property
    def rows(self) -> int:
        """Positions down the layer's grid (its height)."""
        return self.channels.shape[0]

    @property
    def cols(self) -> int:
        """Positions across the layer's grid (its width)."""
        return self.channels.shape[1]

    @property
    def top_k(self) -> int:
        """Entries shown per position in the first view."""
        return self.channels.shape[2]

    @property
    def max_value(self) -> float:
        """The largest value anywhere in the first view: its bars' full length at image scale."""
        return self.views[0].max_value

    @property
    def start(self) -> tuple[int, int]:
        """The first selection: the (row, col) of the first view's largest value."""
        return strongest_position(self.values[..., :1])

    def entries(self, row: int, col: int) -> list[tuple[int, float]]:
        """The first view's (direction, value) pairs at (row, col), strongest first."""
        return self.views[0].entries(row, col)

    def view(self, method: str) -> BasisView:
        """The first view whose basis method is `method` ("neurons", "nmf" or "given")."""
        for candidate in self.views:
            if candidate.method == method:
                return candidate
        have = ", ".join(view.method for view in self.views)
        raise DictionaryError(f"this dictionary has no {method!r} basis (it has: {have})")

    def to_html(self) -> str:
        """A self-contained HTML fragment (own CSS, script and unique ids) for any page."""
        return render.render_fragment(self)

    def _repr_html_(self) -> str:
        """The notebook display: the same self-contained fragment."""
        return self.to_html()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a standalone HTML page atomically and return its path."""
        return write_text_atomic(path, render.render_page([self], title=self.title))

    def to_dict(self) -> dict[str, Any]:
        """The dictionary as plain JSON-able data: grid, top-k tables per basis, classes."""
        return {
            "kind": DICT_KIND,
            "schema": DICT_SCHEMA,
            "title": self.title,
            "layer": self.layer,
            "layer_channels": self.layer_channels,
            "rows": self.rows,
            "cols": self.cols,
            "input_size": None if self.input_size is None else list(self.input_size),
            "start": list(self.start),
            "scale": self.scale,
            "replica": self.replica,
            "weights_note": self.weights_note,
            "top_classes": None
            if self.top_classes is None
            else [top._asdict() for top in self.top_classes],
            "total_activation": None if self.total is None else self.total.astype(float).tolist(),
            "bases": [view.to_dict() for view in self.views],
        }

    def save_npz(self, path: str | os.PathLike[str]) -> Path:
        """Write the top-k tables as a .npz file, atomically.

        Per basis i: `<i>_channels`, `<i>_values`, and `<i>_components`, `<i>_typical_max`
        where known; `total_activation`; `meta`, the rest of `to_dict()` as JSON.
        """
        arrays: dict[str, np.ndarray] = {}
        meta = self.to_dict()
        for index, (view, described) in enumerate(zip(self.views, meta["bases"], strict=True)):
            arrays[f"{index}_channels"] = view.channels
            arrays[f"{index}_values"] = view.values
            if view.basis is not None:
                arrays[f"{index}_components"] = view.basis.components
            if view.typical is not None:
                arrays[f"{index}_typical_max"] = view.typical
            for key in ("channels", "values", "components", "typical_max"):
                described.pop(key)
        if self.total is not None:
            arrays["total_activation"] = self.total
        meta.pop("total_activation")
        buffer = io.BytesIO()
        np.savez_compressed(buffer, meta=np.array(json.dumps(meta)), **arrays)
        return write_bytes_atomic(path, buffer.getvalue())

    def __repr__(self) -> str:
        bases = ", ".join(view.description for view in self.views)
        at = "" if self.input_size is None else " at input {}x{}".format(*self.input_size)
        return (
            f"SemanticDict(layer={self.layer!r}, grid {self.rows}x{self.cols} (rows x cols){at}, "
            f"top {self.top_k} of {self.layer_channels} channels, start={self.start}, "
            f"bases: {bases}, scale={self.scale!r}, title={self.title!r})"
        )


class Gallery:
    """Several semantic dictionaries on one page, each independent of the others."""

    def __init__(self, dicts: Iterable[SemanticDict], title: str = "semantic dictionaries") -> None:
        self.dicts = list(dicts)
        if not self.dicts or not all(isinstance(sd, SemanticDict) for sd in self.dicts):
            raise DictionaryError("a gallery needs one or more SemanticDict objects")
        self.title = title

    def to_html(self) -> str:
        """One self-contained HTML fragment holding every dictionary (CSS and script once)."""
        return render.render_gallery_fragment(self.dicts, self.title)

    def _repr_html_(self) -> str:
        """The notebook display: the same fragment."""
        return self.to_html()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the gallery as one standalone HTML page, atomically."""
        return write_text_atomic(path, render.render_page(self.dicts, self.title, heading=True))

    def to_dict(self) -> dict[str, Any]:
        """Every dictionary's `to_dict()`, under the gallery's title."""
        return {"title": self.title, "dicts": [sd.to_dict() for sd in self.dicts]}

    def __len__(self) -> int:
        return len(self.dicts)

    def __repr__(self) -> str:
        return f"Gallery({len(self.dicts)} dictionaries, title={self.title!r})"


def semantic_dict(
    image: ImageSource,
    layer: str = DEFAULT_LAYER,
    model: Model | None = None,
    top_k: int = DEFAULT_TOP_K,
    spritemap: SpritemapSpec | Sequence[SpritemapSpec] | None = None,
    *,
    title: str | None = None,
    basis: BasisSpec | Sequence[BasisSpec] = NEURON_BASIS,
    n_groups: int = DEFAULT_GROUPS,
    scale: str = "image",
    size: InputSize = None,
) -> SemanticDict:
    """Run the model on one image and return the layer's semantic dictionary.

    `model` defaults to `load_model()` (loaded once per process). `basis` is "neurons", "nmf"
    (`n_groups` groups fitted on this image), a Basis, a (k x channels) array, or a list of
    these (one page, a switch between them). `spritemap` is a Spritemap or the path of a saved
    one, or a list: each pictures the neurons or the basis it was built with; by default the
    neurons get the model's public spritemap (or numbers, with a note) and other bases this
    image's own patches. `scale` is how bars are measured: "image" (its largest value), "raw"
    or "dataset" (each direction's typical maximum in its spritemap's manifest). `size` is the
    input size: None (the model's default, e.g. 224x224), an int keeping the image's aspect
    ratio with that shorter side, or (height, width); the grid follows the layer's size there.
    """
    model = model if model is not None else _default_model()
    info = model.info
    layer_info = info.layer(layer)
    check_top_k(top_k, layer_info.channels, layer)
    if scale not in SCALES:
        raise OptionError(f"scale must be one of {', '.join(SCALES)}, not {scale!r}")
    specs = _basis_specs(basis, layer, layer_info.channels)
    neuron_sprites, basis_sprites = _split_spritemaps(spritemap)
    if neuron_sprites is not None and NEURON_BASIS not in specs:
        raise SpritemapError(
            "a spritemap of the neurons was given, but basis= does not ask for the neurons; "
            "add 'neurons' to basis=[...] or leave that spritemap out"
        )
    sprites, sprite_note = None, None
    if NEURON_BASIS in specs:
        sprites, sprite_note = _sprites_for(info, layer, neuron_sprites)
    picture = image if isinstance(image, np.ndarray) else load_image(image)
    shown = load_image(picture) if isinstance(picture, np.ndarray) else picture
    input_size = model.input_size_for((shown.height, shown.width), size)
    want_classes = bool(info.class_output and info.labels)
    names = [layer, info.class_output] if want_classes else [layer]
    outputs = model.activations(picture, layers=names, size=input_size)
    acts = outputs[layer][0]
    views = []
    for spec in specs:
        if spec == NEURON_BASIS:
            typical = _typical_maxima(sprites, layer_info.channels)
            views.append(
                BasisView.from_coefficients(
                    acts, top_k, spritemap=sprites, sprite_note=sprite_note, typical=typical
                )
            )
        else:
            views.append(
                _basis_view(
                    spec, acts, layer, model, shown, top_k, n_groups, basis_sprites, input_size
                )
            )
    unused = set(basis_sprites) - {view.basis.fingerprint for view in views if view.basis}
    if unused:
        raise SpritemapError(
            f"{len(unused)} spritemap(s) picture bases that are not among those asked for "
            f"(basis fingerprint {', '.join(sorted(unused))}); pass the Basis each was built "
            "with in basis=[...]"
        )
    return SemanticDict(
        layer,
        views,
        shown,
        layer_channels=layer_info.channels,
        top_classes=_top_classes(outputs[info.class_output][0], info) if want_classes else None,
        title=title if title is not None else _title_for(image),
        weights_note=info.weights_note,
        replica=info.replica,
        scale=scale,
        total=acts.sum(axis=2),
        image_file=_small_image_file(image, shown),
        input_size=input_size,
    )


def show_semantic_dict(
    image: ImageSource,
    layer: str = DEFAULT_LAYER,
    model: Model | None = None,
    top_k: int = DEFAULT_TOP_K,
    spritemap: SpritemapSpec | Sequence[SpritemapSpec] | None = None,
    **options: Any,
) -> SemanticDict:
    """Like `semantic_dict` (same options), and display the result through IPython."""
    from IPython.display import display

    result = semantic_dict(image, layer, model, top_k, spritemap, **options)
    display(result)
    return result


def gallery(
    images: Iterable[ImageSource | SemanticDict],
    layer: str = DEFAULT_LAYER,
    model: Model | None = None,
    top_k: int = DEFAULT_TOP_K,
    spritemap: SpritemapSpec | Sequence[SpritemapSpec] | None = None,
    *,
    title: str = "semantic dictionaries",
    progress: bool = True,
    **options: Any,
) -> Gallery:
    """Dictionaries of many images (or ready SemanticDicts) gathered into one Gallery page.

    Each image gets `semantic_dict(image, layer, model, top_k, spritemap, **options)`, with a
    progress bar; the dictionaries stay independent on the page.
    """
    items = list(images)
    if not items:
        raise ImageError("gallery() needs at least one image or SemanticDict")
    if isinstance(spritemap, (str, os.PathLike)):
        spritemap = Spritemap.load(spritemap)  # read once for every image
    dicts = []
    for item in tqdm(items, unit="image", desc=f"gallery {layer}", disable=not progress):
        if isinstance(item, SemanticDict):
            dicts.append(item)
        else:
            dicts.append(semantic_dict(item, layer, model, top_k, spritemap, **options))
    return Gallery(dicts, title)


@functools.lru_cache(maxsize=1)
def _default_model() -> Model:
    """The model in the default location, loaded once per process."""
    from .model import load_model

    return load_model()


def _sprites_for(
    info: ModelInfo, layer: str, spritemap: Spritemap | None
) -> tuple[Spritemap | None, str | None]:
    """The neurons' spritemap (checked against the layer), or None and the note saying why."""
    channels = info.layer(layer).channels
    if spritemap is not None:
        spritemap.validate_for(layer, channels)
        return spritemap, None
    default = Spritemap.default_for(info, layer)
    if default is not None:
        return default, None
    if info.replica:
        why = "the public spritemaps picture the real network's channels, not this replica's"
    else:
        why = f"the model names no spritemap for {layer}"
    return None, (
        f"No channel pictures: {why}. Channel numbers are shown instead; pass spritemap= "
        "(for example one made with build_spritemap) to see pictures."
    )


def _top_classes(probabilities: np.ndarray, info: ModelInfo) -> list[TopClass]:
    """The TOP_CLASSES most probable classes, with their labels, most probable first."""
    labels = info.labels or ()
    order = np.argsort(-probabilities, kind="stable")[:TOP_CLASSES]
    return [TopClass(int(i), str(labels[i]), float(probabilities[i])) for i in order]


def _title_for(source: object) -> str:
    """A default title: the file name of a path or URL, else a generic one."""
    if is_url(source):
        name = unquote(urlsplit(source).path.rstrip("/").rsplit("/", 1)[-1])
        return name or source
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    return "image"


def _display_copy(image: Image.Image) -> Image.Image:
    """An RGB copy of `image` at most DISPLAY_IMAGE_MAX_PX on its long side, for the page."""
    picture = image.convert("RGB") if image.mode != "RGB" else image.copy()
    picture.thumbnail(
        (DISPLAY_IMAGE_MAX_PX, DISPLAY_IMAGE_MAX_PX), Image.Resampling.BICUBIC, reducing_gap=2.0
    )
    return picture


def _small_image_file(source: ImageSource, picture: Image.Image) -> bytes | None:
    """The bytes of a path or bytes source the page may embed as they are, else None.

    Only a JPEG or PNG already at most DISPLAY_IMAGE_MAX_PX and IMAGE_FILE_MAX_BYTES, read
    again here (SemanticDict checks it is `picture`); URLs and decoded images get re-encoded.
    """
    if max(picture.size) > DISPLAY_IMAGE_MAX_PX:
        return None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)) and not is_url(source):
        path = Path(source).expanduser()
        try:
            if path.stat().st_size > IMAGE_FILE_MAX_BYTES:
                return None
            data = path.read_bytes()
        except OSError:
            return None
    else:
        return None
    return data if len(data) <= IMAGE_FILE_MAX_BYTES else None


def _file_uri(data: bytes, picture: Image.Image) -> str | None:
    """A data URI of `data` if it is a JPEG or PNG file of `picture` a browser shows as is."""
    mime = next((m for magic, m in IMAGE_FILE_TYPES.items() if data.startswith(magic)), None)
    if mime is None:
        return None
    try:
        with Image.open(io.BytesIO(data)) as opened:
            plain = opened.mode in ("RGB", "L") and "transparency" not in opened.info
            upright = opened.getexif().get(EXIF_ORIENTATION, 1) == 1
            if not (plain and upright and opened.size == picture.size):
                return None
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return render.data_uri(data, mime)


def _unit(basis: Basis | None) -> str:
    """What one direction of `basis` (None: the neurons) is called."""
    return "channel" if basis is None else basis.unit


def _basis_specs(
    basis: BasisSpec | Sequence[BasisSpec], layer: str, channels: int
) -> list[BasisSpec]:
    """The bases asked for, as a list: "neurons", "nmf" or a Basis checked against the layer."""
    specs = list(basis) if isinstance(basis, (list, tuple)) else [basis]
    if not specs:
        raise BasisError("basis=[] asks for no basis; pass 'neurons', 'nmf', a Basis or a list")
    checked: list[BasisSpec] = []
    for spec in specs:
        if isinstance(spec, str) and spec in (NEURON_BASIS, NMF_BASIS):
            checked.append(spec)
            continue
        if isinstance(spec, str):
            raise BasisError(
                f"unknown basis {spec!r}; pass 'neurons', 'nmf', a Basis (fit_basis, "
                "Basis.load) or a (k x channels) array of directions"
            )
        resolved = resolve_basis(spec, layer, channels)
        checked.append(NEURON_BASIS if resolved.method == NEURON_BASIS else resolved)
    return checked


def _split_spritemaps(
    spritemap: SpritemapSpec | Sequence[SpritemapSpec] | None,
) -> tuple[Spritemap | None, dict[str, Spritemap]]:
    """The neurons' spritemap (if given) and the others by the fingerprint of their basis."""
    given = list(spritemap) if isinstance(spritemap, (list, tuple)) else [spritemap]
    neurons: Spritemap | None = None
    others: dict[str, Spritemap] = {}
    for item in given:
        if item is None:
            continue
        loaded = Spritemap.load(item) if isinstance(item, (str, os.PathLike)) else item
        if not isinstance(loaded, Spritemap):
            raise SpritemapError(
                f"spritemap must be a Spritemap or the path of a saved one, not "
                f"{type(loaded).__name__}; wrap a grid with Spritemap(source, per_row=..., "
                "sprite_size=..., channels=...)"
            )
        fingerprint = (loaded.manifest or {}).get("basis_fingerprint")
        if loaded.basis == NEURON_BASIS or fingerprint is None:
            if neurons is not None:
                raise SpritemapError("two spritemaps of the neurons were given; pass one")
            neurons = loaded
        else:
            others[str(fingerprint)] = loaded
    return neurons, others


def _basis_view(
    spec: BasisSpec,
    acts: np.ndarray,
    layer: str,
    model: Model,
    image: Image.Image,
    top_k: int,
    n_groups: int,
    spritemaps: dict[str, Spritemap],
    input_size: tuple[int, int],
) -> BasisView:
    """The view of one basis other than the neurons, with its pictures and overlay maps.

    `input_size` is the (height, width) the image went into the model at.
    """
    from .dataset_examples import own_patches_spritemap

    if isinstance(spec, Basis):
        basis, coefficients = spec, spec.project(acts)
    else:
        basis, coefficients = factorize(acts, n_groups, layer=layer)
    sprites = spritemaps.get(basis.fingerprint)
    note = None
    if sprites is not None:
        sprites.validate_for(layer, basis.k)
    else:
        sprites = own_patches_spritemap(
            image, coefficients, layer, model, basis, input_size=input_size
        )
        note = f"Pictures: the patch of this image where each {basis.unit} is strongest."
        if isinstance(spec, Basis):
            note += (
                " For dataset examples, pass spritemap=build_spritemap(images, layer, "
                "basis=this basis)."
            )
    return BasisView.from_coefficients(
        coefficients,
        min(top_k, basis.k),
        basis,
        spritemap=sprites,
        sprite_note=note,
        maps=coefficients if basis.k <= MAX_GROUP_HUES else None,
        typical=None if note else _typical_maxima(sprites, basis.k),
    )


def _typical_maxima(spritemap: Spritemap | None, size: int) -> np.ndarray | None:
    """Each direction's typical maximum over a dataset, from a dataset-example manifest.

    The mean of the activations of a direction's kept examples (with one example per
    direction: its maximum over the dataset); 0 for a dead one. None without such a manifest.
    """
    sprites = (spritemap.manifest or {}).get("sprites") if spritemap is not None else None
    if not isinstance(sprites, list) or len(sprites) < size:
        return None
    typical = np.zeros(size, np.float32)
    for entry in sprites[:size]:
        values = [example["activation"] for example in entry.get("examples", [])]
        typical[int(entry["channel"])] = float(np.mean(values)) if values else 0.0
    return typical
