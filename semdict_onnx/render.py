"""HTML rendering of semantic dictionaries: templates, escaping, and everything embedded.

The markup, style and script live in `static/` (fragment.html, entry.html, page.html,
semdict.css, semdict.js); this module fills them. It owns the page's safety rules: every
string is HTML-escaped, image sources are only http(s) URLs or data URIs made here, and the
embedded JSON cannot end its script element. Each fragment carries a fresh uuid-based id and
a JSON payload holding, per basis, every position's entries and how bars are scaled; the first
selection of the first basis is rendered into the HTML itself, so the page reads without
JavaScript, and the script only adds interaction (hover, pin, keys, the basis switch, the
group overlay and heat map toggles). One-line repeated elements (grid cells, class rows, sprite
pictures, buttons, overlay layers) are built here; the overlay pictures come from overlays.py.
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

from . import overlays
from .errors import DictionaryError, ImageError

if TYPE_CHECKING:
    from .semantic_dict import BasisView, SemanticDict
    from .spritemap import Spritemap

PAYLOAD_VERSION = 2
IMAGE_DISPLAY_PX = 320
SPRITE_PX = 88
IMAGE_JPEG_QUALITY = 85
SPRITE_JPEG_QUALITY = 85
POSITION_TEMPLATE = "row {row}, column {col}"
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
    return (importlib.resources.files("semdict_onnx") / "static" / name).read_text("utf-8")


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
        raise DictionaryError(f"cannot show a non-finite number ({value})")
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


def data_uri(data: bytes, mime: str) -> str:
    """`data` as a base64 data URI of type `mime`."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_data_uri(image: Image.Image, quality: int = IMAGE_JPEG_QUALITY) -> str:
    """`image` encoded as a JPEG data URI (PNG where it has transparency)."""
    buffer = io.BytesIO()
    if image.mode in ("RGBA", "LA", "P"):
        image.save(buffer, format="PNG", optimize=True)
        return data_uri(buffer.getvalue(), "image/png")
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return data_uri(buffer.getvalue(), "image/jpeg")


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


def js_round(value: float) -> int:
    """`value` rounded as JavaScript's Math.round does (halves go up)."""
    whole = math.floor(value)
    return whole + 1 if value - whole >= 0.5 else whole


def bar_parts(value: float, reference: float, raw: bool) -> tuple[str, int, str]:
    """A bar's width (percent, 2 decimals), its percentage, and its label, as semdict.js has them.

    The label is the percentage, or at raw scale the value rounded to 2 decimals.
    """
    ratio = value / reference if reference > 0 else 0.0
    percent = js_round(100 * ratio)
    label = js_number(js_round(value * 100) / 100) if raw else f"{percent}%"
    return f"{min(100.0, 100 * ratio):.2f}", percent, label


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


