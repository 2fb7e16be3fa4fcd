"""The index page `scripts/main.py` writes (what `bash scripts/main.sh` opens with), in Chromium.

Issue 10: it was unstyled browser defaults. Now it has the dictionary pages' look and one row
per page: a thumbnail of the photo, its title linking to the page, the layer and grid, and
where the page's pictures come from, the same sentence the page itself shows.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
from chromium_pages import launched, opened
from PIL import Image
from semdict_helpers import picture

from semdict_onnx._index_page import THUMBNAIL_PX, render_index
from semdict_onnx.errors import DictionaryError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "semdict_onnx" / "examples"


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium (Debian's) for the module."""
    with launched() as chromium:
        yield chromium


def style(locator, name: str) -> str:
    """One computed style property of an element."""
    return locator.evaluate("(e, p) => getComputedStyle(e)[p]", name)


def test_the_main_jobs_index_has_a_styled_row_per_page(browser, replica_model_path, tmp_path):
    photos = tmp_path / "my photos"
    photos.mkdir()
    shutil.copyfile(EXAMPLES / "chelsea.jpg", photos / "cat.jpg")
    picture(300, 150, seed=3).save(photos / "wide scene.png")  # a space: links are encoded
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "main.py"), "--images", str(photos)]
        + ["--out", str(out), "--model", str(replica_model_path), "--layer", "mixed4c"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    index = out / "index.html"
    assert f"Open {index} in a browser" in done.stdout
    sizes = {"cat": Image.open(photos / "cat.jpg").size, "wide scene": (300, 150)}
    notes = {}
    with opened(browser, index) as run:
        page = run.page
        assert style(page.locator("body"), "backgroundColor") == "rgb(246, 247, 249)"
        assert "REPLICA MODEL" in page.locator(".sd-index-warning").inner_text()
        rows = page.locator(".sd-index-row")
        assert rows.count() == 2
        for row, name in zip(rows.all(), ["cat", "wide scene"], strict=True):
            assert style(row, "backgroundColor") == "rgb(255, 255, 255)"
            assert style(row, "borderTopLeftRadius") == "8px"
            link = row.locator(".sd-index-name")
            href = link.get_attribute("href")
            assert unquote(href) == f"{name}-mixed4c.html" and (out / unquote(href)).is_file()
            assert link.inner_text() == f"{name}.{'jpg' if name == 'cat' else 'png'}"
            assert row.locator(".sd-index-layer").inner_text() == "mixed4c"
            width, height = sizes[name]
            grid = row.locator(".sd-index-grid").inner_text()
            assert grid.startswith("14 x ")  # the photo's aspect ratio, shorter side 224
            thumb = row.locator(".sd-index-thumb img")
            natural = thumb.evaluate("i => [i.complete, i.naturalWidth, i.naturalHeight]")
            assert natural[0] and natural[1] > 0
            box = thumb.bounding_box()
            assert max(box["width"], box["height"]) == pytest.approx(THUMBNAIL_PX, abs=1)
            assert box["width"] / box["height"] == pytest.approx(width / height, rel=0.03)
            assert row.locator(".sd-index-thumb").get_attribute("href") == href
            notes[name] = row.locator(".sd-index-pictures").inner_text()
            assert notes[name].startswith(
                "Pictures: dataset examples: for each channel, the patch that excites it most "
                "among 2 images in the folder “my photos”"
            )
        rows.first.locator(".sd-index-name").click()
        page.wait_for_url("**/cat-mixed4c.html")
        assert page.locator(".semdict .sd-sprite-note").inner_text() == notes["cat"]
    assert run.blocked == []


def test_an_index_needs_pages_and_escapes_what_it_shows(tmp_path):
    from semdict_helpers import synthetic_dict

    with pytest.raises(DictionaryError, match="at least one"):
        render_index([], "nothing")
    sd, _ = synthetic_dict(title="<b>bold</b> & co")
    html = render_index([("a page & more.html", sd)], "<i>x</i>", note="note <script>")
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt; &amp; co" in html
    assert 'href="a%20page%20%26%20more.html"' in html
    assert "<i>x</i>" not in html and "note &lt;script&gt;" in html
