"""Saved dictionary pages in real headless Chromium (Debian's, driven by Playwright).

Every page is opened from a file:// URL with all other requests blocked and recorded, so a
test also proves the page needs no network.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import playwright.sync_api as playwright_api
import pytest
from chromium_pages import selection
from onnx_builders import (
    BLOCK,
    BLUE,
    GREEN,
    PLANTED,
    PLANTED_BIAS,
    RED,
    WHITE,
    GraphBuilder,
    build_planted_model,
)
from PIL import Image
from semdict_helpers import (
    numbered_spritemap,
    picture,
    random_activations,
    reference_top_k,
    sprite_colour,
    synthetic_dict,
)
from tiny_model import write_tiny_model

from semdict_onnx import Basis, _html, _payload, _render, factorize
from semdict_onnx._atomic import write_text_atomic
from semdict_onnx._pipeline import gallery, semantic_dict
from semdict_onnx._results import SemanticDict
from semdict_onnx._spritemap import Spritemap
from semdict_onnx._views import TopClass

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EXAMPLES = Path(__file__).resolve().parent.parent / "semdict_onnx" / "examples"
HOSTILE = [
    '"><img src=x onerror=alert(1)>',
    "</script><script>window.__pwned = 1; alert(2)</script>",
    "'><svg onload=alert(3)>",
    "</style><style>body{display:none}</style>",
    "javascript:alert(4)",
    "\u2028\u2029{{7*7}}${x}",
]


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the whole module (never a downloaded browser)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny test model's file (non-square layers, labels)."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@dataclass
class Opened:
    """A page opened from a file, with what it asked for and what went wrong in it."""

    page: object
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def root(self, index: int = 0):
        """The index-th dictionary on the page."""
        return self.page.locator(".semdict").nth(index)


@contextlib.contextmanager
def opened(browser, path: Path, javascript: bool = True) -> Iterator[Opened]:
    """Open `path` in a fresh context; every request other than file: and data: is blocked."""
    context = browser.new_context(
        java_script_enabled=javascript, viewport={"width": 1000, "height": 800}
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    result = Opened(page)

    def route(route_request) -> None:
        url = route_request.request.url
        if url.startswith(("file:", "data:")):
            route_request.continue_()
        else:
            result.blocked.append(url)
            route_request.abort()

    def dialog(box) -> None:
        result.dialogs.append(box.message)
        box.dismiss()

    context.route("**/*", route)
    page.on("request", lambda request: result.requests.append(request.url))
    page.on("dialog", dialog)
    page.on("pageerror", lambda error: result.errors.append(str(error)))
    try:
        page.goto(path.resolve().as_uri())
        page.wait_for_load_state("load")
        yield result
    finally:
        context.close()
    assert not result.errors, result.errors


def shown(root) -> list[tuple[int, np.float32]]:
    """The (channel, value) entries a dictionary shows now, top to bottom."""
    pairs = root.locator(".sd-entry").evaluate_all(
        "es => es.map(e => [e.getAttribute('data-channel'), e.getAttribute('data-value')])"
    )
    return [(int(channel), np.float32(float(value))) for channel, value in pairs]


def expected(acts: np.ndarray, k: int, row: int, col: int) -> list[tuple[int, np.float32]]:
    """The top-k at (row, col) computed in Python, independently of the package."""
    channels, values = reference_top_k(acts, k)
    return [
        (int(c), np.float32(v)) for c, v in zip(channels[row, col], values[row, col], strict=True)
    ]


def cell(root, row: int, col: int):
    """The grid cell at (row, col)."""
    return root.locator(f'rect[data-row="{row}"][data-col="{col}"]')


def placed_cell(root, row: int, col: int, rows: int, cols: int) -> dict:
    """The bounding box of cell (row, col), checked to sit at its place in the stage."""
    stage = root.locator(".sd-stage").bounding_box()
    box = cell(root, row, col).bounding_box()
    assert box["x"] == pytest.approx(stage["x"] + col * stage["width"] / cols, abs=1.5)
    assert box["y"] == pytest.approx(stage["y"] + row * stage["height"] / rows, abs=1.5)
    return box


def save(tmp_path: Path, dicts: list[SemanticDict], name: str = "page.html") -> Path:
    """A standalone page of `dicts`."""
    return write_text_atomic(tmp_path / name, _render.render_page(dicts, title=name))


# --- the real path: model, saved page, hover -------------------------------------------------


def test_hovering_cells_shows_exactly_the_python_top_k(browser, replica_model, tmp_path):
    image = EXAMPLES / "chelsea.jpg"
    layer = "mixed4c"
    acts = replica_model.activations(image, layers=[layer], size=224)[layer][0]
    rows, cols, _ = acts.shape
    assert (rows, cols) == (14, 22)  # the photo's aspect ratio, kept by default
    path = semantic_dict(image, layer=layer, model=replica_model).save(tmp_path / "cat.html")
    with opened(browser, path) as run:
        root = run.root()
        start = np.unravel_index(int(np.argmax(acts)), acts.shape)[:2]
        assert selection(root) == (*map(int, start), False)
        assert shown(root) == expected(acts, 4, *start)
        for row, col in [(0, 0), (rows - 1, cols - 1), (0, cols - 1), (rows - 1, 0), (5, 9)]:
            cell(root, row, col).hover()
            assert selection(root) == (row, col, False)
            assert shown(root) == expected(acts, 4, row, col), (row, col)
        assert "REPLICA MODEL" in root.locator(".sd-warning").inner_text()
        assert root.locator(".sd-sprite-number").count() == 4
        assert run.blocked == []


def test_wide_grid_keeps_rows_and_columns_in_place(browser, tmp_path):
    sd, acts = synthetic_dict(rows=3, cols=7, seed=5)
    with opened(browser, save(tmp_path, [sd])) as run:
        root = run.root()
        stage = root.locator(".sd-stage").bounding_box()
        assert stage["width"] > stage["height"]  # a wide image shown wide
        for row, col in [(2, 5), (0, 6), (1, 0)]:
            placed_cell(root, row, col, 3, 7)
            cell(root, row, col).hover()
            assert selection(root)[:2] == (row, col)
            assert shown(root) == expected(acts, 4, row, col)


def test_click_pins_and_arrow_keys_move_the_selection(browser, tmp_path):
    sd, acts = synthetic_dict(rows=6, cols=9, seed=6)
    with opened(browser, save(tmp_path, [sd])) as run:
        root, keyboard = run.root(), run.page.keyboard
        cell(root, 2, 3).click()
        assert selection(root) == (2, 3, True)
        cell(root, 4, 7).hover()  # pinned: hovering elsewhere changes nothing
        assert selection(root) == (2, 3, True)
        assert shown(root) == expected(acts, 4, 2, 3)
        moves = [("ArrowRight", (2, 4)), ("ArrowDown", (3, 4)), ("ArrowLeft", (3, 3))]
        moves += [("ArrowUp", (2, 3)), ("ArrowUp", (1, 3))]
        for key, (row, col) in moves:
            keyboard.press(key)
            assert selection(root) == (row, col, True), key
            assert shown(root) == expected(acts, 4, row, col), key
        for _ in range(12):
            keyboard.press("ArrowRight")
        assert selection(root) == (1, 8, True)  # stops at the last column
        keyboard.press("Escape")
        assert selection(root) == (1, 8, False)
        cell(root, 5, 0).hover()
        assert selection(root) == (5, 0, False)
        cell(root, 5, 0).click()
        cell(root, 5, 0).click()  # a second click on the pinned cell unpins
        assert selection(root) == (5, 0, False)
        cell(root, 0, 2).hover()
        assert shown(root) == expected(acts, 4, 0, 2)


@pytest.mark.parametrize("layout", ["page", "notebook outputs"])
def test_two_dictionaries_on_one_page_are_independent(browser, tmp_path, layout):
    first, acts_a = synthetic_dict(rows=6, cols=9, seed=7)
    second, acts_b = synthetic_dict(rows=4, cols=5, channels=30, top_k=3, seed=8)
    if layout == "page":
        path = save(tmp_path, [first, second])
    else:  # each output self-contained, as a notebook shows them: styles and script twice
        body = f"<div>{first._repr_html_()}</div><div>{second._repr_html_()}</div>"
        path = write_text_atomic(tmp_path / "outputs.html", f"<!doctype html>{body}")
    with opened(browser, path) as run:
        a, b = run.root(0), run.root(1)
        assert a.get_attribute("id") != b.get_attribute("id")
        start_b = selection(b)
        cell(a, 1, 1).hover()
        assert selection(a) == (1, 1, False) and selection(b) == start_b
        assert shown(b) == expected(acts_b, 3, *start_b[:2])
        cell(a, 1, 1).click()  # pinned, so scrolling under a resting pointer cannot move it
        cell(b, 3, 4).click()
        run.page.keyboard.press("ArrowUp")  # goes to b, which has the focus
        assert selection(b) == (2, 4, True)
        assert shown(b) == expected(acts_b, 3, 2, 4)
        assert selection(a) == (1, 1, True)
        assert shown(a) == expected(acts_a, 4, 1, 1)
        run.page.keyboard.press("Escape")
        assert selection(b) == (2, 4, False) and selection(a) == (1, 1, True)
        # b is unpinned now, and the pointer still rests where b's cell was clicked. Clicking
        # a's cell scrolls the page up, and Chromium's mouse move after a scroll would hover
        # whichever of b's cells slid under that resting pointer: move it off both grids first.
        run.page.mouse.move(0, 0)
        cell(a, 1, 1).click()  # unpin a
        cell(a, 5, 8).hover()
        assert selection(a) == (5, 8, False)
        assert shown(a) == expected(acts_a, 4, 5, 8)
        assert selection(b) == (2, 4, False)
        assert shown(b) == expected(acts_b, 3, 2, 4)


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


def test_outputs_added_later_the_way_jupyterlab_adds_them_mount_independently(browser, tmp_path):
    first, acts_a = synthetic_dict(rows=4, cols=4, seed=15)
    second, acts_b = synthetic_dict(rows=3, cols=5, seed=16)
    path = write_text_atomic(tmp_path / "lab.html", "<!doctype html><title>lab</title>")
    with opened(browser, path) as run:
        run.page.evaluate(ADD_OUTPUT, first._repr_html_())
        run.page.evaluate(ADD_OUTPUT, second._repr_html_())
        a, b = run.root(0), run.root(1)
        assert a.get_attribute("data-mounted") == b.get_attribute("data-mounted") == "true"
        cell(b, 2, 4).click()
        assert selection(b) == (2, 4, True)
        assert shown(b) == expected(acts_b, 4, 2, 4)
        cell(a, 3, 0).hover()
        assert selection(a) == (3, 0, False)
        assert shown(a) == expected(acts_a, 4, 3, 0)
        assert selection(b) == (2, 4, True)


# --- sprites and the network -----------------------------------------------------------------

CENTRE_COLOURS = """
root => Array.from(root.querySelectorAll('.sd-entry')).map(entry => {
  const img = entry.querySelector('.sd-sprite-img');
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const context = canvas.getContext('2d');
  context.drawImage(img, 0, 0);
  const half = Math.floor(img.naturalWidth / 2);
  return [img.complete, img.naturalWidth, Array.from(context.getImageData(half, half, 1, 1).data)];
})
"""

ALL_SPRITES_LOAD = """
async root => {
  const data = JSON.parse(root.querySelector('script.sd-data').textContent);
  const images = data.bases[0].sprites.images;
  const sizes = await Promise.all(Object.values(images).map(src => new Promise(done => {
    const img = new Image();
    img.onload = () => done(img.naturalWidth);
    img.onerror = () => done(0);
    img.src = src;
  })));
  return [Object.keys(images).length, sizes.filter(width => width > 0).length];
}
"""


def test_every_embedded_sprite_loads_and_nothing_leaves_the_machine(browser, tmp_path):
    sd, acts = synthetic_dict(rows=5, cols=6, channels=50, seed=9)
    used = np.unique(reference_top_k(acts, 4)[0])
    with opened(browser, save(tmp_path, [sd])) as run:
        root = run.root()
        count, loaded = root.evaluate(ALL_SPRITES_LOAD)
        assert count == loaded == len(used)
        for row in range(5):
            for col in range(6):
                cell(root, row, col).hover()
                entries = shown(root)
                assert entries == expected(acts, 4, row, col)
                for (channel, _), (complete, width, rgba) in zip(
                    entries, root.evaluate(CENTRE_COLOURS), strict=True
                ):
                    assert complete and width > 0
                    assert np.abs(np.array(rgba[:3]) - sprite_colour(channel)).max() <= 12
        assert run.blocked == []
        assert all(url.startswith(("file:", "data:")) for url in run.requests), run.requests


def test_a_remote_spritemap_is_asked_for_by_its_url_only(browser, tmp_path):
    url = "https://sprites.example/sprite_layer_x_channel_alpha.jpeg"
    remote = Spritemap(url, per_row=8, sprite_size=110, channels=40)
    sd, acts = synthetic_dict(rows=4, cols=4, seed=10, spritemap=remote)
    with opened(browser, save(tmp_path, [sd])) as run:
        root = run.root()
        cell(root, 3, 2).hover()
        size = _payload.SPRITE_PX
        for entry, (channel, _) in zip(
            root.locator(".sd-entry").all(), expected(acts, 4, 3, 2), strict=True
        ):
            img = entry.locator(".sd-sprite-img")
            assert img.get_attribute("src") == url
            style = img.evaluate("i => [i.style.left, i.style.top, i.style.width]")
            assert style == [
                f"{-size * (channel % 8)}px",
                f"{-size * (channel // 8)}px",
                f"{8 * size}px",
            ]
        assert set(run.blocked) == {url}


def test_without_javascript_the_first_selection_is_shown(browser, tmp_path):
    sd, acts = synthetic_dict(rows=6, cols=9, seed=11)
    with opened(browser, save(tmp_path, [sd]), javascript=False) as run:
        root = run.root()
        assert root.get_attribute("data-mounted") is None
        start = np.unravel_index(int(np.argmax(acts)), acts.shape)[:2]
        assert selection(root) == (*map(int, start), False)
        assert shown(root) == expected(acts, 4, *start)
        assert root.locator(".sd-entry").first.is_visible()
        widths = root.locator(".sd-sprite-img").evaluate_all("is => is.map(i => i.naturalWidth)")
        assert len(widths) == 4 and min(widths) > 0
        assert root.locator(".sd-hint").is_hidden()  # no promise of interaction without script
        cell(root, 0, 0).hover()
        assert selection(root)[:2] == tuple(map(int, start))


def test_javascript_writes_numbers_as_python_predicts(browser, tmp_path):
    values = np.concatenate(
        [random_activations(4, 4, 16, seed=12).ravel(), np.float32([1e-7, 3e-6, 1e21, 0.1, 7])]
    )
    numbers = _html.float32_values(values)
    path = write_text_atomic(tmp_path / "numbers.html", "<!doctype html><p>numbers</p>")
    with opened(browser, path) as run:
        written = run.page.evaluate("text => JSON.parse(text).map(String)", json.dumps(numbers))
    assert written == [_html.js_number(n) for n in numbers]


# --- safety and isolation --------------------------------------------------------------------


def test_hostile_strings_never_execute(browser, tmp_path, tiny_model_path):
    from semdict_onnx._model import load_model

    loaded = []
    for hostile in HOSTILE[:1] + ["'><svg onload=alert(5)>", "a&b<c>"]:
        image_path = tmp_path / f"{hostile}.png"
        picture(64, 80).save(image_path)
        loaded.append((hostile, semantic_dict(image_path, "late", load_model(tiny_model_path))))
    made, _ = synthetic_dict(
        title=HOSTILE[1],
        weights_note=" ".join(HOSTILE),
        replica=True,
        top_classes=[TopClass(i, text, 0.1) for i, text in enumerate(HOSTILE)],
        sprite_note=HOSTILE[3],
    )
    made.layer = HOSTILE[1]  # the layer name also goes into the JSON payload
    path = save(tmp_path, [made] + [sd for _, sd in loaded], name=HOSTILE[0] + ".html")
    with opened(browser, path) as run:
        for index, (hostile, _) in enumerate(loaded, start=1):
            assert run.root(index).locator(".sd-title").inner_text() == f"{hostile}.png"
        root = run.root(0)
        assert root.locator(".sd-title").inner_text() == HOSTILE[1]
        assert root.locator(".sd-layer").inner_text() == HOSTILE[1]
        assert root.get_attribute("data-mounted") == "true"  # its payload parsed
        assert root.locator(".sd-class-label").all_inner_texts() == HOSTILE
        cell(root, 1, 1).hover()
        cell(root, 2, 2).click()
        run.page.keyboard.press("ArrowDown")
        assert run.page.evaluate("window.__pwned") is None
        assert run.page.locator("img[src='x']").count() == 0
        assert run.page.locator("body").is_visible()
        assert run.page.title() == HOSTILE[0] + ".html"
    assert run.dialogs == []
    assert run.blocked == []


HOST_PAGE = """<!doctype html>
<style>
div, span, li, ol {{ padding: 37px; margin: 23px; color: rgb(255, 0, 0); font-size: 31px; }}
img {{ width: 5px; height: 5px; }}
rect {{ fill: rgb(255, 0, 0); }}
.sd-entry, .sd-sprite {{ display: none; }}
</style>
<div class="host sd-entry">host entry</div>
{fragment}
<li class="host-li sd-bar">host item</li>
"""


def test_css_leaks_neither_in_nor_out(browser, tmp_path):
    sd, _ = synthetic_dict(rows=4, cols=4, seed=13)
    path = write_text_atomic(tmp_path / "host.html", HOST_PAGE.format(fragment=sd._repr_html_()))
    with opened(browser, path) as run:
        root = run.root()
        style = "(e, p) => getComputedStyle(e)[p]"
        entry = root.locator(".sd-entry").first
        assert entry.is_visible()
        assert entry.evaluate(style, "display") == "flex"
        assert entry.evaluate(style, "color") != "rgb(255, 0, 0)"
        sprite = root.locator(".sd-sprite").first.bounding_box()
        assert sprite["width"] == sprite["height"] == _payload.SPRITE_PX
        stage = root.locator(".sd-stage").bounding_box()
        image = root.locator(".sd-image").bounding_box()
        assert image["width"] == stage["width"] and image["height"] == stage["height"]
        assert cell(root, 0, 0).evaluate(style, "fill") in ("transparent", "rgba(0, 0, 0, 0)")
        host = run.page.locator(".host")
        assert host.evaluate(style, "display") == "none"  # the host's own rule still applies
        item = run.page.locator(".host-li")
        assert item.evaluate(style, "paddingTop") == "37px"
        assert item.evaluate(style, "height") != "10px"


def test_the_shipped_photo_page_has_its_image_and_grid(browser, tmp_path):
    spritemap = numbered_spritemap(12, "late")
    image = EXAMPLES / "coffee.jpg"
    with Image.open(image) as photo:
        aspect = photo.width / photo.height
    sd = SemanticDict.from_activations(
        random_activations(5, 4, 12, seed=14), "late", Image.open(image), 3, spritemap=spritemap
    )
    with opened(browser, save(tmp_path, [sd])) as run:
        root = run.root()
        width = root.locator(".sd-image").evaluate("i => [i.complete, i.naturalWidth]")
        assert width[0] and width[1] > 0
        box = root.locator(".sd-stage").bounding_box()
        assert box["width"] / box["height"] == pytest.approx(aspect, rel=0.02)
        assert root.locator(".sd-cell").count() == 5 * 4


# --- bases, overlays, heat map, galleries, wide images ---------------------------------------

PURE = {RED: (255, 0, 0), GREEN: (0, 255, 0), BLUE: (0, 0, 255), WHITE: (255, 255, 255)}
PLACES = {RED: (1, 1), GREEN: (1, 6), BLUE: (6, 2), WHITE: (5, 6)}


@pytest.fixture(scope="module")
def planted_model(tmp_path_factory: pytest.TempPathFactory):
    """The planted colour model: layer "blocks", 8x8 positions, one channel per colour."""
    from semdict_onnx._model import load_model

    return load_model(build_planted_model(tmp_path_factory.mktemp("planted") / "planted.onnx"))


def blocks_photo(path: Path, places: dict[int, tuple[int, int]], rows: int, cols: int) -> Path:
    """A photo at one pixel block per position, with pure colour blocks at `places`."""
    array = np.zeros((rows * BLOCK, cols * BLOCK, 3), np.uint8)
    for channel, (row, col) in places.items():
        array[row * BLOCK : (row + 1) * BLOCK, col * BLOCK : (col + 1) * BLOCK] = PURE[channel]
    Image.fromarray(array).save(path)
    return path


def basis_button(root, index: int):
    """The switch button of basis `index`."""
    return root.locator(f'.sd-basis-button[data-basis-index="{index}"]')


def visible_overlays(root) -> list[str]:
    """The data-group of every overlay layer shown now."""
    return root.locator(".sd-overlay").evaluate_all(
        "ls => ls.filter(l => getComputedStyle(l).display !== 'none')"
        ".map(l => l.getAttribute('data-basis-index') + ':' + l.getAttribute('data-group'))"
    )


def test_switching_basis_shows_the_entries_computed_in_python(browser, planted_model, tmp_path):
    photo = blocks_photo(tmp_path / "four.png", PLACES, 8, 8)
    given = Basis(np.eye(5, dtype=np.float32)[[RED, BLUE, WHITE]] + 0.05, layer="blocks")
    sd = semantic_dict(
        photo, "blocks", planted_model, 4, basis=["neurons", "nmf", given], n_groups=4
    )
    acts = planted_model.activations(photo, "blocks")["blocks"][0]
    _, groups = factorize(acts, 4, layer="blocks")
    tables = [(acts, 4, "channel"), (groups, 4, "group"), (given.project(acts), 3, "direction")]
    with opened(browser, sd.save(tmp_path / "bases.html")) as run:
        root = run.root()
        assert root.locator(".sd-controls").is_visible()
        assert root.get_attribute("data-basis") == "neurons"
        for index in (1, 2, 0, 2):
            basis_button(root, index).click()
            coefficients, k, unit = tables[index]
            assert root.get_attribute("data-basis-index") == str(index)
            assert basis_button(root, index).get_attribute("aria-pressed") == "true"
            assert root.locator(".sd-units").inner_text() == f"{unit}s"
            assert root.locator(".sd-entry").count() == k
            for row, col in [(1, 1), (6, 2), (5, 6), (0, 7)]:
                cell(root, row, col).hover()
                assert shown(root) == expected(coefficients, k, row, col), (index, row, col)
                units = root.locator(".sd-entry .sd-unit").all_inner_texts()
                assert units == [unit] * k
            numbers = root.locator(".sd-sprite-number").count()
            pictures = root.locator(".sd-sprite-img").evaluate_all(
                "is => is.map(i => i.complete && i.naturalWidth > 0)"
            )
            if index == 0:  # the replica-like planted model has no channel pictures
                assert numbers == k and pictures == []
            else:  # own patches, embedded
                assert numbers == 0 and pictures == [True] * k
        note = root.locator(".sd-sprite-note").inner_text()
        assert "For dataset examples, pass spritemap=build_spritemap" in note
        basis_button(root, 1).click()
        assert "each group is strongest" in root.locator(".sd-sprite-note").inner_text()


def test_overlay_and_heat_map_appear_and_disappear(browser, planted_model, tmp_path):
    photo = blocks_photo(tmp_path / "four.png", PLACES, 8, 8)
    sd = semantic_dict(photo, "blocks", planted_model, 2, basis=["nmf", "neurons"], n_groups=4)
    groups = sd.views[0]
    with opened(browser, sd.save(tmp_path / "layers.html")) as run:
        root = run.root()
        overlay, heat = root.locator(".sd-toggle-overlay"), root.locator(".sd-toggle-heat")
        assert visible_overlays(root) == ["0:all"] and root.get_attribute("data-overlay") == "on"
        overlay.click()
        assert visible_overlays(root) == [] and overlay.get_attribute("aria-pressed") == "false"
        overlay.click()
        assert visible_overlays(root) == ["0:all"]
        row, col = PLACES[GREEN]
        cell(root, row, col).click()
        entries = root.locator(".sd-entry")
        for rank in range(2):
            entries.nth(rank).hover()
            group = entries.nth(rank).get_attribute("data-channel")
            assert visible_overlays(root) == [f"0:{group}"]
            assert root.get_attribute("data-highlight") == group
        strongest = int(entries.nth(0).get_attribute("data-channel"))
        assert np.argmax(groups.maps[..., strongest]) == row * 8 + col  # its region is here
        root.locator(".sd-title").hover()  # off the entries: every group again
        assert visible_overlays(root) == ["0:all"]
        assert root.get_attribute("data-highlight") is None

        assert root.locator(".sd-heat").is_hidden() and root.locator(".sd-heat-note").is_hidden()
        heat.click()
        assert root.locator(".sd-heat").is_visible() and root.get_attribute("data-heat") == "on"
        assert "Heat map: total activation of blocks" in root.locator(".sd-heat-note").inner_text()
        size = root.locator(".sd-heat").evaluate("i => [i.naturalWidth, i.naturalHeight]")
        assert size == [8, 8]
        heat.click()
        assert root.locator(".sd-heat").is_hidden() and root.get_attribute("data-heat") == "off"

        basis_button(root, 1).click()  # neurons: no overlay, no overlay toggle
        assert visible_overlays(root) == [] and overlay.is_hidden()
        assert root.get_attribute("data-overlay") == "none"
        entries.nth(0).hover()
        assert visible_overlays(root) == []
        heat.click()
        assert root.locator(".sd-heat").is_visible()  # the heat map does not depend on the basis
    with opened(browser, tmp_path / "layers.html", javascript=False) as run:
        root = run.root()
        assert root.locator(".sd-controls").is_hidden()
        assert visible_overlays(root) == ["0:all"] and root.locator(".sd-heat").is_hidden()


def test_a_gallery_of_several_images_works(browser, planted_model, tmp_path):
    places = [{RED: (2, 3)}, {GREEN: (7, 0), BLUE: (0, 7)}, {WHITE: (4, 4), RED: (6, 6)}]
    photos = [blocks_photo(tmp_path / f"p{i}.png", p, 8, 8) for i, p in enumerate(places)]
    acts = planted_model.activations(photos, "blocks")["blocks"]
    result = gallery(photos, "blocks", planted_model, 3, progress=False, title="three photos")
    path = result.save(tmp_path / "gallery.html")
    with opened(browser, path) as run:
        assert run.page.locator(".semdict-gallery-title").inner_text().startswith("three photos")
        roots = [run.root(i) for i in range(3)]
        assert len({r.get_attribute("id") for r in roots}) == 3
        starts = [selection(r) for r in roots]
        for index, root in enumerate(roots):
            assert root.locator(".sd-title").inner_text() == f"p{index}.png"
            assert shown(root) == expected(acts[index], 3, *starts[index][:2])
        cell(roots[1], 7, 0).click()
        assert shown(roots[1]) == expected(acts[1], 3, 7, 0)
        cell(roots[2], 4, 4).hover()
        assert shown(roots[2]) == expected(acts[2], 3, 4, 4)
        roots[2].locator(".sd-toggle-heat").click()
        assert roots[2].locator(".sd-heat").is_visible()
        assert roots[0].locator(".sd-heat").is_hidden() and roots[1].locator(".sd-heat").is_hidden()
        assert selection(roots[1]) == (7, 0, True) and selection(roots[0]) == starts[0]
        assert shown(roots[0]) == expected(acts[0], 3, *starts[0][:2])
        assert run.blocked == []


WIDE_ROWS, WIDE_COLS = 4, 12


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory: pytest.TempPathFactory):
    """The planted colour channels on a wide input (16 x 48 px): a 4 x 12 grid of positions."""
    from semdict_onnx._model import load_model

    g = GraphBuilder(WIDE_ROWS * BLOCK, WIDE_COLS * BLOCK)
    mix = g.conv("image_nchw", "mix", PLANTED.reshape(5, 3, 1, 1), PLANTED_BIAS)
    colours = g.node("Relu", [mix], "colours")
    pooled = g.node(
        "AveragePool", [colours], "pooled", kernel_shape=[BLOCK] * 2, strides=[BLOCK] * 2
    )
    g.layer("blocks", pooled, 5)
    return load_model(g.save(tmp_path_factory.mktemp("wide") / "wide.onnx"))


PIXEL_AT = """
(img, [x, y]) => {
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const context = canvas.getContext('2d');
  context.drawImage(img, 0, 0);
  const box = img.getBoundingClientRect();
  const px = Math.floor((x - box.left) / box.width * img.naturalWidth);
  const py = Math.floor((y - box.top) / box.height * img.naturalHeight);
  return Array.from(context.getImageData(px, py, 1, 1).data.slice(0, 3));
}
"""


def test_a_wide_image_keeps_rows_and_columns_from_model_to_page(browser, wide_model, tmp_path):
    places = {RED: (1, 9), BLUE: (3, 2), GREEN: (0, 11)}  # each valid one way round only
    photo = blocks_photo(tmp_path / "wide.png", places, WIDE_ROWS, WIDE_COLS)
    big = tmp_path / "wide-big.png"
    Image.open(photo).resize((WIDE_COLS * 40, WIDE_ROWS * 40), Image.Resampling.NEAREST).save(big)
    acts = wide_model.activations(big, "blocks")["blocks"][0]
    assert acts.shape == (WIDE_ROWS, WIDE_COLS, 5)
    sd = semantic_dict(big, "blocks", wide_model, 2, basis=["neurons", "nmf"], n_groups=3)
    assert (sd.rows, sd.cols) == (WIDE_ROWS, WIDE_COLS)
    with opened(browser, sd.save(tmp_path / "wide.html")) as run:
        root = run.root()
        assert (root.get_attribute("data-rows"), root.get_attribute("data-cols")) == ("4", "12")
        stage = root.locator(".sd-stage").bounding_box()
        assert stage["width"] == pytest.approx(3 * stage["height"], rel=0.02)
        image = root.locator(".sd-image")
        for channel, (row, col) in places.items():
            box = placed_cell(root, row, col, WIDE_ROWS, WIDE_COLS)
            cell(root, row, col).hover()
            assert selection(root)[:2] == (row, col)
            assert shown(root) == expected(acts, 2, row, col)
            assert shown(root)[0][0] == channel
            centre = [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]
            under = np.array(image.evaluate(PIXEL_AT, centre))  # the image under the cell
            assert np.abs(under - PURE[channel]).max() <= 12  # (a JPEG copy)
        heat = root.locator(".sd-heat").evaluate("i => [i.naturalWidth, i.naturalHeight]")
        assert heat == [WIDE_COLS, WIDE_ROWS]
        basis_button(root, 1).click()
        cell(root, 1, 9).hover()
        group = int(root.locator(".sd-entry").first.get_attribute("data-channel"))
        assert np.unravel_index(np.argmax(sd.views[1].maps[..., group]), (4, 12)) == (1, 9)


def test_a_wide_photo_on_googlenet_gets_a_grid_as_wide_as_itself(browser, replica_model, tmp_path):
    """size=224 keeps a 2:1 photo's aspect: mixed4d is 14 rows by 28 columns, laid out wide."""
    names = ("chelsea.jpg", "coffee.jpg")
    halves = [Image.open(EXAMPLES / name).convert("RGB").resize((224, 224)) for name in names]
    wide = Image.new("RGB", (448, 224))
    wide.paste(halves[0], (0, 0))
    wide.paste(halves[1], (224, 0))
    wide.save(tmp_path / "wide.png")
    acts = replica_model.activations(tmp_path / "wide.png", "mixed4d", size=224)["mixed4d"][0]
    assert acts.shape == (14, 28, 528)
    sd = semantic_dict(tmp_path / "wide.png", "mixed4d", replica_model, size=224)
    with opened(browser, sd.save(tmp_path / "wide.html")) as run:
        root = run.root()
        assert (root.get_attribute("data-rows"), root.get_attribute("data-cols")) == ("14", "28")
        assert root.locator(".sd-cell").count() == 14 * 28
        stage = root.locator(".sd-stage").bounding_box()
        assert stage["width"] == pytest.approx(2 * stage["height"], rel=0.02)
        for row, col in [(0, 27), (13, 0), (2, 20), (11, 5), (13, 27)]:
            box = placed_cell(root, row, col, 14, 28)
            assert box["width"] == pytest.approx(box["height"], rel=0.05)  # square cells
            cell(root, row, col).hover()
            assert selection(root)[:2] == (row, col)
            assert shown(root) == expected(acts, 4, row, col), (row, col)
        heat = root.locator(".sd-heat").evaluate("i => [i.naturalWidth, i.naturalHeight]")
        assert heat == [28, 14]
        assert run.blocked == []
