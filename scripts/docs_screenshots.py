"""The screenshots in docs/images/, taken again: pages of the shipped photos in headless Chromium.

    python scripts/docs_screenshots.py --model tests/.cache/replica-*/export/googlenet-replica.onnx

Needs the `test` extra (Playwright) and Debian's chromium. Writes semantic-dict.png (the cat
photo's mixed4d page, a position pinned), bases.png (its NMF groups with their overlay) and
index.png (scripts/main.py's index of the four photos), each an element screenshot at device
scale 1. Pages use the model given (the docs show the replica, whose pages say so) and a
spritemap of dataset examples built from the four shipped photos.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

import semdict_onnx
from semdict_onnx._atomic import write_text_atomic
from semdict_onnx._index_page import render_index

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "semdict_onnx" / "examples"
CHROMIUM = "/usr/bin/chromium"
LAYER = "mixed4d"


def shoot(browser, page_path: Path, out: Path, selector: str, pin: tuple[int, int] | None) -> None:
    """Open `page_path`, pin a cell, and save the first `selector` element as `out`."""
    page = browser.new_page(viewport={"width": 860, "height": 520}, device_scale_factor=1)
    page.goto(page_path.resolve().as_uri())
    if pin is not None:
        row, col = pin
        page.locator(f'.semdict rect[data-row="{row}"][data-col="{col}"]').first.click()
    page.mouse.move(1, 1)
    if selector == "body":
        page.screenshot(path=str(out), full_page=True)
    else:
        page.locator(selector).first.screenshot(path=str(out))
    page.close()
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="exported model (default: load_model()'s)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    model = semdict_onnx.load_model(args.model)
    photos = sorted(EXAMPLES.glob("*.jpg"))
    sprites = semdict_onnx.build_spritemap(photos, LAYER, model, crop_size=72, progress=False)
    cat = EXAMPLES / "chelsea.jpg"
    with tempfile.TemporaryDirectory() as work:
        pages = Path(work)
        neurons = semdict_onnx.semantic_dict(cat, LAYER, model, spritemap=sprites)
        neurons.save(pages / "cat.html")
        groups = semdict_onnx.semantic_dict(cat, LAYER, model, basis=["nmf", "neurons"])
        groups.save(pages / "groups.html")
        rows = []
        for photo in photos:
            sd = semdict_onnx.semantic_dict(photo, LAYER, model, spritemap=sprites)
            rows.append((sd.save(pages / f"{photo.stem}-{LAYER}.html").name, sd))
        write_text_atomic(pages / "index.html", render_index(rows, "Semantic dictionaries"))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            shoot(browser, pages / "cat.html", args.out / "semantic-dict.png", ".semdict", (6, 5))
            shoot(browser, pages / "groups.html", args.out / "bases.png", ".semdict", (7, 6))
            shoot(browser, pages / "index.html", args.out / "index.png", "body", None)
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
