"""Semantic dictionaries: per-position top-k channels of one image's layer, and their display.

This module owns the data: `top_k_channels` (pure numpy, no model) ranks the channels at every
position, `SemanticDict` holds the result as plain arrays together with the image and what the
page needs to show it, and `semantic_dict` / `show_semantic_dict` run a model to make one.
The HTML itself is `render.py`'s concern.

Axes are named once: activations are [rows, cols, channels] (rows = height, cols = width), and
a position is always (row, col).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote, urlsplit

import numpy as np
from PIL import Image

from . import render
from .atomic import write_text_atomic
from .errors import ImageError, SemdictError, SpritemapError
from .images import ImageSource, load_image, to_batch
from .spritemap import Spritemap

if TYPE_CHECKING:
    from .metadata import ModelInfo
    from .model import Model

DEFAULT_LAYER = "mixed4d"
DEFAULT_TOP_K = 4
TOP_CLASSES = 5
DISPLAY_IMAGE_MAX_PX = 480
NEURON_BASIS = "neurons"


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
        raise SemdictError(
            f"activations must be one image's layer shaped [rows, cols, channels], "
            f"not {acts.shape}; take [0] of a batch"
        )
    check_top_k(k, acts.shape[2])
    acts = acts.astype(np.float32, copy=False)
    if not np.isfinite(acts).all():
        raise SemdictError("the activations contain NaN or infinity; check the model and the image")
    # The k-th largest value at each position; everything above it is in, and the ties at it
    # are filled in channel order until there are k.
    kth = -np.partition(-acts, k - 1, axis=-1)[..., k - 1 : k]
    above = acts > kth
    ties = acts == kth
    room = k - above.sum(axis=-1, keepdims=True)
    chosen = above | (ties & (np.cumsum(ties, axis=-1) <= room))
    channels = np.nonzero(chosen)[-1].reshape(*acts.shape[:2], k)
    values = np.take_along_axis(acts, channels, axis=-1)
    order = np.argsort(-values, axis=-1, kind="stable")
    channels = np.take_along_axis(channels, order, axis=-1).astype(np.int32)
    values = np.take_along_axis(values, order, axis=-1)
    return channels, values


def check_top_k(k: object, channels: int, layer: str | None = None) -> None:
    """Refuse a top_k that is not an integer from 1 to the layer's channel count."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= channels:
        where = f"the {channels} channels of {layer!r}" if layer else f"the {channels} channels"
        raise SemdictError(f"top_k must be an integer from 1 to {channels} ({where}), not {k!r}")


def strongest_position(activations: np.ndarray) -> tuple[int, int]:
    """The (row, col) of the largest of [rows, cols, channels] activations (first in row order)."""
    acts = np.asarray(activations)
    row, col, _ = np.unravel_index(int(np.argmax(acts)), acts.shape)
    return int(row), int(col)


