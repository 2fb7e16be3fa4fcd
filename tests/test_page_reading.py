"""Reading a dictionary page without the mouse and without guessing, in real Chromium (issue 10).

The keyboard (the grid is the first Tab stop, real key presses move and pin, and the page says
which keys work), the faint cell lines over the image and their toggle, numbers rounded for a
person to read (3 significant digits, the same in Python's static render and in semdict.js),
and a note on every page saying where the entry pictures come from.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
from chromium_pages import cell, expected, launched, opened, selection, shown
from PIL import Image
from semdict_helpers import numbered_grid, picture, synthetic_dict
from tiny_model import tiny_info, write_tiny_model

from semdict_onnx import _html, _render
from semdict_onnx._atomic import write_text_atomic
from semdict_onnx._dataset_examples import build_spritemap
from semdict_onnx._metadata import SpritemapInfo
from semdict_onnx._model import load_model
from semdict_onnx._pipeline import semantic_dict
from semdict_onnx._results import SemanticDict
from semdict_onnx._spritemap import Spritemap


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium (Debian's) for the module."""
    with launched() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    """The tiny test model (layer "late": 5 x 4 positions, 12 channels)."""
    return load_model(write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx"))


def save(tmp_path: Path, dicts: list[SemanticDict], name: str = "page.html") -> Path:
    """A standalone page of `dicts`."""
    return write_text_atomic(tmp_path / name, _render.render_page(dicts, title=name))


def focused_class(page) -> str:
    """The class attribute of the element that has the keyboard focus."""
    return page.evaluate("document.activeElement && document.activeElement.className") or ""


# --- the keyboard ----------------------------------------------------------------------------


def test_the_grid_is_the_first_tab_stop_and_keys_move_and_pin(browser, tmp_path):
    """Issue 10: the first Tab landed on the "heat map" button and arrow keys did nothing."""
    sd, acts = synthetic_dict(rows=5, cols=6, seed=31)
    with opened(browser, save(tmp_path, [sd])) as run:
        root, keys, page = run.root(), run.page.keyboard, run.page
        hint = root.locator(".sd-hint")
        assert hint.is_visible()
        said = hint.inner_text()
        for key in ("Tab", "arrow keys", "Enter", "Space", "Esc"):
            assert key in said, said
        row, col, pinned = selection(root)
        assert not pinned
        keys.press("Tab")
        assert "sd-stage" in focused_class(page)
        assert root.locator(".sd-stage").get_attribute("aria-describedby") == hint.get_attribute(
            "id"
        )
        steps = {
            "ArrowUp": (-1, 0),
            "ArrowDown": (1, 0),
            "ArrowLeft": (0, -1),
            "ArrowRight": (0, 1),
        }
        for key in ["ArrowLeft", "ArrowUp", "ArrowRight", "ArrowRight", "ArrowDown"] * 2:
            row = min(4, max(0, row + steps[key][0]))
            col = min(5, max(0, col + steps[key][1]))
            keys.press(key)
            assert selection(root) == (row, col, True), key  # moved, and pinned
            assert shown(root) == expected(acts, 4, row, col), key
            assert root.locator(".sd-pos").inner_text() == f"row {row}, column {col}"
        keys.press("Enter")
        assert selection(root) == (row, col, False)
        keys.press("Space")
        assert selection(root) == (row, col, True)
        page.mouse.move(1, 1)
        cell(root, 0, 0).hover()  # pinned: the mouse does not move it
        assert selection(root) == (row, col, True)
        keys.press("Escape")
        assert selection(root) == (row, col, False)
        assert "sd-stage" in focused_class(page)
        keys.press("Tab")  # then the controls, after the grid
        assert "sd-toggle-lines" in focused_class(page)
        keys.press("Space")
        assert root.get_attribute("data-lines") == "off"


def test_the_keys_hint_and_controls_appear_only_with_the_script(browser, tmp_path):
    sd, _ = synthetic_dict(rows=3, cols=4, seed=33)
    with opened(browser, save(tmp_path, [sd]), javascript=False) as run:
        root = run.root()
        assert root.locator(".sd-hint").is_hidden()  # no promise the page cannot keep
        assert root.locator(".sd-controls").is_hidden()
        run.page.keyboard.press("Tab")
        assert "sd-stage" in focused_class(run.page)


# --- cell lines ------------------------------------------------------------------------------


def stage_pixels(root) -> np.ndarray:
    """The stage (image, layers, grid) as Chromium paints it, RGB."""
    return np.asarray(Image.open(io.BytesIO(root.locator(".sd-stage").screenshot())).convert("RGB"))


def drawn_along(change: np.ndarray, outlined: np.ndarray, at: float, axis: int) -> bool:
    """Whether pixels changed along the line at `at` (a column for axis 1, a row for 0), all
    along it but where the selected cell's outline covers it."""
    near = slice(round(at) - 1, round(at) + 2)
    if axis == 1:
        seen, covered = change[:, near].max(axis=1), outlined[:, near].any(axis=1)
    else:
        seen, covered = change[near, :].max(axis=0), outlined[near, :].any(axis=0)
    return bool((seen[~covered] > 30).mean() > 0.95)


def test_faint_cell_lines_are_drawn_between_cells_and_toggle(browser, tmp_path):
    """Issue 10: the grid was invisible until hovered."""
    rows, cols = 3, 7
    sd, _ = synthetic_dict(rows=rows, cols=cols, seed=32)
    with opened(browser, save(tmp_path, [sd])) as run:
        root, page = run.root(), run.page
        page.mouse.move(1, 1)  # away from the grid: no hover outline
        toggle = root.locator(".sd-toggle-lines")
        assert toggle.get_attribute("aria-pressed") == "true"
        assert root.get_attribute("data-lines") == "on"
        assert root.locator(".sd-lines").is_visible()
        with_lines = stage_pixels(root).astype(int)
        toggle.click()
        page.mouse.move(1, 1)
        assert root.get_attribute("data-lines") == "off"
        assert toggle.get_attribute("aria-pressed") == "false"
        assert root.locator(".sd-lines").is_hidden()
        without = stage_pixels(root).astype(int)
        toggle.click()
        page.mouse.move(1, 1)
        assert root.get_attribute("data-lines") == "on"
        np.testing.assert_array_equal(stage_pixels(root), with_lines)
    height, width, _ = with_lines.shape
    change = np.abs(with_lines - without).sum(axis=2)
    # The selected cell's outline is drawn either way, over the lines along its edges.
    start = sd.start
    outlined = np.zeros((height, width), bool)
    top, left = start[0] * height / rows, start[1] * width / cols
    outlined[
        max(0, round(top) - 3) : round(top + height / rows) + 4,
        max(0, round(left) - 3) : round(left + width / cols) + 4,
    ] = True
    for col in range(1, cols):  # every boundary between columns is drawn, top to bottom
        assert drawn_along(change, outlined, col * width / cols, axis=1), col
    for row in range(1, rows):
        assert drawn_along(change, outlined, row * height / rows, axis=0), row
    for row in range(rows):  # and nothing inside the cells changes: the lines are faint lines
        for col in range(cols):
            y, x = round((row + 0.5) * height / rows), round((col + 0.5) * width / cols)
            if (row, col) != start:
                assert change[y - 3 : y + 4, x - 3 : x + 4].max() == 0, (row, col)
    x = round(width / cols)  # faint: never as much as an opaque line would change
    assert np.median(change[:, x - 1 : x + 2].max(axis=1)) < 3 * 160


def test_cell_lines_show_without_the_script(browser, tmp_path):
    sd, _ = synthetic_dict(rows=4, cols=4, seed=34)
    with opened(browser, save(tmp_path, [sd]), javascript=False) as run:
        lines = run.root().locator(".sd-lines path")
        assert lines.count() == 2 and lines.first.is_visible() and lines.last.is_visible()
        for path in lines.all():
            assert path.get_attribute("d") == "M0 1H4M0 2H4M0 3H4M1 0V4M2 0V4M3 0V4"


# --- numbers for a person ---------------------------------------------------------------------


NUMBERS = [137.75078, 0.125, 0.0625, 2.5, 999.5, 0.00123456, 123456.7, 1e21, 7e-7, 0.1]
NUMBERS += [1.005, 99.95, 7045.437, 8.299648, 1.0, 100.0, 0.000999949, 5e-324, 1.5e300]


def test_python_and_the_script_round_numbers_alike(browser, tmp_path):
    rng = np.random.default_rng(35)
    values = NUMBERS + _html.float32_values(rng.gamma(1.5, 40.0, 200))
    path = write_text_atomic(tmp_path / "numbers.html", "<!doctype html><p>numbers</p>")
    with opened(browser, path) as run:
        written = run.page.evaluate(
            "xs => xs.map(x => String(Number(x.toPrecision(3))))", values
        )  # semdict.js's readable()
    assert written == [_html.readable_number(v) for v in values]
    assert _html.readable_number(137.75078) == "138"
    assert _html.readable_number(0.00123456) == "0.00123"


def test_the_bar_footnote_and_raw_labels_read_as_a_person_reads(browser, tmp_path):
    """Issue 10: the footnote printed "137.75078"."""
    sd, acts = synthetic_dict(rows=4, cols=5, seed=36, scale="raw")
    sd.views[0].values *= np.float32(137.75078 / sd.max_value)  # the number
    acts = acts * np.float32(137.75078 / acts.max())
    with opened(browser, save(tmp_path, [sd])) as run:
        root = run.root()
        note = root.locator(".sd-scale-note").inner_text()
        assert "a full bar is 138, the largest" in note and "137.75" not in note
        heat = root.locator(".sd-heat-note").text_content()
        total = _html.float32_values([sd.total.max()])[0]
        assert f"up to its largest here ({_html.readable_number(total)})" in heat
        for row, col in [(0, 0), (3, 4), (2, 1)]:
            cell(root, row, col).hover()
            labels = root.locator(".sd-percent").all_inner_texts()  # written by semdict.js
            values = [value for _, value in shown(root)]
            assert labels == [_html.readable_number(float(v)) for v in values]
            assert all(len(label.replace(".", "").lstrip("0")) <= 3 for label in labels)


# --- where the pictures come from -------------------------------------------------------------


def sprite_note(root) -> str:
    """The note under the entries on where their pictures come from."""
    note = root.locator(".sd-sprite-note")
    assert note.is_visible()
    return note.inner_text()


def test_every_page_says_where_its_pictures_come_from(browser, tiny, tmp_path):
    channels = tiny.layers["late"]
    photos = tmp_path / "holiday photos"
    photos.mkdir()
    for seed in range(3):
        picture(48, 60, seed).save(photos / f"p{seed}.png")
    examples = build_spritemap(photos, "late", tiny, sprite_size=16, progress=False)
    examples = Spritemap.load(examples.save(tmp_path / "examples.png"))
    rendered = Spritemap(  # a spritemap this library rendered, as semdict_onnx.featurevis marks it
        numbered_grid(channels),
        8,
        40,
        channels,
        layer="late",
        manifest={
            "basis": "neurons",
            "method": "feature visualization",
            "model": {"network": "TinyNet", "replica": True},
            "rendered": list(range(channels - 2)),
            "missing": [channels - 2, channels - 1],
        },
    )
    rendered = Spritemap.load(rendered.save(tmp_path / "rendered.png"))
    url = "https://sprites.example/sprite_late_channel_alpha.jpeg"
    real = load_model(
        write_tiny_model(
            tmp_path / "real.onnx",
            dataclasses.replace(
                tiny_info(replica=False), spritemaps={"late": SpritemapInfo(url, 4, 110)}
            ).to_json(),
        )
    )
    image = picture(64, 80, 7)
    pages = {
        "dataset examples": semantic_dict(image, "late", tiny, spritemap=examples),
        "rendered": semantic_dict(image, "late", tiny, spritemap=rendered),
        "lucid": semantic_dict(image, "late", real),
        "none": semantic_dict(image, "late", tiny),
        "given": synthetic_dict(seed=37)[0],
        "own patches": semantic_dict(image, "late", tiny, basis=["neurons", "nmf"], n_groups=3),
    }
    notes = {}
    for name, sd in pages.items():
        with opened(browser, save(tmp_path, [sd], f"{name}.html")) as run:
            notes[name] = sprite_note(run.root())
            if name == "own patches":
                run.root().locator('.sd-basis-button[data-basis-index="1"]').click()
                notes["own patches, groups"] = sprite_note(run.root())
        with opened(browser, tmp_path / f"{name}.html", javascript=False) as run:
            assert sprite_note(run.root()) == notes[name]  # the same without the script
    assert notes["dataset examples"] == (
        "Pictures: dataset examples: for each channel, the patch that excites it most among "
        "3 images in the folder “holiday photos”, by a replica model (random weights)."
    )
    assert notes["rendered"] == (
        "Pictures: feature visualizations rendered by semdict_onnx, by a replica model (random "
        f"weights) ({channels - 2} of {channels} channels so far; the others are blank)."
    )
    assert notes["lucid"] == (
        f"Pictures: Lucid's feature visualizations of each channel (the public spritemap {url})."
    )
    assert notes["none"].startswith("No channel pictures: the public spritemaps picture")
    assert notes["given"] == (
        "Pictures: a spritemap passed in; nothing says how its pictures were made."
    )
    assert notes["own patches"] == notes["none"]  # the neurons of the replica-like tiny model
    assert notes["own patches, groups"] == (
        "Pictures: the patch of this image where each group is strongest."
    )
    assert examples.manifest["images_folder"] == "holiday photos"
