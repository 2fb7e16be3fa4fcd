"""HTML of semantic dictionaries: the templates in static/ filled in, with everything embedded.

The markup, style and script live in `static/` (fragment.html, entry.html, page.html,
semdict.css, semdict.js); this module fills them. Each fragment carries a fresh uuid-based id
and the JSON payload (_payload.py); the first selection of the first basis is rendered into
the HTML itself, so the page reads without JavaScript, and the script only adds interaction
(hover, pin, keys, the basis switch, the group overlay and heat map toggles). One-line
repeated elements (grid cells, class rows, sprite pictures, buttons, overlay layers) are
built here; every string goes through _html.py's escaping, and the overlay pictures come
from _overlays.py.
"""

from __future__ import annotations

import functools
import importlib.resources
import string
import uuid
from collections.abc import Sequence
from typing import Any

from . import _overlays as overlays
from ._html import (
    bar_parts,
    checked_image_url,
    escape,
    fill,
    float32_values,
    js_number,
    json_for_script,
    readable_number,
)
from ._payload import POSITION_TEMPLATE, PageDictionary, payload, raw_references
from ._picture import display_size
from .errors import DictionaryError

# `hidden` with a value: JupyterLab's sanitizer drops attributes left empty, and an untrusted
# notebook would then show what only the script can use.
_HIDDEN = ' hidden="hidden"'
# Over the image, as an inline style (sanitizing hosts keep inline styles, not style sheets).
_OVER = 'style="position:absolute;left:0;top:0;width:100%;height:100%"'


@functools.cache
def static_file(name: str) -> str:
    """A file of the package's static/ folder, read once."""
    return (importlib.resources.files("semdict_onnx") / "static" / name).read_text("utf-8")


@functools.cache
def static_template(name: str) -> string.Template:
    """A static/ HTML file as a `string.Template` ($name placeholders)."""
    return string.Template(static_file(name))


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
        f'style="position:absolute;max-width:none;height:auto;left:{left}px;top:{top}px;'
        f'width:{width}px">'
    )


def _entries_markup(sd: PageDictionary, basis: dict[str, Any], row: int, col: int) -> str:
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
            static_template("entry.html").substitute(
                rank=rank,
                channel=channel,
                value=escape(shown),
                tooltip=escape(
                    fill(basis["tooltip"], channel=channel, value=shown, percent=percent)
                ),
                sprite_px=basis["sprites"]["size"],
                sprite=_sprite_markup(basis["sprites"], channel),
                swatch=escape(colours[channel] if colours else "transparent"),
                swatch_hidden="" if colours else _HIDDEN,
                unit=escape(basis["unit"]),
                bar_width=width,
                label=escape(label),
            )
        )
    return "".join(items)


def _lines_path(rows: int, cols: int) -> str:
    """The SVG path of the faint lines between grid cells (in cell units, as the viewBox)."""
    across = "".join(f"M0 {row}H{cols}" for row in range(1, rows))
    down = "".join(f"M{col} 0V{rows}" for col in range(1, cols))
    return across + down


def _marker_markup(rows: int, cols: int, selected: tuple[int, int]) -> str:
    """An outline of the first selection that needs no SVG and no style sheet.

    Sanitizing hosts (an untrusted notebook in JupyterLab) drop the SVG grid, the style sheet
    and the script but keep inline styles, so this box still marks the position whose entries
    are shown; the style sheet hides it wherever the grid is drawn.
    """
    row, col = selected
    place = (
        f"left:{100 * col / cols:.4f}%;top:{100 * row / rows:.4f}%;"
        f"width:{100 / cols:.4f}%;height:{100 / rows:.4f}%"
    )
    return (
        f'<span class="sd-marker" aria-hidden="true" style="position:absolute;{place};'
        'box-sizing:border-box;border:2px solid #ff6a00"></span>'
    )


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


def _classes_markup(sd: PageDictionary) -> str:
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
    return f'<div class="sd-classes-title">{title}</div><ol class="sd-classes">{rows}</ol>'


def _controls_markup(sd: PageDictionary, data: dict[str, Any]) -> str:
    """The basis switch (with several bases) and the overlay, cell line and heat map toggles.

    They sit after the grid, so the grid is the first stop of the Tab key, and stay hidden
    until the script runs (without it they would do nothing).
    """
    buttons = []
    if len(data["bases"]) > 1:
        for index, basis in enumerate(data["bases"]):
            buttons.append(
                f'<button type="button" class="sd-button sd-basis-button" '
                f'data-basis-index="{index}" aria-pressed="{"true" if index == 0 else "false"}" '
                f'title="{escape(basis["description"])}">{escape(basis["label"])}</button>'
            )
    if any(view.maps is not None for view in sd.views):
        hidden = "" if sd.views[0].maps is not None else _HIDDEN
        buttons.append(
            '<button type="button" class="sd-button sd-toggle sd-toggle-overlay" '
            f'aria-pressed="true"{hidden}>regions on image</button>'
        )
    buttons.append(
        '<button type="button" class="sd-button sd-toggle sd-toggle-lines" '
        'aria-pressed="true">cell lines</button>'
    )
    if sd.total is not None:
        buttons.append(
            '<button type="button" class="sd-button sd-toggle sd-toggle-heat" '
            'aria-pressed="false">heat map</button>'
        )
    label = escape(f"{sd.title}: dictionary controls")
    return (
        f'<div class="sd-controls" role="toolbar" aria-label="{label}"{_HIDDEN}>'
        f"{''.join(buttons)}</div>"
    )