class SemanticDict:
    """One image's semantic dictionary for one layer: per-position top-k channels, as plain data.

    `channels` (int32) and `values` (float32) are shaped [rows, cols, k], strongest first.
    Show it with `_repr_html_` (notebooks), `to_html()` (an HTML fragment) or `save(path)`.
    """

    def __init__(
        self,
        layer: str,
        channels: np.ndarray,
        values: np.ndarray,
        image: Image.Image,
        *,
        layer_channels: int,
        spritemap: Spritemap | None = None,
        sprite_note: str | None = None,
        top_classes: Sequence[TopClass] | None = None,
        title: str = "",
        weights_note: str | None = None,
        replica: bool = False,
    ) -> None:
        channels = np.asarray(channels)
        values = np.asarray(values, dtype=np.float32)
        if channels.ndim != 3 or channels.shape != values.shape or channels.shape[2] < 1:
            raise SemdictError(
                f"channels and values must both be [rows, cols, k] arrays, not {channels.shape} "
                f"and {values.shape}"
            )
        if channels.min() < 0 or channels.max() >= layer_channels:
            raise SemdictError(
                f"channel ids must lie in 0..{layer_channels - 1} for layer {layer!r}"
            )
        if not isinstance(image, Image.Image):
            raise ImageError(f"the image must be a PIL image, not {type(image).__name__}")
        self.layer = layer
        self.channels = channels.astype(np.int32, copy=False)
        self.values = values
        self.image = _display_copy(image)
        self.layer_channels = int(layer_channels)
        self.spritemap = spritemap
        self.sprite_note = sprite_note
        self.top_classes = tuple(top_classes) if top_classes is not None else None
        self.title = title
        self.weights_note = weights_note
        self.replica = bool(replica)
        self.basis = NEURON_BASIS

    @classmethod
    def from_activations(
        cls,
        activations: np.ndarray,
        layer: str,
        image: Image.Image,
        top_k: int = DEFAULT_TOP_K,
        **details: object,
    ) -> SemanticDict:
        """Rank one image's [rows, cols, channels] activations; `details` as in the constructor."""
        channels, values = top_k_channels(activations, top_k)
        return cls(layer, channels, values, image, layer_channels=activations.shape[2], **details)

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
        """Channels shown per position."""
        return self.channels.shape[2]

    @property
    def max_value(self) -> float:
        """The largest activation anywhere in this image's layer: the bars' full length."""
        return float(self.values[..., 0].max())

    @property
    def start(self) -> tuple[int, int]:
        """The first selection: the (row, col) of the layer's largest activation."""
        return strongest_position(self.values[..., :1])

    def entries(self, row: int, col: int) -> list[tuple[int, float]]:
        """The (channel, value) pairs shown at (row, col), strongest first."""
        return [
            (int(c), float(v))
            for c, v in zip(self.channels[row, col], self.values[row, col], strict=True)
        ]

    def to_html(self) -> str:
        """A self-contained HTML fragment (own CSS, script and unique ids) for any page."""
        return render.render_fragment(self)

    def _repr_html_(self) -> str:
        """The notebook display: the same self-contained fragment."""
        return self.to_html()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a standalone HTML page atomically and return its path."""
        return write_text_atomic(path, render.render_page([self], title=self.title))

    def __repr__(self) -> str:
        return (
            f"SemanticDict(layer={self.layer!r}, grid {self.rows}x{self.cols} (rows x cols), "
            f"top {self.top_k} of {self.layer_channels} channels, start={self.start}, "
            f"title={self.title!r})"
        )


def semantic_dict(
    image: ImageSource,
    layer: str = DEFAULT_LAYER,
    model: Model | None = None,
    top_k: int = DEFAULT_TOP_K,
    spritemap: Spritemap | str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
) -> SemanticDict:
    """Run the model on one image and return the layer's semantic dictionary.

    `model` defaults to `load_model()` (loaded once per process). `spritemap` is a Spritemap,
    the path of a saved one, or None: the model's public spritemap for the layer, or channel
    numbers with a note where it has none.
    """
    model = model if model is not None else _default_model()
    info = model.info
    layer_info = info.layer(layer)
    check_top_k(top_k, layer_info.channels, layer)
    sprites, sprite_note = _sprites_for(info, layer, spritemap)
    picture = image if isinstance(image, np.ndarray) else load_image(image)
    pixels = to_batch([picture], info.input.height, info.input.width)
    want_classes = bool(info.class_output and info.labels)
    names = [layer, info.class_output] if want_classes else [layer]
    outputs = model.activations(pixels, layers=names)
    return SemanticDict.from_activations(
        outputs[layer][0],
        layer,
        load_image(picture) if isinstance(picture, np.ndarray) else picture,
        top_k,
        spritemap=sprites,
        sprite_note=sprite_note,
        top_classes=_top_classes(outputs[info.class_output][0], info) if want_classes else None,
        title=title if title is not None else _title_for(image),
        weights_note=info.weights_note,
        replica=info.replica,
    )


def show_semantic_dict(
    image: ImageSource,
    layer: str = DEFAULT_LAYER,
    model: Model | None = None,
    top_k: int = DEFAULT_TOP_K,
    spritemap: Spritemap | str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
) -> SemanticDict:
    """Like `semantic_dict`, and display the result through IPython (in a notebook)."""
    try:
        from IPython.display import display
    except ImportError as exc:
        raise SemdictError(
            "show_semantic_dict() displays through IPython, which is not installed here: "
            "`pip install ipython` (or run in Jupyter), or call semantic_dict(...).save("
            "'page.html') and open the page in a browser"
        ) from exc
    result = semantic_dict(image, layer, model, top_k, spritemap, title=title)
    display(result)
    return result


@functools.lru_cache(maxsize=1)
def _default_model() -> Model:
    """The model in the default location, loaded once per process."""
    from .model import load_model

    return load_model()


def _sprites_for(
    info: ModelInfo, layer: str, spritemap: Spritemap | str | os.PathLike[str] | None
) -> tuple[Spritemap | None, str | None]:
    """The spritemap to show (checked against the layer), or None and the note saying why."""
    channels = info.layer(layer).channels
    if isinstance(spritemap, (str, os.PathLike)):
        spritemap = Spritemap.load(spritemap)
    if spritemap is not None:
        if not isinstance(spritemap, Spritemap):
            raise SpritemapError(
                f"spritemap must be a Spritemap or the path of a saved one, not "
                f"{type(spritemap).__name__}; wrap a grid with Spritemap(source, per_row=..., "
                "sprite_size=..., channels=...)"
            )
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
    if isinstance(source, str) and source.lower().startswith(("http://", "https://")):
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
