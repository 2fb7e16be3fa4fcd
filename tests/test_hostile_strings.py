"""Hostile strings in every place a page shows one, checked in the raw HTML and in Chromium.

The payloads break out of attribute values with a double or a single quote alone (no `<`),
with a quote and a tag, or close the elements and scripts around them. They go in through
everything a user or a model file controls: image file names and URLs (the titles), titles,
the model's network name, layer name and class labels, notes, spritemap URLs and manifest
fields, and basis descriptions. Pages hold several bases, and every basis button, toggle, cell
and entry is used, since the script rewrites notes and pictures on a switch.

A payload that ran would set window.__pwned, open a dialog, or leave an element, an on*
attribute or a data-pwned attribute behind; all of these are looked for, along with any global
the page added besides the library's own. The raw HTML is parsed too: no on* attribute, no
unexpected tag, the expected number of scripts, and attribute values that read back as the
exact strings given.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import numpy as np
import onnx
import pytest
from chromium_pages import Opened, basis_button, cell, launched, opened
from semdict_helpers import numbered_grid, picture, random_activations
from tiny_model import build_tiny_model, tiny_info

from semdict_onnx import _render as render
from semdict_onnx._atomic import write_text_atomic
from semdict_onnx._bases import Basis
from semdict_onnx._model import load_model
from semdict_onnx._nmf import factorize
from semdict_onnx._pipeline import gallery, semantic_dict
from semdict_onnx._results import SemanticDict
from semdict_onnx._spritemap import Spritemap
from semdict_onnx._views import BasisView, TopClass

# Quote-only attribute breakouts: in a double-quoted alt= of a loading image, the first runs.
DOUBLE = 'x" onload="window.__pwned=1'
SINGLE = "x' onload='window.__pwned=2"
DOUBLE_ATTR = 'y" data-pwned="1" onmouseover="window.__pwned=3" onfocus="window.__pwned=3'
SINGLE_ATTR = "y' data-pwned='1' onmouseover='window.__pwned=4"
# A quote, then a tag.
QUOTE_TAG = '"><img src=x onerror="window.__pwned=5" data-pwned>'
SQUOTE_TAG = "'><svg data-pwned onload='window.__pwned=6'>"
# Closing what surrounds the string.
CLOSE_TAG = "</span></div><img src=x onerror=window.__pwned=7 data-pwned>"
SCRIPT = "</script><script>window.__pwned=8</script>"
TEMPLATE = "\u2028\u2029${x}{{7*7}}{channel}&amp;&lt;"
# What a file name can hold (no slash).
FILE_NAMES = [DOUBLE, SINGLE, DOUBLE_ATTR, SINGLE_ATTR, QUOTE_TAG, SQUOTE_TAG]
EVERY = [*FILE_NAMES, CLOSE_TAG, SCRIPT, TEMPLATE]
# An https URL (so it is allowed) that breaks out of a src= attribute; it fails to load.
REMOTE_SPRITES = 'https://sprites.example/grid.jpeg" onerror="window.__pwned=9'

TAGS = {
    "html", "head", "meta", "title", "style", "script", "body", "div", "span", "img", "svg",
    "rect", "g", "path", "ol", "li", "b", "button",
}  # fmt: skip


# --- the raw HTML ------------------------------------------------------------------------------


class Parsed(HTMLParser):
    """Every start tag with its attributes (values unescaped) and the text of every script."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data

    def values(self, tag: str, cls: str, attribute: str) -> list[str | None]:
        """The `attribute` of every `tag` element whose class list holds `cls`."""
        return [
            attrs.get(attribute)
            for name, attrs in self.elements
            if name == tag and cls in (attrs.get("class") or "").split()
        ]


def inert_html(html: str, scripts: int) -> Parsed:
    """The parsed page, checked to hold no injected tag, handler or script."""
    parsed = Parsed(html)
    tags = {tag for tag, _ in parsed.elements}
    assert tags <= TAGS, tags - TAGS
    for tag, attrs in parsed.elements:
        injected = [name for name in attrs if name.startswith("on") or name == "data-pwned"]
        assert not injected, (tag, attrs)
        assert not (tag == "img" and attrs.get("src") == "x"), attrs
    assert len(parsed.scripts) == scripts
    for text, (_, attrs) in zip(
        parsed.scripts, [e for e in parsed.elements if e[0] == "script"], strict=True
    ):
        if attrs.get("type") == "application/json":
            json.loads(text)  # the payload is whole: nothing closed its script early
    return parsed


def payloads(parsed: Parsed) -> list[dict]:
    """The JSON payload of every dictionary on the page."""
    return [
        json.loads(text)
        for text, (_, attrs) in zip(
            parsed.scripts, [e for e in parsed.elements if e[0] == "script"], strict=True
        )
        if attrs.get("type") == "application/json"
    ]


