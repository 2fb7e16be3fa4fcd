"""The dictionary where notebook users see it, driven in Chromium (issue 10).

- A real JupyterLab 4 server (tests/jupyterlab_server.py): the README's notebook line run in
  a notebook there with Shift+Enter, the grid hovered, the entries compared with the top-k
  computed here in Python; then a notebook with stored outputs opened untrusted, where
  JupyterLab sanitizes the HTML (no style sheet, no SVG, no scripts, no data- attributes): the
  first selection must still be there, right and readable.
- nbconvert's HTML of an executed notebook, opened from a file.

In both hosts the notebook's own CSS must not leak in: its list padding used to indent the
entries, and its `img { max-width: 100% }` would squeeze a remote spritemap into one sprite's
box. Element boxes are compared to check.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
from chromium_pages import cell, expected, launched, opened, selection, shown
from lab_server import RUN_TIMEOUT_MS, lab_page, panel, run_first_cell, running_lab
from nbclient import NotebookClient
from nbconvert import HTMLExporter
from notebooks import TEST_KERNEL, new_notebook
from playwright.sync_api import Locator

from semdict_onnx._payload import SPRITE_PX

ROOT = Path(__file__).resolve().parent.parent
CAT = ROOT / "semdict_onnx" / "examples" / "chelsea.jpg"
LAYER = "mixed4d"
REMOTE = "https://sprites.example/sprite_mixed4d_channel_alpha.jpeg"  # never loaded: blocked
REMOTE_PER_ROW = 22
REMOTE_CELL = (
    "sprites = semdict_onnx.Spritemap("
    f"{REMOTE!r}, per_row={REMOTE_PER_ROW}, sprite_size=110, channels=528, layer={LAYER!r})\n"
    f"semdict_onnx.show_semantic_dict('cat.jpg', layer={LAYER!r}, spritemap=sprites)"
)


def readme_notebook_cell() -> str:
    """The README Usage block's import and its notebook line, as a notebook cell."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    usage = readme[readme.index("## Usage") :]
    block = re.search(r"```python\n(.*?)```", usage, re.DOTALL).group(1)
    lines = [
        line
        for line in block.splitlines()
        if line.startswith("import semdict_onnx") or "show_semantic_dict(" in line
    ]
    assert len(lines) == 2 and '"cat.jpg"' in lines[1], lines
    return "\n".join(lines)


@pytest.fixture(scope="module")
def notebook_env(tmp_path_factory, replica_model_path, jupyter_path) -> dict[str, str]:
    """The README's world: cat.jpg in the notebook's folder, the replica as the default model."""
    root = tmp_path_factory.mktemp("lab-root")
    shutil.copyfile(CAT, root / "cat.jpg")
    home = tmp_path_factory.mktemp("semdict-home")
    (home / "googlenet.onnx").symlink_to(replica_model_path)
    return {
        "root": str(root),
        "SEMDICT_ONNX_HOME": str(home),
        "JUPYTER_PATH": str(jupyter_path),
    }


@pytest.fixture(scope="module")
def cat_acts(replica_model) -> np.ndarray:
    """mixed4d of cat.jpg as the README line computes it: its aspect ratio, shorter side 224."""
    return replica_model.activations(CAT, layers=[LAYER], size=224)[LAYER][0]


@pytest.fixture(scope="module")
def executed(notebook_env) -> Path:
    """A notebook of the README cell and a remote-spritemap cell, executed by nbclient.

    nbclient does not sign it, so JupyterLab opens it untrusted.
    """
    root = Path(notebook_env["root"])
    notebook = new_notebook([readme_notebook_cell(), "import semdict_onnx\n" + REMOTE_CELL])
    with pytest.MonkeyPatch.context() as patch:
        for name in ("SEMDICT_ONNX_HOME", "JUPYTER_PATH"):
            patch.setenv(name, notebook_env[name])
        NotebookClient(
            notebook, kernel_name=TEST_KERNEL, timeout=300, resources={"metadata": {"path": root}}
        ).execute()
    path = root / "executed.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium (Debian's) for the module."""
    with launched() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def lab(notebook_env, tmp_path_factory):
    """A JupyterLab 4 server on 127.0.0.1 (random port and token), stopped at the end."""
    env = {name: notebook_env[name] for name in ("SEMDICT_ONNX_HOME", "JUPYTER_PATH")}
    with running_lab(Path(notebook_env["root"]), tmp_path_factory.mktemp("lab-home"), env) as lab:
        yield lab


def check_not_indented(root: Locator) -> None:
    """The entries start where their column starts: no list padding or margin from the host."""
    column = root.locator(".sd-right").bounding_box()
    entries = root.locator(".sd-entries").bounding_box()
    assert entries["x"] == pytest.approx(column["x"], abs=0.5)
    for entry in root.locator(".sd-entry").all():
        box = entry.bounding_box()
        assert box["x"] == pytest.approx(column["x"], abs=0.5)
        sprite = entry.locator(".sd-sprite").bounding_box()
        assert sprite["x"] == pytest.approx(box["x"], abs=0.5)
        assert sprite["width"] == sprite["height"] == SPRITE_PX


def check_remote_strip(root: Locator) -> None:
    """A remote spritemap's grid keeps its width inside each sprite's clipping box."""
    for image in root.locator(".sd-sprite-img").all():
        assert image.bounding_box()["width"] == pytest.approx(SPRITE_PX * REMOTE_PER_ROW, abs=0.5)