def _layers_markup(sd: PageDictionary) -> str:
    """Pictures between the image and the grid: the heat map, and each basis's group overlays.

    The first basis's blended overlay is shown; everything else is hidden until asked for.
    Each is placed over the image by an inline style too, which sanitizing hosts keep.
    """
    layers = []
    if sd.total is not None:
        src = overlays.png_data_uri(overlays.heat_layer(sd.total))
        layers.append(f'<img class="sd-heat" src="{escape(src)}" alt="" {_OVER}{_HIDDEN}>')
    for index, view in enumerate(sd.views):
        if view.maps is None:
            continue
        pictures = [("all", overlays.groups_blend(view.maps))]
        pictures += list(enumerate(overlays.group_layers(view.maps)))
        for group, rgba in pictures:
            shown = index == 0 and group == "all"
            layers.append(
                f'<img class="sd-overlay" data-basis-index="{index}" data-group="{group}" '
                f'src="{escape(overlays.png_data_uri(rgba))}" alt="" {_OVER}'
                f"{'' if shown else _HIDDEN}>"
            )
    return "\n".join(layers)


def _heat_note(sd: PageDictionary) -> str:
    """The line that explains the heat map while it is shown."""
    if sd.total is None:
        return ""
    text = (
        f"Heat map: total activation of {sd.layer} at each position (the sum over its "
        f"{sd.layer_channels} channels), dark to light up to its largest here "
        f"({readable_number(float32_values([sd.total.max()])[0])})."
    )
    return f'<div class="sd-note sd-heat-note"{_HIDDEN}>{escape(text)}</div>'


def render_fragment(
    sd: PageDictionary, *, standalone: bool = True, raw: dict[str, float] | None = None
) -> str:
    """One dictionary as HTML; `standalone` includes its CSS and script (notebook outputs).

    `raw` holds the full-bar values at raw scale shared by the dictionaries of one page.
    """
    data = payload(sd, raw)
    first = data["bases"][0]
    view = sd.views[0]
    row, col = sd.start
    width, height = display_size(sd.image)
    return static_template("fragment.html").substitute(
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
        css=static_file("semdict.css") if standalone else "",
        library=static_file("semdict.js") if standalone else "",
        title=escape(sd.title),
        warning=f'<div class="sd-warning" role="note">{escape(sd.weights_note)}</div>'
        if sd.replica and sd.weights_note
        else "",
        controls=_controls_markup(sd, data),
        stage_label=escape(f"{sd.title}: {sd.rows} by {sd.cols} grid of {sd.layer} positions"),
        image_width=width,
        image_height=height,
        image_src=sd.image_uri,  # a base64 data URI: nothing in it needs escaping
        image_alt=escape(sd.title),
        layers=_layers_markup(sd),
        lines=_lines_path(sd.rows, sd.cols),
        cells=_cells_markup(sd.rows, sd.cols, (row, col)),
        marker=_marker_markup(sd.rows, sd.cols, (row, col)),
        heat_note=_heat_note(sd),
        classes=_classes_markup(sd),
        size=first["size"],
        units=escape(first["units"]),
        position=escape(fill(POSITION_TEMPLATE, row=row, col=col)),
        entries=_entries_markup(sd, first, row, col),
        scale_note=escape(first["note"]),
        sprite_note=escape(first["sprite_note"]),
        weights_note="" if sd.replica else escape(sd.weights_note or ""),
        payload=json_for_script(data),
    )


def render_page(
    dicts: Sequence[PageDictionary], title: str | None = None, *, heading: bool = False
) -> str:
    """A standalone HTML page showing one or more dictionaries, CSS and script included once.

    `heading` puts the title above them (a gallery); at raw scale they share one full bar.
    """
    if not dicts:
        raise DictionaryError("render_page needs at least one SemanticDict")
    title = title if title is not None else dicts[0].title
    raw = raw_references(dicts)
    return static_template("page.html").substitute(
        title=escape(title),
        heading=_gallery_heading(title, len(dicts)) if heading else "",
        css=static_file("semdict.css"),
        library=static_file("semdict.js"),
        body="\n".join(render_fragment(sd, standalone=False, raw=raw) for sd in dicts),
    )


def render_gallery_fragment(dicts: Sequence[PageDictionary], title: str) -> str:
    """Several dictionaries as one self-contained fragment (notebooks): CSS and script once."""
    if not dicts:
        raise DictionaryError("render_gallery_fragment needs at least one SemanticDict")
    raw = raw_references(dicts)
    body = "\n".join(render_fragment(sd, standalone=False, raw=raw) for sd in dicts)
    return (
        f'<div class="semdict-gallery"><style>{static_file("semdict.css")}</style>'
        f"<script>{static_file('semdict.js')}</script>\n{_gallery_heading(title, len(dicts))}\n"
        f"{body}\n</div>"
    )


def _gallery_heading(title: str, count: int) -> str:
    """The line above a gallery: its title and how many dictionaries it holds."""
    plural = "ies" if count != 1 else "y"
    return (
        f'<div class="semdict-gallery-title">{escape(title)} '
        f'<span class="semdict-gallery-count">({count} dictionar{plural})</span></div>'
    )