# --- in Chromium -------------------------------------------------------------------------------

TRACES = """
() => {
  const attributes = [];
  for (const element of document.querySelectorAll('*')) {
    for (const attribute of element.attributes) {
      if (attribute.name.startsWith('on') || attribute.name === 'data-pwned') {
        attributes.push(element.tagName + ' ' + attribute.name);
      }
    }
  }
  return {
    attributes: attributes,
    images: Array.from(document.images).filter(i => i.getAttribute('src') === 'x').length,
    svgs: document.querySelectorAll('svg:not(.sd-grid)').length,
    scripts: document.scripts.length,
    pwned: typeof window.__pwned,
    globals: Object.getOwnPropertyNames(window),
  };
}
"""


@pytest.fixture(scope="module")
def browser():
    with launched() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def blank_globals(browser, tmp_path_factory) -> set[str]:
    """The globals of an empty page in this Chromium, to tell what a page added."""
    path = write_text_atomic(tmp_path_factory.mktemp("blank") / "blank.html", "<!doctype html>")
    with opened(browser, path) as run:
        return set(run.page.evaluate("() => Object.getOwnPropertyNames(window)"))


def assert_nothing_ran(run: Opened, blank: set[str], scripts: int) -> None:
    """No dialog, no trace of a payload, and no global but the library's own."""
    run.page.wait_for_timeout(100)  # let image load and error handlers run
    traces = run.page.evaluate(TRACES)
    assert run.dialogs == []
    assert traces["pwned"] == "undefined"
    assert traces["attributes"] == [] and traces["images"] == 0 and traces["svgs"] == 0
    assert traces["scripts"] == scripts
    assert set(traces["globals"]) - blank == {"semdictOnnx1"}