def stage_cell_box(root: Locator, row: int, col: int, rows: int, cols: int) -> dict:
    """Where cell (row, col) lies on the page, from the stage's box."""
    stage = root.locator(".sd-stage").bounding_box()
    width, height = stage["width"] / cols, stage["height"] / rows
    return {"x": stage["x"] + col * width, "y": stage["y"] + row * height, "w": width, "h": height}


# --- JupyterLab --------------------------------------------------------------------------------


def test_the_readme_notebook_line_in_jupyterlab_shows_the_python_top_k(
    browser, lab, notebook_env, cat_acts
):
    notebook = new_notebook([readme_notebook_cell()])
    nbformat.write(notebook, Path(notebook_env["root"]) / "readme.ipynb")
    rows, cols, _ = cat_acts.shape
    with lab_page(browser, lab, "readme.ipynb") as page:
        run_first_cell(page)
        outputs = panel(page).locator(".jp-Cell").first.locator(".jp-OutputArea-output")
        root = outputs.locator(".semdict[data-mounted]")
        root.wait_for(timeout=RUN_TIMEOUT_MS)
        assert outputs.count() == 1  # shown once, with nothing printed (no warnings)
        assert (root.get_attribute("data-rows"), root.get_attribute("data-cols")) == (
            str(rows),
            str(cols),
        )
        start = np.unravel_index(int(np.argmax(cat_acts)), cat_acts.shape)[:2]
        assert selection(root) == (*map(int, start), False)
        assert shown(root) == expected(cat_acts, 4, *start)
        check_not_indented(root)
        for row, col in [(0, 0), (rows - 1, cols - 1), (2, cols - 3), (rows - 2, 1), (7, 11)]:
            cell(root, row, col).hover()
            assert selection(root) == (row, col, False)
            assert shown(root) == expected(cat_acts, 4, row, col), (row, col)
        cell(root, 5, 6).click()
        page.keyboard.press("ArrowRight")
        assert selection(root) == (5, 7, True)
        assert shown(root) == expected(cat_acts, 4, 5, 7)


def test_an_untrusted_notebook_in_jupyterlab_shows_the_first_selection(
    browser, lab, executed, cat_acts
):
    rows, cols, _ = cat_acts.shape
    row, col = map(int, np.unravel_index(int(np.argmax(cat_acts)), cat_acts.shape)[:2])
    top = expected(cat_acts, 4, row, col)
    with lab_page(browser, lab, executed.name) as page:
        roots = panel(page).locator(".jp-OutputArea-output .semdict")
        roots.nth(1).wait_for()
        assert roots.count() == 2
        assert page.evaluate("window.semdictOnnx1") is None  # no script of ours ran
        assert panel(page).locator(".jp-OutputArea-output script, .semdict svg").count() == 0
        for root in roots.all():
            assert root.get_attribute("data-mounted") is None
            assert root.locator(".sd-pos").inner_text() == f"row {row}, column {col}"
            entries = root.locator(".sd-entry")
            assert entries.count() == 4
            channels = root.locator(".sd-channel").all_inner_texts()
            assert [int(c) for c in channels] == [channel for channel, _ in top]
            largest = float(cat_acts.max())
            percents = [f"{int(np.floor(100 * float(v) / largest + 0.5))}%" for _, v in top]
            assert root.locator(".sd-percent").all_inner_texts() == percents
            for entry in entries.all():
                assert entry.is_visible()
                sprite = entry.locator(".sd-sprite").bounding_box()
                assert sprite["width"] == sprite["height"] == SPRITE_PX
                bar = entry.locator(".sd-bar").bounding_box()
                fill = entry.locator(".sd-bar-fill").bounding_box()
                assert bar["height"] > 4 and 0 < fill["width"] <= bar["width"] + 0.5
            marker = root.locator(".sd-marker")
            assert marker.is_visible()
            box, want = marker.bounding_box(), stage_cell_box(root, row, col, rows, cols)
            for key, other in (("x", "x"), ("y", "y"), ("width", "w"), ("height", "h")):
                assert box[key] == pytest.approx(want[other], abs=1.5), key
            for hidden in (".sd-controls", ".sd-hint", ".sd-heat", ".sd-heat-note"):
                assert root.locator(hidden).is_hidden(), hidden
            assert root.locator(".sd-image").is_visible()
            assert root.locator(".sd-sprite-note").is_visible()
        check_remote_strip(roots.nth(1))


# --- nbconvert's HTML --------------------------------------------------------------------------


def test_nbconvert_html_of_an_executed_notebook_keeps_entries_in_place(
    browser, executed, cat_acts, tmp_path
):
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.read(executed, 4))
    assert "jp-RenderedHTMLCommon" in body  # nbconvert's own notebook styles are on the page
    page_path = tmp_path / "executed.html"
    page_path.write_text(body, encoding="utf-8")
    with opened(browser, page_path) as run:
        roots = run.page.locator(".semdict")
        assert roots.count() == 2
        for root in roots.all():
            assert root.get_attribute("data-mounted") == "true"
            check_not_indented(root)
            for row, col in [(0, 0), (9, 13)]:
                cell(root, row, col).hover()
                assert shown(root) == expected(cat_acts, 4, row, col)
        check_remote_strip(roots.nth(1))
