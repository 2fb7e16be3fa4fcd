"""Spritemaps: grid images holding one picture per channel (or basis direction) of a layer.

A `Spritemap` says where the grid is (an http/https URL the browser loads, a data: URL, a local
file, encoded image bytes, a numpy array or a PIL image), how it is laid out (channel n at
column n % per_row, row n // per_row, each sprite `sprite_size` pixels square) and, optionally,
which layer it describes and a manifest of where each sprite came from. Its layout is checked
against the size limits (_limits.py) before any grid is made or read. It saves itself as a
JPEG/PNG grid plus a JSON manifest beside it, and `Spritemap.load` reads both back: how the
pair is written and checked is _spritemap_files.py's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
import os
import urllib.parse
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ._bases import NEURONS, Basis
from ._checks import positive_int
from ._limits import check_grid, check_sprite_size
from ._metadata import ModelInfo
from ._paths import local_path
from ._spritemap_files import (
    IMAGE_FORMATS,
    MANIFEST_KIND,
    MANIFEST_SCHEMA,
    check_save_target,
    load_pair,
    manifest_path_for,
    save_pair,
)
from .errors import SpritemapError

__all__ = ["IMAGE_FORMATS", "Spritemap", "SpritemapSource", "manifest_path_for"]

JPEG_QUALITY = 92
# The colour of a grid cell without a picture: a dead channel, a sprite not rendered yet.
BLANK_COLOUR = (224, 224, 224)

SpritemapSource = str | os.PathLike[str] | bytes | np.ndarray | Image.Image


def blank_grid(rows: int, per_row: int, sprite_size: int) -> np.ndarray:
    """An RGB grid of rows x per_row cells of sprite_size pixels, every cell blank."""
    grid = np.empty((rows * sprite_size, per_row * sprite_size, 3), np.uint8)
    grid[:] = BLANK_COLOUR
    return grid


def manifest_header(method: str, basis: Basis, info: ModelInfo) -> dict[str, Any]:
    """The fields every builder's manifest starts with: the basis (described and fingerprinted
    unless it is the neurons), how the pictures were made, and the model they come from."""
    described = {}
    if basis.method != NEURONS:
        described = {
            "basis_description": basis.describe(),
            "basis_fingerprint": basis.fingerprint,
        }
    return {
        "basis": basis.method,
        **described,
        "method": method,
        "model": {
            "network": info.network,
            "replica": info.replica,
            "source_sha256": info.source_sha256,
        },
    }


class Spritemap:
    """A grid of channel pictures: its source, layout, and (optionally) layer and manifest."""

    def __init__(
        self,
        source: SpritemapSource,
        per_row: int,
        sprite_size: int,
        channels: int,
        layer: str | None = None,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        self.per_row = positive_int(per_row, "spritemap per_row", error=SpritemapError)
        self.sprite_size = positive_int(sprite_size, "spritemap sprite_size", error=SpritemapError)
        self.channels = positive_int(channels, "spritemap channels", error=SpritemapError)
        check_sprite_size(self.sprite_size, SpritemapError)
        check_grid(*self.grid_size, None, "the spritemap grid", SpritemapError)
        self.layer = layer
        self.manifest = manifest
        self._url: str | None = None
        self._path: Path | None = None
        self._encoded: bytes | None = None
        self._grid: Image.Image | None = None
        if isinstance(source, (bytes, bytearray)):
            self._encoded = bytes(source)
        elif isinstance(source, Image.Image):
            self._grid = _check_grid(source.convert("RGB"), self, "the PIL image")
        elif isinstance(source, np.ndarray):
            self._grid = _check_grid(_array_to_image(source), self, "the array")
        elif isinstance(source, str) and _scheme(source) in ("http", "https", "data"):
            self._url = source
        elif isinstance(source, str) and len(_scheme(source)) > 1 and _scheme(source) != "file":
            raise SpritemapError(
                f"spritemap URL {_short(source)!r} has scheme {_scheme(source)!r}; "
                "only http, https and data URLs (or a local file path) are allowed"
            )
        elif isinstance(source, (str, os.PathLike)):
            path = local_path(source)
            if not path.is_file():
                raise SpritemapError(
                    f"spritemap file {str(path)!r} does not exist; pass an existing image file, "
                    "a URL, an array or a PIL image"
                )
            self._path = path
        else:
            raise SpritemapError(
                f"cannot use a {type(source).__name__} as a spritemap source; pass an http(s) "
                "or data URL, a file path, encoded image bytes, a uint8 HxWx3 numpy array or a "
                "PIL image"
            )

    @property
    def rows(self) -> int:
        """How many rows of sprites the grid needs for its channels."""
        return math.ceil(self.channels / self.per_row)

    @property
    def grid_size(self) -> tuple[int, int]:
        """The (width, height) in pixels of a grid holding every sprite."""
        return self.per_row * self.sprite_size, self.rows * self.sprite_size

    @property
    def is_remote(self) -> bool:
        """True for an http/https spritemap, which only the browser loads."""
        return self._url is not None and _scheme(self._url) in ("http", "https")

    @property
    def url(self) -> str | None:
        """The http, https or data URL of the grid, or None for a file or in-memory grid."""
        return self._url

    @property
    def path(self) -> Path | None:
        """The local file holding the grid, or None."""
        return self._path

    @property
    def basis(self) -> str:
        """What the sprites picture: "neurons" (one per channel) unless the manifest says other."""
        return str((self.manifest or {}).get("basis", NEURONS))

    def image(self) -> Image.Image:
        """The whole grid as an RGB PIL image, read once (not for remote spritemaps)."""
        if self._grid is None:
            if self.is_remote:
                raise SpritemapError(
                    f"spritemap {self._url!r} is remote: only the browser loads it; download it "
                    "and pass the local file to read its sprites in Python"
                )
            what = f"spritemap file {str(self._path)!r}" if self._path else "the data: URL"
            if self._encoded is not None:
                raw: Path | io.BytesIO = io.BytesIO(self._encoded)
                what = f"spritemap grid {str(self._path)!r}" if self._path else "the grid bytes"
            else:
                raw = _read_data_url(self._url) if self._url else self._path
            self._grid = _check_grid(_read_image(raw, what), self, what)
        return self._grid

    def sprite(self, channel: int) -> Image.Image:
        """The picture of `channel`: column channel % per_row, row channel // per_row."""
        if not 0 <= int(channel) < self.channels:
            raise SpritemapError(
                f"channel {channel} is outside this spritemap's {self.channels} sprites "
                f"(0..{self.channels - 1})"
            )
        row, col = divmod(int(channel), self.per_row)
        size = self.sprite_size
        return self.image().crop((col * size, row * size, (col + 1) * size, (row + 1) * size))

    def validate_for(self, layer: str, channels: int) -> None:
        """Refuse, with a clear error, a spritemap that cannot picture every channel of `layer`."""
        if self.layer is not None and self.layer != layer:
            raise SpritemapError(
                f"this spritemap pictures layer {self.layer!r}, not {layer!r}; "
                f"build or pass a spritemap for {layer!r}"
            )
        if self.channels < channels:
            raise SpritemapError(
                f"the spritemap has {self.channels} sprites but layer {layer!r} has {channels} "
                "channels; it needs one sprite per channel"
            )
        if not self.is_remote:
            self.image()

    @classmethod
    def default_for(cls, model_info: ModelInfo, layer: str) -> Spritemap | None:
        """The public spritemap the model card names for `layer`, or None (replica, no map)."""
        layer_info = model_info.layer(layer)
        public = model_info.spritemaps.get(layer)
        if public is None or model_info.replica:
            return None
        return cls(
            public.url,
            per_row=public.per_row,
            sprite_size=public.sprite_size,
            channels=layer_info.channels,
            layer=layer,
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the grid (JPEG or PNG by suffix) and its JSON manifest beside it, as one pair.

        A reader sees the old pair or the new one, never a mix; a NAME.json that is not a
        spritemap manifest is never replaced (_spritemap_files.py).
        """
        target = local_path(path)
        check_save_target(target)
        image_format = IMAGE_FORMATS[target.suffix.lower()]
        check_grid(*self.grid_size, image_format, "the spritemap grid", SpritemapError)
        buffer = io.BytesIO()
        options = {"quality": JPEG_QUALITY} if image_format == "JPEG" else {"optimize": True}
        self.image().save(buffer, format=image_format, **options)
        data = buffer.getvalue()
        layout = {
            "kind": MANIFEST_KIND,
            "schema": MANIFEST_SCHEMA,
            "layer": self.layer,
            "channels": self.channels,
            "per_row": self.per_row,
            "sprite_size": self.sprite_size,
            "image": target.name,
            "image_sha256": hashlib.sha256(data).hexdigest(),
        }
        manifest = {**layout, **(self.manifest or {}), **layout}  # layout first, and it wins
        return save_pair(target, data, manifest)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Spritemap:
        """Read a spritemap saved by `save`: give the grid image or its .json manifest.

        The manifest is checked field by field and its grid must sit in its own folder.
        """
        manifest, grid, data = load_pair(path)
        loaded = cls(
            data,
            per_row=manifest["per_row"],
            sprite_size=manifest["sprite_size"],
            channels=manifest["channels"],
            layer=manifest.get("layer"),
            manifest=manifest,
        )
        loaded._path = grid
        return loaded

    def __repr__(self) -> str:
        where = _short(self._url) if self._url else str(self._path) if self._path else "in memory"
        return (
            f"Spritemap({where!r}, per_row={self.per_row}, sprite_size={self.sprite_size}, "
            f"channels={self.channels}, layer={self.layer!r})"
        )


def _scheme(text: str) -> str:
    """The lower-cased URL scheme of `text` ('' for a plain path)."""
    return urllib.parse.urlsplit(text).scheme.lower()


def _short(text: str, limit: int = 80) -> str:
    """`text` cut to `limit` characters for error messages (data URLs are long)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _array_to_image(array: np.ndarray) -> Image.Image:
    """A uint8 HxWx3 array as a PIL image, or a clear error."""
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise SpritemapError(
            f"a spritemap array must be uint8 of shape (height, width, 3), not "
            f"{array.dtype} {array.shape}; convert with (x * 255).round().astype(np.uint8)"
        )
    return Image.fromarray(np.ascontiguousarray(array), "RGB")


def _read_data_url(url: str) -> io.BytesIO:
    """The bytes a data: URL carries, or a clear error."""
    header, sep, payload = url.partition(",")
    try:
        if not sep:
            raise SpritemapError("no ',' separates the header from the data")
        if header.lower().endswith(";base64"):
            return io.BytesIO(base64.b64decode(payload, validate=True))
        return io.BytesIO(urllib.parse.unquote_to_bytes(payload))
    except (ValueError, binascii.Error) as exc:
        raise SpritemapError(f"the spritemap data: URL is malformed ({exc})") from exc


def _read_image(source: Path | io.BytesIO, what: str) -> Image.Image:
    """Decode an image file or buffer to RGB, or a clear error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below
            opened = Image.open(source)
        with opened:
            check_grid(*opened.size, None, what, SpritemapError)  # before decoding it
            return opened.convert("RGB")
    except UnidentifiedImageError:
        raise SpritemapError(f"{what} is not a readable image (no format PIL reads)") from None
    except Image.DecompressionBombError as exc:
        raise SpritemapError(f"{what} is too large to open ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        if isinstance(exc, SpritemapError):
            raise
        raise SpritemapError(f"{what} is truncated or corrupt ({exc})") from exc


def _check_grid(grid: Image.Image, spritemap: Spritemap, what: str) -> Image.Image:
    """Return `grid` if its size fits the layout, else explain the mismatch."""
    width, height = grid.size
    need_width = spritemap.per_row * spritemap.sprite_size
    need_height = spritemap.rows * spritemap.sprite_size
    if width != need_width or height < need_height:
        raise SpritemapError(
            f"{what} is {width}x{height} px, which is not a grid of {spritemap.channels} sprites "
            f"of {spritemap.sprite_size} px, {spritemap.per_row} per row (that needs "
            f"{need_width} px wide and at least {need_height} px high); check per_row and "
            "sprite_size"
        )
    return grid
