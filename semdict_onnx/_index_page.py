"""An index page linking saved dictionary pages, in the dictionary pages' own look.

One row per dictionary: a thumbnail of its picture and its title, both linking to its page,
the layer, its grid, its most probable classes where known, and where its entry pictures come
from (the sentence its page shows, _sprite_notes.py). Above the rows, a replica model's
warning; below them, an optional note. The markup is static/index.html, the style
static/index.css; every string is escaped and every link is percent-encoded.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence

from PIL import Image

from ._html import escape
from ._payload import PageDictionary
from ._picture import image_data_uri
from ._render import static_file, static_template
from ._sprite_notes import view_pictures_note
from .errors import DictionaryError

THUMBNAIL_PX = 120


def _thumbnail(image: Image.Image) -> tuple[str, int, int]:
    """A JPEG data URI of `image` at most THUMBNAIL_PX on its long side, and its size."""
    small = image.convert("RGB")
    small.thumbnail((2 * THUMBNAIL_PX, 2 * THUMBNAIL_PX), Image.Resampling.BICUBIC)
    scale = THUMBNAIL_PX / max(image.size)
    width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    return image_data_uri(small), width, height


def _row(href: str, sd: PageDictionary) -> str:
    """One dictionary's row: thumbnail, title, layer, grid, classes, where its pictures are from."""
    link = escape(urllib.parse.quote(href))
    thumbnail, width, height = _thumbnail(sd.image)
    view = sd.views[0]
    grid = f"{sd.rows} x {sd.cols} positions (rows x columns), top {sd.top_k} of "
    grid += f"{view.size} {view.unit}s" if view.basis is None else view.description
    classes = ""
    if sd.top_classes:
        named = ", ".join(f"{c.label} ({100 * c.probability:.1f}%)" for c in sd.top_classes[:3])
        classes = f'<div class="sd-index-classes">Most probable: {escape(named)}</div>'
    return (
        '<li class="sd-index-row">'
        f'<a class="sd-index-thumb" href="{link}" tabindex="-1" aria-hidden="true">'
        f'<img src="{thumbnail}" alt="" width="{width}" height="{height}"></a>'
        '<div class="sd-index-text">'
        f'<a class="sd-index-name" href="{link}">{escape(sd.title)}</a>'
        f'<span class="sd-index-layer">{escape(sd.layer)}</span>'
        f'<div class="sd-index-grid">{escape(grid)}</div>{classes}'
        f'<div class="sd-index-pictures">{escape(view_pictures_note(view))}</div>'
        "</div></li>"
    )


def render_index(
    pages: Sequence[tuple[str, PageDictionary]], title: str, note: str | None = None
) -> str:
    """An HTML page listing `pages`, (link to the saved page, its dictionary) pairs, in order.

    A replica's weights note shows as a warning above the rows; `note` is printed below them.
    """
    if not pages:
        raise DictionaryError("an index needs at least one dictionary page")
    warnings = dict.fromkeys(sd.weights_note for _, sd in pages if sd.replica and sd.weights_note)
    count = len(pages)
    return static_template("index.html").substitute(
        title=escape(title),
        count=f"{count} dictionar{'y' if count == 1 else 'ies'}",
        css=static_file("index.css"),
        warning="".join(
            f'<p class="sd-index-warning" role="note">{escape(text)}</p>' for text in warnings
        ),
        rows="\n".join(_row(href, sd) for href, sd in pages),
        note=f'<p class="sd-index-note">{escape(note)}</p>' if note else "",
    )
