"""The picture a dictionary page embeds: the file as it is where a browser can show it unchanged,
else a JPEG of the display copy (at most twice the display size)."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from semdict_helpers import picture
from tiny_model import write_tiny_model

from semdict_onnx._model import Model, load_model
from semdict_onnx._picture import DISPLAY_IMAGE_MAX_PX
from semdict_onnx._pipeline import semantic_dict
from semdict_onnx._results import SemanticDict

EXAMPLE = Path(__file__).resolve().parent.parent / "semdict_onnx/examples/astronaut.jpg"
ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Model:
    path = write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx")
    return load_model(path, providers=["CPUExecutionProvider"])


def embedded(sd: SemanticDict) -> tuple[str, bytes]:
    """The mime type and bytes of the page's main picture."""
    src = re.search(r'<img class="sd-image" src="data:([^;]+);base64,([^"]+)"', sd.to_html())
    assert src, "no embedded picture in the page"
    return src.group(1), base64.b64decode(src.group(2))


def saved(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_a_small_jpeg_file_is_embedded_as_it_is(tiny):
    mime, data = embedded(semantic_dict(EXAMPLE, model=tiny, layer="late"))
    assert (mime, data) == ("image/jpeg", EXAMPLE.read_bytes())


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_small_file_bytes_are_embedded_as_they_are(tiny, fmt):
    data = saved(picture(90, 60), fmt)
    sd = semantic_dict(data, model=tiny, layer="late")
    assert embedded(sd) == (f"image/{fmt.lower()}", data)


def test_a_large_photo_is_shown_from_a_display_copy(tiny, tmp_path):
    path = tmp_path / "large.png"
    picture(2 * DISPLAY_IMAGE_MAX_PX, DISPLAY_IMAGE_MAX_PX).save(path)
    mime, data = embedded(semantic_dict(path, model=tiny, layer="late"))
    assert mime == "image/jpeg" and data != path.read_bytes()
    assert Image.open(io.BytesIO(data)).size == (DISPLAY_IMAGE_MAX_PX, DISPLAY_IMAGE_MAX_PX // 2)


def test_a_rotated_jpeg_is_re_encoded_upright(tiny):
    upright = picture(80, 40)
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # stored sideways: shown turned 90 degrees clockwise
    data = saved(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif)
    mime, shown = embedded(semantic_dict(data, model=tiny, layer="late"))
    assert mime == "image/jpeg" and shown != data
    assert Image.open(io.BytesIO(shown)).size == (80, 40)


def test_a_transparent_png_is_re_encoded(tiny):
    rgba = picture(50, 50).convert("RGBA")
    rgba.putalpha(128)
    data = saved(rgba, "PNG")
    mime, shown = embedded(semantic_dict(data, model=tiny, layer="late"))
    assert shown != data


def test_a_file_that_is_not_the_picture_is_not_embedded():
    acts = np.zeros((2, 3, 4), np.float32)
    other = saved(picture(30, 20, seed=1), "PNG")
    sd = SemanticDict.from_activations(acts, "layer", picture(40, 20), 2, image_file=other)
    mime, data = embedded(sd)
    assert mime == "image/jpeg" and data != other
    assert Image.open(io.BytesIO(data)).size == (40, 20)
