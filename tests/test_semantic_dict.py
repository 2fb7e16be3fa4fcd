"""Semantic dictionaries in Python: top-k ranking, the SemanticDict data, rendering, safety."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from semdict_helpers import (
    numbered_spritemap,
    picture,
    random_activations,
    reference_top_k,
    sprite_colour,
    synthetic_dict,
)
from tiny_model import tiny_info, write_tiny_model

from semdict_onnx import render
from semdict_onnx.bases import Basis
from semdict_onnx.errors import ImageError, SemdictError, SpritemapError, UnknownLayerError
from semdict_onnx.metadata import SpritemapInfo
from semdict_onnx.model import Model, load_model
from semdict_onnx.semantic_dict import (
    BasisView,
    SemanticDict,
    TopClass,
    semantic_dict,
    show_semantic_dict,
    strongest_position,
    top_k_channels,
)
from semdict_onnx.spritemap import Spritemap

GROUPS = Basis(np.eye(2, 5, dtype=np.float32), method="nmf", images_seen=1)
EXAMPLE = str(Path(__file__).resolve().parent.parent / "semdict_onnx/examples/chelsea.jpg")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Model:
    """The tiny test model (non-square input and layers, labels, replica flag) on CPU."""
    path = write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx")
    return load_model(path, providers=["CPUExecutionProvider"])


def payload_of(html: str) -> dict:
    """The JSON payload embedded in a rendered fragment or page (the first one)."""
    match = re.search(r'<script type="application/json" class="sd-data">(.*?)</script>', html)
    assert match, "no payload in the HTML"
    return json.loads(match.group(1))


# --- ranking -------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(14, 14, 528), (3, 7, 33), (7, 3, 33), (1, 1, 5)])
@pytest.mark.parametrize("k", [1, 4, 5])
def test_top_k_equals_a_full_stable_sort(shape, k):
    acts = random_activations(*shape, seed=sum(shape) + k)
    channels, values = top_k_channels(acts, k)
    expected_channels, expected_values = reference_top_k(acts, k)
    assert channels.shape == values.shape == (*shape[:2], k)
    assert channels.dtype == np.int32 and values.dtype == np.float32
    np.testing.assert_array_equal(channels, expected_channels)
    np.testing.assert_array_equal(values, expected_values)


def test_top_k_orders_strongest_first_and_breaks_ties_by_lower_channel():
    acts = np.zeros((1, 2, 6), np.float32)
    acts[0, 0] = [0.5, 2.0, 0.5, 3.0, 0.5, 0.0]
    acts[0, 1] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # all ReLU zeros
    channels, values = top_k_channels(acts, 4)
    assert channels[0, 0].tolist() == [3, 1, 0, 2]
    assert values[0, 0].tolist() == [3.0, 2.0, 0.5, 0.5]
    assert channels[0, 1].tolist() == [0, 1, 2, 3]


def test_strongest_position_is_row_then_column_on_a_wide_grid():
    acts = np.zeros((3, 7, 4), np.float32)
    acts[2, 5, 1] = 9.0  # row 2, column 5: only valid one way round on a 3x7 grid
    assert strongest_position(acts) == (2, 5)
    sd = SemanticDict.from_activations(acts, "wide", picture(70, 30), 2)
    assert (sd.rows, sd.cols) == (3, 7)
    assert sd.start == (2, 5)
    assert sd.entries(2, 5) == [(1, 9.0), (0, 0.0)]
    data = payload_of(sd.to_html())
    assert (data["rows"], data["cols"], data["start"]) == (3, 7, [2, 5])
    base = (2 * 7 + 5) * 2
    assert data["bases"][0]["channels"][base : base + 2] == [1, 0]


@pytest.mark.parametrize(
    ("acts", "k", "message"),
    [
        (np.zeros((4, 4), np.float32), 1, "rows, cols, channels"),
        (np.zeros((2, 2, 3), np.float32), 0, "from 1 to 3"),
        (np.zeros((2, 2, 3), np.float32), 4, "from 1 to 3"),
        (np.zeros((2, 2, 3), np.float32), True, "integer"),
        (np.full((2, 2, 3), np.nan, np.float32), 1, "NaN"),
    ],
)
def test_top_k_refuses_bad_input_clearly(acts, k, message):
    with pytest.raises(SemdictError, match=message):
        top_k_channels(acts, k)


# --- rendering rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (3.0, "3"),
        (100.0, "100"),
        (0.1, "0.1"),
        (4.5213, "4.5213"),
        (1e-6, "0.000001"),
        (1.5e-7, "1.5e-7"),
        (1e21, "1e+21"),
        (1.2345e20, "123450000000000000000"),
        (-2.5, "-2.5"),
    ],
)
def test_js_number_writes_numbers_like_javascript(value, text):
    assert render.js_number(value) == text


def test_float32_values_read_back_exactly():
    values = random_activations(5, 5, 8, seed=3)
    shown = render.float32_values(values)
    np.testing.assert_array_equal(np.asarray(shown, np.float32), values.ravel())


def test_embedded_json_cannot_close_its_script_element():
    hostile = "</script><script>alert(1)</script> & \u2028 \u2029 <!--"
    text = render.json_for_script({"label": hostile})
    for raw in ("<", ">", "&", "\u2028", "\u2029"):
        assert raw not in text
    assert json.loads(text) == {"label": hostile}


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "file:///etc/passwd", "data:text/html,<b>x</b>", "vbscript:x"]
)
def test_image_urls_other_than_http_https_data_image_are_refused(url):
    with pytest.raises(ImageError, match="http, https or data:image"):
        render.checked_image_url(url)


def test_image_urls_http_https_and_data_image_pass():
    for url in ("http://a.example/x.png", "https://a.example/x.jpeg", "data:image/png;base64,AA=="):
        assert render.checked_image_url(url) == url


def test_first_selection_is_rendered_in_the_html_itself():
    sd, acts = synthetic_dict(rows=5, cols=8, seed=1)
    html = sd.to_html()
    row, col = strongest_position(acts)
    assert sd.start == (row, col)
    expected, values = reference_top_k(acts, 4)
    shown = re.findall(r'data-channel="(\d+)" data-value="([^"]+)"', html)
    assert [int(c) for c, _ in shown] == expected[row, col].tolist()
    assert [np.float32(v) for _, v in shown] == values[row, col].tolist()
    selected = re.findall(r'<rect class="sd-cell sd-selected"[^>]*>', html)
    assert len(selected) == 1
    assert f'data-row="{row}" data-col="{col}"' in selected[0]
    assert html.count('class="sd-cell') == 5 * 8


def test_fragments_get_unique_ids_and_pages_include_assets_once():
    sd, _ = synthetic_dict()
    ids = {re.search(r'id="(semdict-[0-9a-f]{32})"', sd.to_html()).group(1) for _ in range(3)}
    assert len(ids) == 3
    page = render.render_page([sd, synthetic_dict(seed=2)[0]], title="two")
    assert page.count("window.semdictOnnx1.mount(") == 2
    assert page.count("if (window[API])") == 1  # the library itself, once
    assert page.count(".semdict .sd-entry {") == 1
    assert "<title>two</title>" in page


def test_embedded_sprites_are_only_those_the_page_uses_and_are_the_right_pictures():
    sd, acts = synthetic_dict(rows=4, cols=4, channels=60, top_k=2, seed=4)
    data = payload_of(sd.to_html())
    sprites = data["bases"][0]["sprites"]
    assert sprites["kind"] == "embedded"
    used = set(np.unique(reference_top_k(acts, 2)[0]).tolist())
    assert set(map(int, sprites["images"])) == used
    assert len(used) < 60
    for channel, uri in sprites["images"].items():
        header, data64 = uri.split(",", 1)
        assert header == "data:image/jpeg;base64"
        sprite = np.asarray(Image.open(io.BytesIO(base64.b64decode(data64))).convert("RGB"))
        centre = sprite[sprite.shape[0] // 2, sprite.shape[1] // 2].astype(int)
        assert np.abs(centre - sprite_colour(int(channel))).max() <= 12, channel


def test_remote_spritemaps_are_loaded_by_url_and_never_embedded():
    url = "https://storage.example/sprite_layer_x.jpeg"
    sd, _ = synthetic_dict(spritemap=Spritemap(url, per_row=22, sprite_size=110, channels=40))
    html = sd.to_html()
    sprites = payload_of(html)["bases"][0]["sprites"]
    assert sprites == {"kind": "remote", "url": url, "per_row": 22, "size": render.SPRITE_PX}
    assert "data:image/jpeg;base64" in html  # the image itself
    assert html.count(f'src="{url}"') == sd.top_k


def test_without_a_spritemap_channel_numbers_stand_in_with_a_note():
    sd, acts = synthetic_dict(spritemap=None, sprite_note="No channel pictures: none given.")
    html = sd.to_html()
    row, col = sd.start
    numbers = re.findall(r'<span class="sd-sprite-number">(\d+)</span>', html)
    assert [int(n) for n in numbers] == reference_top_k(acts, 4)[0][row, col].tolist()
    assert "No channel pictures: none given." in html
    assert payload_of(html)["bases"][0]["sprites"]["kind"] == "none"


def test_hostile_strings_are_escaped_everywhere():
    hostile = '"><img src=x onerror=alert(1)></script><script>alert(2)</script>'
    sd, _ = synthetic_dict(
        title=hostile,
        weights_note=hostile,
        replica=True,
        top_classes=[TopClass(1, hostile, 0.5)],
        sprite_note=hostile,
    )
    for html in (sd.to_html(), render.render_page([sd])):
        assert "<img src=x" not in html
        assert "<script>alert" not in html
        assert html.count("&lt;img src=x onerror=alert(1)&gt;") >= 4


def test_save_writes_a_whole_page_atomically(tmp_path, monkeypatch):
    sd, _ = synthetic_dict()
    path = sd.save(tmp_path / "page.html")
    text = path.read_text("utf-8")
    assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")

    def broken(*args, **kwargs):
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(render, "render_page", broken)
    with pytest.raises(RuntimeError):
        sd.save(tmp_path / "other.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]


def test_semantic_dict_constructor_refuses_inconsistent_data():
    with pytest.raises(SemdictError, match=r"\[rows, cols, k\]"):
        BasisView(np.zeros((2, 2, 3), int), np.zeros((2, 3, 3)), size=4)
    with pytest.raises(SemdictError, match="channel ids must lie in 0..3"):
        BasisView(np.full((2, 2, 1), 4), np.zeros((2, 2, 1)), size=4)
    with pytest.raises(SemdictError, match="group ids must lie in 0..1"):
        BasisView(np.full((2, 2, 1), 2), np.zeros((2, 2, 1)), size=2, basis=GROUPS)
    with pytest.raises(SemdictError, match=r"maps must be \[rows, cols, 2\]"):
        BasisView(np.zeros((2, 2, 1), int), np.zeros((2, 2, 1)), size=2, maps=np.zeros((2, 2)))
    view = BasisView(np.zeros((2, 2, 1), int), np.zeros((2, 2, 1)), size=4)
    other = BasisView(np.zeros((3, 2, 1), int), np.zeros((3, 2, 1)), size=4)
    with pytest.raises(SemdictError, match="at least one BasisView"):
        SemanticDict("l", [], picture(8, 8), layer_channels=4)
    with pytest.raises(SemdictError, match="the same grid"):
        SemanticDict("l", [view, other], picture(8, 8), layer_channels=4)
    with pytest.raises(SemdictError, match="scale must be one of image, raw, dataset"):
        SemanticDict("l", [view], picture(8, 8), layer_channels=4, scale="log")
    with pytest.raises(SemdictError, match=r"total activation must be \[rows, cols\]"):
        SemanticDict("l", [view], picture(8, 8), layer_channels=4, total=np.zeros((2, 3)))


# --- with a model ----------------------------------------------------------------------------


def test_semantic_dict_on_the_replica_is_the_top_k_of_its_activations(replica_model):
    layer = "mixed4d"
    acts = replica_model.activations(EXAMPLE, layers=[layer])[layer][0]
    sd = semantic_dict(EXAMPLE, layer=layer, model=replica_model, top_k=4)
    expected_channels, expected_values = reference_top_k(acts, 4)
    np.testing.assert_array_equal(sd.channels, expected_channels)
    np.testing.assert_allclose(sd.values, expected_values, rtol=1e-6, atol=1e-6)
    assert sd.start == strongest_position(acts)
    assert (sd.rows, sd.cols, sd.layer_channels) == (*acts.shape[:2], acts.shape[2])
    assert sd.title == "chelsea.jpg"
    html = sd.to_html()
    assert "REPLICA MODEL" in html and "random weights" in html
    assert "public spritemaps picture the real network" in html  # no default for a replica
    assert payload_of(html)["bases"][0]["sprites"]["kind"] == "none"


def test_semantic_dict_checks_spritemap_layer_and_top_k(tiny, tmp_path):
    channels = tiny.layers["late"]
    with pytest.raises(SpritemapError, match=f"has 5 sprites but layer 'late' has {channels}"):
        semantic_dict(EXAMPLE, "late", tiny, spritemap=numbered_spritemap(5))
    with pytest.raises(SpritemapError, match="pictures layer 'early'"):
        semantic_dict(EXAMPLE, "late", tiny, spritemap=numbered_spritemap(channels, "early"))
    with pytest.raises(SpritemapError, match="not int"):
        semantic_dict(EXAMPLE, "late", tiny, spritemap=12)
    with pytest.raises(SpritemapError, match="no spritemap manifest"):
        semantic_dict(EXAMPLE, "late", tiny, spritemap="missing-sprites.jpg")
    with pytest.raises(SemdictError, match=f"from 1 to {channels}"):
        semantic_dict(EXAMPLE, "late", tiny, top_k=channels + 1)
    with pytest.raises(UnknownLayerError, match="late"):
        semantic_dict(EXAMPLE, "mixed9z", tiny)
    saved = numbered_spritemap(channels, "late").save(tmp_path / "late.png")
    sd = semantic_dict(EXAMPLE, "late", tiny, spritemap=saved)
    assert sd.spritemap is not None and sd.sprite_note is None
    assert sd.spritemap.layer == "late"


def test_semantic_dict_on_a_non_square_model_keeps_rows_and_columns(tiny):
    layer = "late"
    acts = tiny.activations(EXAMPLE, layers=[layer])[layer][0]
    assert acts.shape[0] != acts.shape[1]
    sd = semantic_dict(EXAMPLE, layer=layer, model=tiny, top_k=3)
    assert (sd.rows, sd.cols) == acts.shape[:2]
    np.testing.assert_array_equal(sd.channels, reference_top_k(acts, 3)[0])
    assert sd.start == strongest_position(acts)
    assert sd.top_classes is not None and len(sd.top_classes) == 5
    probs = tiny.activations(EXAMPLE, layers=[tiny.info.class_output])
    probs = probs[tiny.info.class_output][0]
    assert [c.index for c in sd.top_classes] == np.argsort(-probs, kind="stable")[:5].tolist()
    assert sd.top_classes[0].label == tiny.info.labels[sd.top_classes[0].index]
    html = sd.to_html()
    for top in sd.top_classes:
        assert f'data-class="{top.index}"' in html


def test_a_real_model_gets_its_public_spritemap_by_url_or_a_note(tmp_path):
    url = "https://sprites.example/sprite_late_channel_alpha.jpeg"
    info = dataclasses.replace(
        tiny_info(replica=False), spritemaps={"late": SpritemapInfo(url, 4, 110)}
    )
    model = load_model(write_tiny_model(tmp_path / "real.onnx", metadata=info.to_json()))
    with_map = semantic_dict(EXAMPLE, "late", model)
    assert with_map.spritemap is not None and with_map.spritemap.url == url
    html = with_map.to_html()
    assert payload_of(html)["bases"][0]["sprites"]["url"] == url
    assert "REPLICA" not in html and 'class="sd-warning"' not in html
    assert info.weights_note in html
    without = semantic_dict(EXAMPLE, "early", model)
    assert without.spritemap is None
    assert "the model names no spritemap for early" in without.to_html()


def test_show_semantic_dict_says_clearly_when_ipython_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython", None)
    monkeypatch.setitem(sys.modules, "IPython.display", None)
    with pytest.raises(SemdictError, match="IPython, which is not installed"):
        show_semantic_dict(EXAMPLE)
