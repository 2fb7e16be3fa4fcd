"""Spritemaps: grid images holding one picture per channel (or basis direction) of a layer.

A `Spritemap` says where the grid is (an http/https URL the browser loads, a data: URL, a local
file, a numpy array or a PIL image), how it is laid out (channel n at column n % per_row, row
n // per_row, each sprite `sprite_size` pixels square) and, optionally, which layer it describes
and a manifest of where each sprite came from. It saves itself as a JPEG/PNG grid plus a JSON
manifest beside it, and `Spritemap.load` reads both back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import math
import os
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ._atomic import atomic_write, write_text_atomic
from ._bases import NEURONS
from ._checks import positive_int
from ._metadata import ModelInfo
from .errors import SpritemapError

MANIFEST_KIND = "semdict_onnx.spritemap"
MANIFEST_SCHEMA = 1
IMAGE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}
JPEG_QUALITY = 92
_LAYOUT_KEYS = ("layer", "channels", "per_row", "sprite_size")

SpritemapSource = str | os.PathLike[str] | np.ndarray | Image.Image


def manifest_path_for(image_path: str | os.PathLike[str]) -> Path:
    """The manifest file that sits beside a saved spritemap grid (same name, .json suffix)."""
    return Path(image_path).with_suffix(".json")


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
        self.layer = layer
        self.manifest = manifest
        self._url: str | None = None
        self._path: Path | None = None
        self._grid: Image.Image | None = None
        if isinstance(source, Image.Image):
            self._grid = _check_grid(source.convert("RGB"), self, "the PIL image")
        elif isinstance(source, np.ndarray):
            self._grid = _check_grid(_array_to_image(source), self, "the array")
        elif isinstance(source, str) and _scheme(source) in ("http", "https", "data"):
            self._url = source
        elif isinstance(source, str) and len(_scheme(source)) > 1:
            raise SpritemapError(
                f"spritemap URL {_short(source)!r} has scheme {_scheme(source)!r}; "
                "only http, https and data URLs (or a local file path) are allowed"
            )
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source).expanduser()
            if not path.is_file():
                raise SpritemapError(
                    f"spritemap file {str(path)!r} does not exist; pass an existing image file, "
                    "a URL, an array or a PIL image"
                )
            self._path = path
        else:
            raise SpritemapError(
                f"cannot use a {type(source).__name__} as a spritemap source; pass an http(s) "
                "or data URL, a file path, a uint8 HxWx3 numpy array or a PIL image"
            )

    @property
    def rows(self) -> int:
        """How many rows of sprites the grid needs for its channels."""
        return math.ceil(self.channels / self.per_row)

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
        """Write the grid (JPEG or PNG by suffix) and its JSON manifest beside it, atomically."""
        target = Path(path).expanduser()
        image_format = IMAGE_FORMATS.get(target.suffix.lower())
        if image_format is None:
            raise SpritemapError(
                f"cannot save a spritemap as {target.name!r}: the name must end in "
                f"{', '.join(IMAGE_FORMATS)}"
            )
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
        manifest_path = manifest_path_for(target)
        if manifest_path == target:
            raise SpritemapError(f"the grid and its manifest would both be {str(target)!r}")
        with atomic_write(target, "wb") as handle:
            handle.write(data)
        write_text_atomic(manifest_path, json.dumps(manifest, indent=1) + "\n")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Spritemap:
        """Read a spritemap saved by `save`: give the grid image or its .json manifest."""
        given = Path(path).expanduser()
        manifest_path = given if given.suffix.lower() == ".json" else manifest_path_for(given)
        if not manifest_path.is_file():
            raise SpritemapError(
                f"no spritemap manifest at {str(manifest_path)!r}; Spritemap.load reads what "
                "Spritemap.save or `semdict spritemap` wrote (a grid image plus a .json beside it)"
            )
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict):
                raise SpritemapError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            raise SpritemapError(
                f"spritemap manifest {str(manifest_path)!r} is not valid JSON ({exc})"
            ) from exc
        if manifest.get("kind") != MANIFEST_KIND or manifest.get("schema") != MANIFEST_SCHEMA:
            raise SpritemapError(
                f"{str(manifest_path)!r} is not a version-{MANIFEST_SCHEMA} spritemap manifest; "
                "rebuild the spritemap with this version of semdict_onnx"
            )
        missing = [key for key in (*_LAYOUT_KEYS, "image") if key not in manifest]
        if missing:
            raise SpritemapError(
                f"spritemap manifest {str(manifest_path)!r} lacks {', '.join(missing)}"
            )
        image_path = manifest_path.parent / manifest["image"]
        if not image_path.is_file():
            raise SpritemapError(
                f"spritemap manifest {str(manifest_path)!r} names grid {manifest['image']!r}, "
                f"which is not in {str(manifest_path.parent)!r}"
            )
        expected = manifest.get("image_sha256")
        if expected and hashlib.sha256(image_path.read_bytes()).hexdigest() != expected:
            raise SpritemapError(
                f"spritemap grid {str(image_path)!r} does not match its manifest (sha256 differs): "
                "one of the two was replaced; rebuild or re-save the spritemap"
            )
        try:
            return cls(
                image_path,
                per_row=manifest["per_row"],
                sprite_size=manifest["sprite_size"],
                channels=manifest["channels"],
                layer=manifest["layer"],
                manifest=manifest,
            )
        except TypeError as exc:
            raise SpritemapError(f"spritemap manifest {str(manifest_path)!r}: {exc}") from exc

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
        with Image.open(source) as opened:
            return opened.convert("RGB")
    except (OSError, ValueError, UnidentifiedImageError) as exc:
        raise SpritemapError(f"{what} is not a readable image ({exc})") from exc


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
