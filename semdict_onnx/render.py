"""HTML rendering of semantic dictionaries: templates, escaping, and everything embedded.

The markup, style and script live in `static/` (fragment.html, entry.html, page.html,
semdict.css, semdict.js); this module fills them. It owns the page's safety rules: every
string is HTML-escaped, image sources are only http(s) URLs or data URIs made here, and the
embedded JSON cannot end its script element. Each fragment carries a fresh uuid-based id and
a JSON payload holding every position's entries; the first selection is rendered into the
HTML itself, so the page reads without JavaScript, and the script only adds interaction.
One-line repeated elements (grid cells, class rows, sprite pictures) are built here.
"""

from __future__ import annotations

import base64
import functools
import html
import importlib.resources
import io
import json
import math
import re
import string
import uuid
import weakref
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

from .errors import ImageError

if TYPE_CHECKING:
    from .semantic_dict import SemanticDict
    from .spritemap import Spritemap

PAYLOAD_VERSION = 1
IMAGE_DISPLAY_PX = 320
SPRITE_PX = 88
IMAGE_JPEG_QUALITY = 85
SPRITE_JPEG_QUALITY = 85
POSITION_TEMPLATE = "row {row}, column {col}"
TOOLTIP_TEMPLATE = (
    "channel {channel}: activation {value} ({percent}% of the largest activation "
    "in this image's {layer})"
)
_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_FIELD = re.compile(r"\{(\w+)\}")
_SPRITE_CACHE: weakref.WeakKeyDictionary[Spritemap, dict[tuple[int, int], str]] = (
    weakref.WeakKeyDictionary()
)


@functools.cache
def _static(name: str) -> str:
    """A file of the package's static/ folder, read once."""
    text = (importlib.resources.files("semdict_onnx") / "static" / name).read_text("utf-8")
    for closing in ("</script", "</style"):
        if closing in text.lower() and name.endswith((".js", ".css")):
            raise RuntimeError(f"static/{name} must not contain {closing!r}")
    return text


@functools.cache
def _template(name: str) -> string.Template:
    """A static/ HTML file as a `string.Template` ($name placeholders)."""
    return string.Template(_static(name))


def escape(text: object) -> str:
    """`text` escaped for HTML text and quoted attribute values."""
    return html.escape(str(text), quote=True)


def json_for_script(payload: Any) -> str:
    """JSON that is safe inside a <script> element: no <, >, &, U+2028 or U+2029 left raw."""
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return re.sub("[<>&\u2028\u2029]", lambda match: _JSON_ESCAPES[match.group()], text)


def fill(template: str, **fields: object) -> str:
    """Replace `{name}` fields of a display template, the way semdict.js does."""
    return _FIELD.sub(lambda m: str(fields[m[1]]) if m[1] in fields else m[0], template)


def js_number(value: float) -> str:
    """`value` written exactly as JavaScript's String(number) writes it, for matching output."""
    if not math.isfinite(value):
        raise ValueError(f"cannot show a non-finite number ({value})")
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = exponent + len(text)  # value = 0.<digits> * 10**point
    if len(text) <= point <= 21:
        body = text + "0" * (point - len(text))
    elif 0 < point <= 21:
        body = f"{text[:point]}.{text[point:]}"
    elif -6 < point <= 0:
        body = "0." + "0" * -point + text
    else:
        mantissa = text[0] + (f".{text[1:]}" if len(text) > 1 else "")
        body = f"{mantissa}e{'+' if point - 1 >= 0 else '-'}{abs(point - 1)}"
    return ("-" if value < 0 else "") + body


def float32_values(values: np.ndarray) -> list[float]:
    """float32 values as the shortest decimals that read back as the same float32."""
    return [float(str(v)) for v in np.asarray(values, np.float32).ravel()]


def checked_image_url(url: str) -> str:
    """`url` if it is an http, https or data:image URL a page may load, else an ImageError."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https") or (scheme == "data" and url[5:].lower().startswith("image/")):
        return url
    raise ImageError(
        f"refusing image URL {url[:60]!r}: a page only loads http, https or data:image URLs"
    )


def image_data_uri(image: Image.Image, quality: int = IMAGE_JPEG_QUALITY) -> str:
    """`image` encoded as a JPEG data URI (PNG where it has transparency)."""
    buffer = io.BytesIO()
    if image.mode in ("RGBA", "LA", "P"):
        image.save(buffer, format="PNG", optimize=True)
        mime = "image/png"
    else:
        image.convert("RGB").save(buffer, format="JPEG", quality=quality)
        mime = "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def display_size(image: Image.Image, longest: int = IMAGE_DISPLAY_PX) -> tuple[int, int]:
    """The (width, height) in CSS pixels to show `image` at, keeping its aspect ratio."""
    width, height = image.size
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


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


def _sprite_markup(sprites: dict[str, Any], channel: int) -> str:
    """The picture inside one entry's sprite box, as semdict.js would show it."""
    kind = sprites["kind"]
    if kind == "none":
        return f'<span class="sd-sprite-number">{channel}</span>'
    size = sprites["size"]
    if kind == "embedded":
        src, left, top, width = sprites["images"][str(channel)], 0, 0, size
    else:
        row, col = divmod(channel, sprites["per_row"])
        src, left, top, width = sprites["url"], -size * col, -size * row, size * sprites["per_row"]
    return (
        f'<img class="sd-sprite-img" src="{escape(checked_image_url(src))}" alt="" '
        f'style="left:{left}px;top:{top}px;width:{width}px">'
    )