def _entries_markup(sd: SemanticDict, basis: dict[str, Any], row: int, col: int) -> str:
    """The k entries of position (row, col) in `basis`, strongest first, as semdict.js shows."""
    base = (row * sd.cols + col) * basis["k"]
    raw = basis["scale"] == "raw"
    items = []
    for rank in range(basis["k"]):
        channel = basis["channels"][base + rank]
        value = basis["values"][base + rank]
        reference = basis["refs"][channel] if basis["refs"] else basis["ref"]
        width, percent, label = bar_parts(value, reference, raw)
        shown = js_number(value)
        colours = basis["colours"]
        items.append(
            _template("entry.html").substitute(
                rank=rank,
                channel=channel,
                value=escape(shown),
                tooltip=escape(
                    fill(basis["tooltip"], channel=channel, value=shown, percent=percent)
                ),
                sprite_px=basis["sprites"]["size"],
                sprite=_sprite_markup(basis["sprites"], channel),
                swatch=escape(colours[channel] if colours else "transparent"),
                swatch_hidden="" if colours else " hidden",
                unit=escape(basis["unit"]),
                bar_width=width,
                label=escape(label),
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


def _labels(views: Sequence[BasisView]) -> list[str]:
    """Each view's label on the basis switch, numbered where two would read the same."""
    labels = [view.label for view in views]
    return [
        label if labels.count(label) == 1 else f"{label} {labels[: i + 1].count(label)}"
        for i, label in enumerate(labels)
    ]


def raw_references(dicts: Sequence[SemanticDict]) -> dict[str, float]:
    """Per basis method, the largest value over `dicts`: a full bar at raw scale on one page."""
    references: dict[str, float] = {}
    for sd in dicts:
        for view in sd.views:
            references[view.method] = max(references.get(view.method, 0.0), view.max_value)
    return references


def _scale_of(sd: SemanticDict, view: BasisView, raw: dict[str, float]) -> dict[str, Any]:
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
            "note": f"Bars: raw {word}s (numbers rounded to 2 decimals); a full bar is "
            f"{js_number(reference)}, the largest {word} of these {units} on this page.",
            "of": f"{js_number(reference)}, the largest on this page",
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
        f"({js_number(image_max)}); the exact value shows on hover.",
        "of": f"the largest {word} in this image's {sd.layer}",
    }


def _basis_payload(
    sd: SemanticDict, view: BasisView, label: str, raw: dict[str, float]
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
        "sprite_note": view.sprite_note or "",
        "colours": colours,
    }


def payload(sd: SemanticDict, raw: dict[str, float] | None = None) -> dict[str, Any]:
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


def _controls_markup(sd: SemanticDict, data: dict[str, Any]) -> str:
    """The basis switch (with several bases) and the overlay and heat map toggles."""
    buttons = []
    if len(data["bases"]) > 1:
        for index, basis in enumerate(data["bases"]):
            buttons.append(
                f'<button type="button" class="sd-button sd-basis-button" '
                f'data-basis-index="{index}" aria-pressed="{"true" if index == 0 else "false"}" '
                f'title="{escape(basis["description"])}">{escape(basis["label"])}</button>'
            )
    if any(view.maps is not None for view in sd.views):
        hidden = "" if sd.views[0].maps is not None else " hidden"
        buttons.append(
            '<button type="button" class="sd-button sd-toggle sd-toggle-overlay" '
            f'aria-pressed="true"{hidden}>regions on image</button>'
        )
    if sd.total is not None:
        buttons.append(
            '<button type="button" class="sd-button sd-toggle sd-toggle-heat" '
            'aria-pressed="false">heat map</button>'
        )
    if not buttons:
        return ""
    label = escape(f"{sd.title}: dictionary controls")
    return f'<div class="sd-controls" role="toolbar" aria-label="{label}">{"".join(buttons)}</div>'


def _layers_markup(sd: SemanticDict) -> str:
    """Pictures between the image and the grid: the heat map, and each basis's group overlays.

    The first basis's blended overlay is shown; everything else is hidden until asked for.
    """
    layers = []
    if sd.total is not None:
        src = overlays.png_data_uri(overlays.heat_layer(sd.total))
        layers.append(f'<img class="sd-heat" src="{escape(src)}" alt="" hidden>')
    for index, view in enumerate(sd.views):
        if view.maps is None:
            continue
        pictures = [("all", overlays.groups_blend(view.maps))]
        pictures += list(enumerate(overlays.group_layers(view.maps)))
        for group, rgba in pictures:
            shown = index == 0 and group == "all"
            layers.append(
                f'<img class="sd-overlay" data-basis-index="{index}" data-group="{group}" '
                f'src="{escape(overlays.png_data_uri(rgba))}" alt=""{"" if shown else " hidden"}>'
            )
    return "\n".join(layers)


def _heat_note(sd: SemanticDict) -> str:
    """The line that explains the heat map while it is shown."""
    if sd.total is None:
        return ""
    text = (
        f"Heat map: total activation of {sd.layer} at each position (the sum over its "
        f"{sd.layer_channels} channels), dark to light up to its largest here "
        f"({js_number(float32_values([sd.total.max()])[0])})."
    )
    return f'<span class="sd-note sd-heat-note" hidden>{escape(text)}</span>'


def render_fragment(
    sd: SemanticDict, *, standalone: bool = True, raw: dict[str, float] | None = None
) -> str:
    """One dictionary as HTML; `standalone` includes its CSS and script (notebook outputs).

    `raw` holds the full-bar values at raw scale shared by the dictionaries of one page.
    """
    data = payload(sd, raw)
    first = data["bases"][0]
    view = sd.views[0]
    row, col = sd.start
    width, height = display_size(sd.image)
    return _template("fragment.html").substitute(
        root_id=f"semdict-{uuid.uuid4().hex}",
        layer=escape(sd.layer),
        basis=escape(first["name"]),
        scale=escape(first["scale"]),
        overlay="on" if view.maps is not None else "none",
        rows=sd.rows,
        cols=sd.cols,
        top_k=first["k"],
        row=row,
        col=col,
        css=_static("semdict.css") if standalone else "",
        library=_static("semdict.js") if standalone else "",
        title=escape(sd.title),
        warning=f'<span class="sd-warning" role="note">{escape(sd.weights_note)}</span>'
        if sd.replica and sd.weights_note
        else "",
        controls=_controls_markup(sd, data),
        stage_label=escape(f"{sd.title}: {sd.rows} by {sd.cols} grid of {sd.layer} positions"),
        image_width=width,
        image_height=height,
        image_src=sd.image_uri,  # a base64 data URI: nothing in it needs escaping
        image_alt=escape(sd.title),
        layers=_layers_markup(sd),
        cells=_cells_markup(sd.rows, sd.cols, (row, col)),
        heat_note=_heat_note(sd),
        classes=_classes_markup(sd),
        size=first["size"],
        units=escape(first["units"]),
        position=escape(fill(POSITION_TEMPLATE, row=row, col=col)),
        entries=_entries_markup(sd, first, row, col),
        scale_note=escape(first["note"]),
        sprite_note=escape(first["sprite_note"]),
        sprite_note_hidden="" if first["sprite_note"] else " hidden",
        weights_note="" if sd.replica else escape(sd.weights_note or ""),
        payload=json_for_script(data),
    )


def render_page(
    dicts: Sequence[SemanticDict], title: str | None = None, *, heading: bool = False
) -> str:
    """A standalone HTML page showing one or more dictionaries, CSS and script included once.

    `heading` puts the title above them (a gallery); at raw scale they share one full bar.
    """
    if not dicts:
        raise DictionaryError("render_page needs at least one SemanticDict")
    title = title if title is not None else dicts[0].title
    raw = raw_references(dicts)
    return _template("page.html").substitute(
        title=escape(title),
        heading=_gallery_heading(title, len(dicts)) if heading else "",
        css=_static("semdict.css"),
        library=_static("semdict.js"),
        body="\n".join(render_fragment(sd, standalone=False, raw=raw) for sd in dicts),
    )


def render_gallery_fragment(dicts: Sequence[SemanticDict], title: str) -> str:
    """Several dictionaries as one self-contained fragment (notebooks): CSS and script once."""
    if not dicts:
        raise DictionaryError("render_gallery_fragment needs at least one SemanticDict")
    raw = raw_references(dicts)
    body = "\n".join(render_fragment(sd, standalone=False, raw=raw) for sd in dicts)
    return (
        f'<div class="semdict-gallery"><style>{_static("semdict.css")}</style>'
        f"<script>{_static('semdict.js')}</script>\n{_gallery_heading(title, len(dicts))}\n"
        f"{body}\n</div>"
    )


def _gallery_heading(title: str, count: int) -> str:
    """The line above a gallery: its title and how many dictionaries it holds."""
    plural = "ies" if count != 1 else "y"
    return (
        f'<div class="semdict-gallery-title">{escape(title)} '
        f'<span class="semdict-gallery-count">({count} dictionar{plural})</span></div>'
    )
