"""The result of a dictionary run: `SemanticDict` (one image) and `Gallery` (many), as data.

A `SemanticDict` holds one or more `BasisView`s (_views.py) of one image's layer, with the
image and what the page needs to show it. It shows itself as HTML (`to_html`, `_repr_html_`
for notebooks, `save` for a standalone page; the markup is _render.py's) and exports itself
as plain data (`to_dict`, `save_npz`). A `Gallery` puts several on one page.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ._atomic import write_bytes_atomic, write_text_atomic
from ._defaults import DEFAULT_TOP_K
from ._picture import display_copy, file_uri, image_data_uri
from ._ranking import strongest_position
from ._render import render_fragment, render_gallery_fragment, render_page
from ._spritemap import Spritemap
from ._views import BasisView, TopClass
from .errors import DictionaryError, ImageError, OptionError

SCALES = ("image", "raw", "dataset")
DICT_KIND = "semdict_onnx.semantic_dict"
DICT_SCHEMA = 1


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
        self.image = display_copy(image)
        self._image_uri = file_uri(image_file, self.image) if image_file is not None else None
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
            self._image_uri = image_data_uri(self.image)
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
        return render_fragment(self)

    def _repr_html_(self) -> str:
        """The notebook display: the same self-contained fragment."""
        return self.to_html()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a standalone HTML page atomically and return its path."""
        return write_text_atomic(path, render_page([self], title=self.title))

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
        return render_gallery_fragment(self.dicts, self.title)

    def _repr_html_(self) -> str:
        """The notebook display: the same fragment."""
        return self.to_html()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the gallery as one standalone HTML page, atomically."""
        return write_text_atomic(path, render_page(self.dicts, self.title, heading=True))

    def to_dict(self) -> dict[str, Any]:
        """Every dictionary's `to_dict()`, under the gallery's title."""
        return {"title": self.title, "dicts": [sd.to_dict() for sd in self.dicts]}

    def __len__(self) -> int:
        return len(self.dicts)

    def __repr__(self) -> str:
        return f"Gallery({len(self.dicts)} dictionaries, title={self.title!r})"