def _entries_markup(sd: SemanticDict, data: dict[str, Any], row: int, col: int) -> str:
    """The k entries of position (row, col), strongest first, as semdict.js would show them."""
    basis, tooltip = data["bases"][0], data["tooltip"]
    base = (row * sd.cols + col) * sd.top_k
    maximum = basis["max"]
    items = []
    for rank in range(sd.top_k):
        channel = basis["channels"][base + rank]
        value = basis["values"][base + rank]
        ratio = value / maximum if maximum > 0 else 0.0
        percent = math.floor(100 * ratio + 0.5)
        shown = js_number(value)
        items.append(
            _template("entry.html").substitute(
                rank=rank,
                channel=channel,
                value=escape(shown),
                tooltip=escape(fill(tooltip, channel=channel, value=shown, percent=percent)),
                sprite_px=basis["sprites"]["size"],
                sprite=_sprite_markup(basis["sprites"], channel),
                bar_width=f"{100 * ratio:.2f}",
                percent=percent,
            )
        )
    return "".join(items)


def _cells_markup(rows: int, cols: int, selected: tuple[int, int]) -> str:
    """One SVG cell per position, x = column and y = row, the selected one marked."""
    cells = []
    for row in range(rows):
        for col in range(cols):
            extra = " sd-selected" if (row, col) == selected else ""
            cells.append(
                f'<rect class="sd-cell{extra}" x="{col}" y="{row}" width="1" height="1" '
                f'data-row="{row}" data-col="{col}"></rect>'
            )
    return "".join(cells)


def _classes_markup(sd: SemanticDict) -> str:
    """The image's most probable classes, or nothing where labels are unknown."""
    if not sd.top_classes:
        return ""
    rows = "".join(
        f'<li class="sd-class" data-class="{c.index}"><span class="sd-class-label">'
        f'{escape(c.label)}</span><span class="sd-class-prob">{100 * c.probability:.1f}%</span>'
        "</li>"
        for c in sd.top_classes
    )
    title = f"Top {len(sd.top_classes)} classes"
    return f'<span class="sd-classes-title">{title}</span><ol class="sd-classes">{rows}</ol>'


def payload(sd: SemanticDict) -> dict[str, Any]:
    """The data semdict.js reads: grid, first selection, and each basis's entries and sprites."""
    values = float32_values(sd.values)
    basis = {
        "name": sd.basis,
        "unit": "channel",
        "max": max(values[:: sd.top_k]),
        "channels": sd.channels.ravel().tolist(),
        "values": values,
        "sprites": sprite_payload(sd.spritemap, sd.channels.ravel().tolist()),
    }
    return {
        "version": PAYLOAD_VERSION,
        "layer": sd.layer,
        "rows": sd.rows,
        "cols": sd.cols,
        "k": sd.top_k,
        "start": list(sd.start),
        "position": POSITION_TEMPLATE,
        "tooltip": TOOLTIP_TEMPLATE.replace("{layer}", sd.layer),
        "bases": [basis],
    }


def render_fragment(sd: SemanticDict, *, standalone: bool = True) -> str:
    """One dictionary as HTML; `standalone` includes its CSS and script (notebook outputs)."""
    data = payload(sd)
    basis = data["bases"][0]
    row, col = sd.start
    width, height = display_size(sd.image)
    note = sd.sprite_note or ""
    return _template("fragment.html").substitute(
        root_id=f"semdict-{uuid.uuid4().hex}",
        layer=escape(sd.layer),
        basis=escape(sd.basis),
        rows=sd.rows,
        cols=sd.cols,
        top_k=sd.top_k,
        row=row,
        col=col,
        css=_static("semdict.css") if standalone else "",
        library=_static("semdict.js") if standalone else "",
        title=escape(sd.title),
        warning=f'<span class="sd-warning" role="note">{escape(sd.weights_note)}</span>'
        if sd.replica and sd.weights_note
        else "",
        stage_label=escape(f"{sd.title}: {sd.rows} by {sd.cols} grid of {sd.layer} positions"),
        image_width=width,
        image_height=height,
        image_src=escape(image_data_uri(sd.image)),
        image_alt=escape(sd.title),
        cells=_cells_markup(sd.rows, sd.cols, (row, col)),
        classes=_classes_markup(sd),
        layer_channels=sd.layer_channels,
        position=escape(fill(POSITION_TEMPLATE, row=row, col=col)),
        max_value=escape(js_number(basis["max"])),
        entries=_entries_markup(sd, data, row, col),
        sprite_note=f'<span class="sd-note sd-sprite-note">{escape(note)}</span>' if note else "",
        weights_note="" if sd.replica else escape(sd.weights_note or ""),
        payload=json_for_script(data),
    )


def render_page(dicts: Sequence[SemanticDict], title: str | None = None) -> str:
    """A standalone HTML page showing one or more dictionaries, CSS and script included once."""
    if not dicts:
        raise ValueError("render_page needs at least one SemanticDict")
    return _template("page.html").substitute(
        title=escape(title if title is not None else dicts[0].title),
        css=_static("semdict.css"),
        library=_static("semdict.js"),
        body="\n".join(render_fragment(sd, standalone=False) for sd in dicts),
    )
