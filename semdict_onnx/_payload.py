"""The data a page's script reads: per basis, every position's entries, sprites and bar scale.

`payload` turns a dictionary into the JSON semdict.js reads (`PAYLOAD_VERSION`): the grid,
the first selection, and per basis its entries, how its directions are pictured (remote
spritemap by URL, embedded sprites of only the directions shown, or numbers), how its bars are
measured (image, raw or dataset scale) and its notes. `PageDictionary` is what the page reads
of a dictionary; `SemanticDict` (_results.py) is one.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from PIL import Image

from . import _overlays as overlays
from ._html import checked_image_url, float32_values, readable_number
from ._picture import image_data_uri
from ._sprite_notes import view_pictures_note
from ._spritemap import Spritemap
from ._views import BasisView, TopClass

PAYLOAD_VERSION = 2
SPRITE_PX = 88
SPRITE_JPEG_QUALITY = 85
POSITION_TEMPLATE = "row {row}, column {col}"
_SPRITE_CACHE: weakref.WeakKeyDictionary[Spritemap, dict[tuple[int, int], str]] = (
    weakref.WeakKeyDictionary()
)


class PageDictionary(Protocol):
    """What a page shows of one semantic dictionary (`SemanticDict` has all of it)."""

    layer: str
    layer_channels: int
    views: list[BasisView]
    image: Image.Image
    title: str
    scale: str
    top_classes: tuple[TopClass, ...] | None
    total: Any
    weights_note: str | None
    replica: bool

    @property
    def rows(self) -> int: ...

    @property
    def cols(self) -> int: ...

    @property
    def top_k(self) -> int: ...

    @property
    def start(self) -> tuple[int, int]: ...

    @property
    def image_uri(self) -> str: ...


def sprite_payload(spritemap: Spritemap | None, channels: Iterable[int]) -> dict[str, Any]:
    """How the page pictures channels: remote by URL, embedded (only `channels`), or numbers."""
    if spritemap is None:
        return {"kind": "none", "size": SPRITE_PX}
    if spritemap.is_remote:
        return {
            "kind": "remote",
            "url": checked_image_url(spritemap.url or ""),
            "per_row": spritemap.per_row,
            "size": SPRITE_PX,
        }
    size = min(SPRITE_PX, spritemap.sprite_size)
    cache = _SPRITE_CACHE.setdefault(spritemap, {})
    images = {}
    for channel in sorted(set(int(c) for c in channels)):
        key = (channel, size)
        if key not in cache:
            sprite = spritemap.sprite(channel)
            if sprite.size != (size, size):
                sprite = sprite.resize((size, size), Image.Resampling.LANCZOS)
            cache[key] = image_data_uri(sprite, SPRITE_JPEG_QUALITY)
        images[str(channel)] = cache[key]
    return {"kind": "embedded", "size": SPRITE_PX, "images": images}


def raw_references(dicts: Sequence[PageDictionary]) -> dict[str, float]:
    """Per basis method, the largest value over `dicts`: a full bar at raw scale on one page."""
    references: dict[str, float] = {}
    for sd in dicts:
        for view in sd.views:
            references[view.method] = max(references.get(view.method, 0.0), view.max_value)
    return references


def _labels(views: Sequence[BasisView]) -> list[str]:
    """Each view's label on the basis switch, numbered where two would read the same."""
    labels = [view.label for view in views]
    return [
        label if labels.count(label) == 1 else f"{label} {labels[: i + 1].count(label)}"
        for i, label in enumerate(labels)
    ]


def _scale_of(sd: PageDictionary, view: BasisView, raw: dict[str, float]) -> dict[str, Any]:
    """How `view`'s bars are measured: scale, reference(s), the page's note and tooltip."""
    word = "activation" if view.basis is None else "coefficient"
    units = f"{view.unit}s"
    image_max = float32_values([view.max_value])[0]
    if sd.scale == "dataset" and view.typical is not None:
        seen = (view.spritemap.manifest or {}).get("images_seen") if view.spritemap else None
        over = f"the {seen} images of its spritemap" if seen else "its spritemap's dataset"
        return {
            "scale": "dataset",
            "ref": None,
            "refs": float32_values(view.typical),
            "note": f"Bars: {word} relative to each {view.unit}'s typical maximum over {over} "
            "(a full bar; more than 100% is stronger than typical); the exact value shows on "
            "hover.",
            "of": f"this {view.unit}'s typical maximum over the dataset",
        }
    if sd.scale == "raw":
        reference = float32_values([raw.get(view.method, image_max)])[0]
        return {
            "scale": "raw",
            "ref": reference,
            "refs": None,
            "note": f"Bars: raw {word}s (to 3 significant digits); a full bar is "
            f"{readable_number(reference)}, the largest {word} of these {units} on this page.",
            "of": f"{readable_number(reference)}, the largest on this page",
        }
    fallback = ""
    if sd.scale == "dataset":
        fallback = f"No dataset maxima for these {units} (their pictures carry no dataset "
        fallback += "manifest), so: "
    return {
        "scale": "image",
        "ref": image_max,
        "refs": None,
        "note": f"{fallback}Bars: {word} relative to this image's largest in {sd.layer} "
        f"({readable_number(image_max)}); the exact value shows on hover.",
        "of": f"the largest {word} in this image's {sd.layer}",
    }


def _basis_payload(
    sd: PageDictionary, view: BasisView, label: str, raw: dict[str, float]
) -> dict[str, Any]:
    """One basis's part of the payload: entries, sprites, bar scale, notes and colours."""
    values = float32_values(view.values)
    channels = view.channels.ravel().tolist()
    scale = _scale_of(sd, view, raw)
    word = "activation" if view.basis is None else "coefficient"
    colours = None
    if view.maps is not None:
        colours = [overlays.hex_colour(c) for c in overlays.group_colours(view.size)]
    return {
        "name": view.method,
        "label": label,
        "description": view.description,
        "unit": view.unit,
        "units": f"{view.unit}s",
        "size": view.size,
        "k": view.top_k,
        "max": max(values[:: view.top_k]),
        "channels": channels,
        "values": values,
        "sprites": sprite_payload(view.spritemap, channels),
        "scale": scale["scale"],
        "ref": scale["ref"],
        "refs": scale["refs"],
        "note": scale["note"],
        "tooltip": f"{view.unit} {{channel}}: {word} {{value}} ({{percent}}% of {scale['of']})",
        "sprite_note": view_pictures_note(view),
        "colours": colours,
    }


def payload(sd: PageDictionary, raw: dict[str, float] | None = None) -> dict[str, Any]:
    """The data semdict.js reads: grid, first selection, and each basis's entries and sprites.

    `raw` holds the full-bar values at raw scale (default: this dictionary's own largest).
    """
    raw = raw if raw is not None else raw_references([sd])
    labels = _labels(sd.views)
    return {
        "version": PAYLOAD_VERSION,
        "layer": sd.layer,
        "rows": sd.rows,
        "cols": sd.cols,
        "k": sd.top_k,
        "start": list(sd.start),
        "position": POSITION_TEMPLATE,
        "scale": sd.scale,
        "bases": [
            _basis_payload(sd, view, label, raw)
            for view, label in zip(sd.views, labels, strict=True)
        ],
    }