def exercise(run: Opened, index: int, data: dict) -> None:
    """Use every control of dictionary `index`: each basis, cells, entries, toggles, keys.

    After each switch the notes shown must be the payload's, as text (a note put in as HTML
    would lose its tags).
    """
    root = run.root(index)
    rows, cols = data["rows"], data["cols"]
    count = len(data["bases"])
    for basis in [*range(1, count), 0] if count > 1 else [0]:
        if count > 1:
            basis_button(root, basis).click()
            assert root.get_attribute("data-basis-index") == str(basis)
        expected = data["bases"][basis]
        note = root.locator(".sd-sprite-note")
        assert note.evaluate("n => n.textContent") == expected["sprite_note"]
        assert note.evaluate("n => n.children.length") == 0
        scale = root.locator(".sd-scale-note")
        assert scale.evaluate("n => [n.textContent, n.children.length]") == [expected["note"], 0]
        for row, col in [(0, 0), (rows - 1, cols - 1), (rows // 2, cols // 2)]:
            cell(root, row, col).hover()
            entries = root.locator(".sd-entry")
            for rank in range(entries.count()):
                entries.nth(rank).hover()
        cell(root, 0, cols - 1).click()
        run.page.keyboard.press("ArrowDown")
        run.page.keyboard.press("Escape")
        for toggle in (".sd-toggle-overlay", ".sd-toggle-heat"):
            button = root.locator(toggle)
            if button.count() and button.is_visible():
                button.click()
                button.click()


# --- pages -------------------------------------------------------------------------------------


def hostile_tiny_model(path: Path, layer: str, network: str, labels: list[str]) -> Path:
    """The tiny model with its `late` layer renamed, and a hostile network name and labels."""
    info = tiny_info(replica=False)
    layers = tuple(
        dataclasses.replace(item, name=layer) if item.name == "late" else item
        for item in info.layers
    )
    info = dataclasses.replace(info, network=network, layers=layers, labels=tuple(labels))
    model = build_tiny_model(metadata=info.to_json())
    for node in model.graph.node:
        node.input[:] = [layer if name == "late" else name for name in node.input]
        node.output[:] = [layer if name == "late" else name for name in node.output]
    for output in model.graph.output:
        if output.name == "late":
            output.name = layer
    onnx.save(model, str(path))
    return path


class ImageServer(http.server.BaseHTTPRequestHandler):
    """Serves one PNG at every path (the server's `png`), recording the paths asked for."""

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        self.server.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.server.png)))
        self.end_headers()
        self.wfile.write(self.server.png)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def image_server(tmp_path) -> Iterator[http.server.ThreadingHTTPServer]:
    """A loopback server handing out one small picture at any path."""
    picture(48, 40, seed=3).save(tmp_path / "served.png")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ImageServer)
    httpd.daemon_threads = True
    httpd.png = (tmp_path / "served.png").read_bytes()
    httpd.paths = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_file_names_urls_and_model_strings_never_execute(
    browser, blank_globals, tmp_path, image_server
):
    labels = ["dummy", DOUBLE, SINGLE_ATTR, QUOTE_TAG, CLOSE_TAG, SCRIPT]
    model = load_model(
        hostile_tiny_model(tmp_path / "hostile.onnx", DOUBLE_ATTR, SQUOTE_TAG, labels),
        providers=["CPUExecutionProvider"],
    )
    dicts = []
    for number, name in enumerate(FILE_NAMES):
        path = tmp_path / f"{name}.png"
        picture(64, 80, seed=number).save(path)
        bases = ["neurons", "nmf"] if number % 2 else ["nmf", "neurons"]
        dicts.append(semantic_dict(path, DOUBLE_ATTR, model, 3, basis=bases, n_groups=3))
    port = image_server.server_address[1]
    for name in (CLOSE_TAG, SCRIPT, DOUBLE):
        url = f"http://127.0.0.1:{port}/photos/{quote(name + '.png', safe='')}"
        dicts.append(semantic_dict(url, DOUBLE_ATTR, model, 3, basis=["neurons", "nmf"]))
    titles = [*(f"{name}.png" for name in FILE_NAMES), *(f"{n}.png" for n in (CLOSE_TAG, SCRIPT))]
    titles.append(f"{DOUBLE}.png")
    assert [sd.title for sd in dicts] == titles
    page = gallery(dicts, title=SINGLE, progress=False).save(tmp_path / f"{SQUOTE_TAG}.html")
    html = page.read_text(encoding="utf-8")
    scripts = 1 + 3 * len(dicts)
    parsed = inert_html(html, scripts)
    assert parsed.values("img", "sd-image", "alt") == titles  # read back exactly
    for data in payloads(parsed):
        assert data["layer"] == DOUBLE_ATTR
        assert all(DOUBLE_ATTR in basis["note"] for basis in data["bases"])
    descriptions = parsed.values("button", "sd-basis-button", "title")
    assert len(descriptions) == 2 * len(dicts) and "12 neurons" in descriptions
    groups = [text for text in descriptions if "NMF" in str(text)]
    assert len(groups) == len(dicts)
    assert all(str(text).endswith(f" NMF groups of {DOUBLE_ATTR} over 1 image") for text in groups)
    with opened(browser, page) as run:
        assert run.page.title() == SINGLE
        for index, data in enumerate(payloads(parsed)):
            root = run.root(index)
            assert root.locator(".sd-title").inner_text() == titles[index]
            assert root.locator(".sd-layer").inner_text() == DOUBLE_ATTR
            assert root.get_attribute("data-layer") == DOUBLE_ATTR
            assert root.locator(".sd-image").get_attribute("alt") == titles[index]
            shown_labels = root.locator(".sd-class-label").all_inner_texts()
            assert set(shown_labels) <= set(labels) and len(shown_labels) == 5
            exercise(run, index, data)
        notes = run.page.locator(".sd-note:not(.sd-scale-note):not(.sd-sprite-note)")
        assert f"{SQUOTE_TAG}, source graph sha256 000000000000." in notes.all_inner_texts()
        assert_nothing_ran(run, blank_globals, scripts)
    assert run.blocked == []


def hostile_spritemap(channels: int, seen: str, **fields: object) -> Spritemap:
    """Numbered sprites whose manifest carries hostile fields and dataset maxima."""
    manifest = {
        "images_seen": seen,
        "method": seen,
        "skipped": [{"source": seen, "reason": seen}],
        "sprites": [
            {"channel": c, "source": seen, "examples": [{"source": seen, "activation": 1.5}]}
            for c in range(channels)
        ],
        **fields,
    }
    return Spritemap(numbered_grid(channels), 8, 40, channels, layer=seen, manifest=manifest)


def hostile_dict(seed: int, replica: bool) -> SemanticDict:
    """Three bases (neurons, NMF groups, a given basis), every string of them hostile."""
    acts = random_activations(4, 6, 12, seed)
    neurons_sprites = hostile_spritemap(12, QUOTE_TAG)
    neurons = BasisView.from_coefficients(
        acts, 4, spritemap=neurons_sprites, sprite_note=CLOSE_TAG, typical=np.full(12, 1.5)
    )
    groups, coefficients = factorize(acts, 3, layer=DOUBLE)
    remote = Spritemap(REMOTE_SPRITES, per_row=2, sprite_size=64, channels=3)
    nmf = BasisView.from_coefficients(
        coefficients, 3, groups, spritemap=remote, sprite_note=SINGLE_ATTR, maps=coefficients
    )
    given = Basis(np.eye(12, dtype=np.float32)[:5] + 0.1, layer=SQUOTE_TAG)
    given_sprites = hostile_spritemap(
        5, SINGLE, basis="given", basis_description=SCRIPT, basis_fingerprint=given.fingerprint
    )
    directions = BasisView.from_coefficients(
        given.project(acts),
        3,
        given,
        spritemap=given_sprites,
        sprite_note=SCRIPT,
        maps=given.project(acts),
        typical=np.full(5, 1.5),
    )
    return SemanticDict(
        DOUBLE_ATTR,
        [neurons, nmf, directions],
        picture(240, 160, seed),
        layer_channels=12,
        top_classes=[TopClass(i, text, 0.1) for i, text in enumerate(EVERY)],
        title=DOUBLE,
        weights_note=TEMPLATE + SINGLE,
        replica=replica,
        scale="dataset",
        total=acts.sum(axis=2),
    )


