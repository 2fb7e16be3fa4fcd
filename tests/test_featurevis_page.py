"""A rendered feature-visualization spritemap in the dictionary page, in real Chromium.

The user's path: render_spritemap for the channels a photo excites, save it, pass the saved
file to semantic_dict, save the page, open it in headless Chromium (tests/chromium_pages.py:
Debian's, driven by Playwright, every request but file: and data: blocked). The rendered
channels show their pictures; channels left out show the blank sprite.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from chromium_pages import launched, opened
from PIL import Image

from semdict_onnx import Spritemap, render_spritemap, semantic_dict
from semdict_onnx import _payload as page_payload

PHOTO = Path(__file__).resolve().parent.parent / "semdict_onnx" / "examples" / "chelsea.jpg"
LAYER = "mixed4a"
MEAN_COLOURS = """
root => Array.from(root.querySelectorAll('.sd-entry')).map(entry => {
  const img = entry.querySelector('.sd-sprite-img');
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const context = canvas.getContext('2d');
  context.drawImage(img, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const sum = [0, 0, 0];
  for (let i = 0; i < data.length; i += 4) { for (let c = 0; c < 3; c++) sum[c] += data[i + c]; }
  const count = data.length / 4;
  return [entry.getAttribute('data-channel'), img.complete && img.naturalWidth > 0,
          sum.map(v => v / count)];
})
"""


def mean_colour(sprite: Image.Image) -> np.ndarray:
    """The mean RGB of a sprite as the page shows it (resized to the page's sprite size)."""
    size = page_payload.SPRITE_PX
    shown = sprite if sprite.size == (size, size) else sprite.resize((size, size))
    return np.asarray(shown, np.float64).reshape(-1, 3).mean(axis=0)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module (its name marks the test `browser`)."""
    with launched() as chromium:
        yield chromium


def test_a_rendered_spritemap_shows_in_the_page(browser, replica_model, tmp_path):
    with Image.open(PHOTO) as photo:  # a dictionary keeps the photo's aspect ratio
        size = replica_model.input_size_for((photo.height, photo.width))
    acts = replica_model.activations(PHOTO, layers=[LAYER], size=size)[LAYER][0]
    row, col = np.unravel_index(int(np.argmax(acts)), acts.shape)[:2]
    top = [int(c) for c in np.argsort(-acts[row, col])[:4]]
    rendered = top[:3]  # the fourth is left out: it must show the blank sprite
    spritemap = render_spritemap(
        LAYER, replica_model, channels=rendered, size=64, steps=16, sprite_size=48, progress=False
    )
    saved = spritemap.save(tmp_path / "mixed4a-featurevis.png")
    manifest = json.loads(saved.with_suffix(".json").read_text())
    assert manifest["method"] == "feature visualization"
    assert manifest["settings"]["steps"] == 16 and manifest["rendered"] == sorted(rendered)
    page = semantic_dict(PHOTO, LAYER, replica_model, spritemap=str(saved)).save(
        tmp_path / "page.html"
    )
    loaded = Spritemap.load(saved)
    with opened(browser, page) as run:
        entries = run.root().evaluate(MEAN_COLOURS)
        assert not run.blocked and not run.dialogs
        note = run.root().locator(".sd-sprite-note").inner_text()  # where the pictures are from
    channels = replica_model.layers[LAYER]
    assert note == (
        "Pictures: feature visualizations rendered by semdict_onnx, by a replica model (random "
        f"weights) ({len(rendered)} of {channels} channels so far; the others are blank)."
    )
    assert [int(channel) for channel, _, _ in entries] == top
    for channel, loaded_ok, colour in entries:
        assert loaded_ok
        expected = mean_colour(loaded.sprite(int(channel)))
        assert np.abs(np.array(colour) - expected).max() < 4, (channel, colour, expected)
        is_blank = np.abs(np.array(colour) - 224).max() < 2
        assert is_blank == (int(channel) not in rendered), channel