def test_several_hostile_bases_survive_every_switch_and_toggle(browser, blank_globals, tmp_path):
    dicts = [hostile_dict(1, replica=True), hostile_dict(2, replica=False)]
    html = render.render_page(dicts, title=QUOTE_TAG)
    page = write_text_atomic(tmp_path / "bases.html", html)
    scripts = 1 + 3 * len(dicts)
    parsed = inert_html(html, scripts)
    assert parsed.values("img", "sd-image", "alt") == [DOUBLE, DOUBLE]
    assert (
        parsed.values("button", "sd-basis-button", "title")
        == [
            "12 neurons",
            f"3 NMF groups of {DOUBLE} over 1 image",
            f"5 given directions of {SQUOTE_TAG}",
        ]
        * 2
    )
    for data in payloads(parsed):
        notes = [basis["note"] for basis in data["bases"]]
        assert f"over the {QUOTE_TAG} images of its spritemap" in notes[0]
        assert f"the {SINGLE} images of its spritemap" in notes[2]
        assert DOUBLE_ATTR in notes[1]  # no dataset maxima: the image's layer is named
        assert [b["sprite_note"] for b in data["bases"]] == [CLOSE_TAG, SINGLE_ATTR, SCRIPT]
        assert data["bases"][1]["sprites"]["url"] == REMOTE_SPRITES
    with opened(browser, page) as run:
        assert run.page.title() == QUOTE_TAG
        for index, data in enumerate(payloads(parsed)):
            root = run.root(index)
            assert root.locator(".sd-title").inner_text() == DOUBLE
            labels = root.locator(".sd-class-label").evaluate_all(
                "ls => ls.map(l => l.textContent)"
            )
            assert labels == EVERY
            exercise(run, index, data)
            basis_button(root, 1).click()  # the remote pictures: asked for by their URL alone
            sources = root.locator(".sd-sprite-img").evaluate_all(
                "images => images.map(i => i.getAttribute('src'))"
            )
            assert sources == [REMOTE_SPRITES] * 3
        assert run.root(0).locator(".sd-warning").text_content() == TEMPLATE + SINGLE
        weights = run.root(1).locator(".sd-note").last.text_content()
        assert weights == TEMPLATE + SINGLE  # not a replica: the plain note at the bottom
        assert_nothing_ran(run, blank_globals, scripts)
    assert set(run.blocked) <= {REMOTE_SPRITES.replace('"', "%22").replace(" ", "%20")}


ADD_OUTPUT = """
html => {
  // What JupyterLab does with an HTML output: set innerHTML (scripts stay inert), attach it,
  // then replace each script element by a fresh one so that it runs.
  const host = document.createElement('div');
  host.className = 'output';
  host.innerHTML = html;
  document.body.appendChild(host);
  for (const old of Array.from(host.querySelectorAll('script'))) {
    const fresh = document.createElement('script');
    for (const attribute of Array.from(old.attributes)) {
      fresh.setAttribute(attribute.name, attribute.value);
    }
    fresh.textContent = old.textContent;
    old.replaceWith(fresh);
  }
}
"""


def test_hostile_notebook_outputs_never_execute(browser, blank_globals, tmp_path):
    """The fragments as JupyterLab inserts them: through innerHTML, scripts re-created."""
    one = hostile_dict(3, replica=True)
    several = gallery([hostile_dict(4, False), hostile_dict(5, True)], title=SQUOTE_TAG)
    fragments = [one._repr_html_(), several._repr_html_()]
    inert_html(fragments[0], 3)  # its data, the library, and the call that mounts it
    inert_html(fragments[1], 1 + 3 * 2)
    path = write_text_atomic(tmp_path / "lab.html", "<!doctype html><title>lab</title>")
    with opened(browser, path) as run:
        for fragment in fragments:
            run.page.evaluate(ADD_OUTPUT, fragment)
        assert run.page.locator(".semdict-gallery-title").inner_text().startswith(SQUOTE_TAG)
        for index in range(3):
            data = json.loads(run.root(index).locator("script.sd-data").text_content())
            assert run.root(index).get_attribute("data-mounted") == "true"
            exercise(run, index, data)
        assert_nothing_ran(run, blank_globals, 3 + 7)
