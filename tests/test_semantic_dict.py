"""Semantic dictionaries in Python: top-k ranking, the SemanticDict data, rendering, safety."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from onnx_builders import BLOCK, BLUE, GREEN, MODEL_SIZE, RED, WHITE, build_planted_model
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

from semdict_onnx import Basis, _html, _payload, _render, _results, factorize
from semdict_onnx import _overlays as overlays
from semdict_onnx._dataset_examples import build_spritemap
from semdict_onnx._display import show_semantic_dict
from semdict_onnx._metadata import SpritemapInfo
from semdict_onnx._model import Model, load_model
from semdict_onnx._pipeline import gallery, semantic_dict
from semdict_onnx._ranking import strongest_position, top_k_channels
from semdict_onnx._results import Gallery, SemanticDict
from semdict_onnx._spritemap import Spritemap
from semdict_onnx._views import BasisView, TopClass
from semdict_onnx.errors import ImageError, SemdictError, SpritemapError, UnknownLayerError

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


@pytest.mark.parametrize(
    ("shape", "k"),  # argmax passes up to k 16, then a sort
    [
        (shape, k)
        for shape in [(14, 14, 528), (3, 7, 33), (7, 3, 33), (1, 1, 5)]
        for k in [1, 4, 5, 16, 17, 33]
        if k <= shape[2]
    ],
)
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
    assert _html.js_number(value) == text


def test_float32_values_read_back_exactly():
    values = random_activations(5, 5, 8, seed=3)
    shown = _html.float32_values(values)
    np.testing.assert_array_equal(np.asarray(shown, np.float32), values.ravel())


def test_embedded_json_cannot_close_its_script_element():
    hostile = "</script><script>alert(1)</script> & \u2028 \u2029 <!--"
    text = _html.json_for_script({"label": hostile})
    for raw in ("<", ">", "&", "\u2028", "\u2029"):
        assert raw not in text
    assert json.loads(text) == {"label": hostile}


@pytest.mark.parametrize("name", ["semdict.js", "semdict.css"])
def test_static_script_and_style_cannot_end_their_elements(name):
    # Pages inline them in <script> and <style>: a closing tag inside would end the element.
    text = (Path(_render.__file__).parent / "static" / name).read_text(encoding="utf-8").lower()
    assert "</script" not in text and "</style" not in text


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "file:///etc/passwd", "data:text/html,<b>x</b>", "vbscript:x"]
)
def test_image_urls_other_than_http_https_data_image_are_refused(url):
    with pytest.raises(ImageError, match="http, https or data:image"):
        _html.checked_image_url(url)


def test_image_urls_http_https_and_data_image_pass():
    for url in ("http://a.example/x.png", "https://a.example/x.jpeg", "data:image/png;base64,AA=="):
        assert _html.checked_image_url(url) == url


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
    page = _render.render_page([sd, synthetic_dict(seed=2)[0]], title="two")
    assert page.count("window.semdictOnnx1.mount(") == 2
    assert page.count("if (window[API])") == 1  # the library itself, once
    assert page.count(".semdict:not(#_) .sd-entry {") == 1
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
    assert sprites == {"kind": "remote", "url": url, "per_row": 22, "size": _payload.SPRITE_PX}
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
    for html in (sd.to_html(), _render.render_page([sd])):
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

    monkeypatch.setattr(_results, "render_page", broken)
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
    # chelsea.jpg is 451x300 px: by default it keeps its aspect ratio, shorter side 224.
    acts = replica_model.activations(EXAMPLE, layers=[layer], size=(224, 352))[layer][0]
    assert acts.shape[:2] == (14, 22)
    sd = semantic_dict(EXAMPLE, layer=layer, model=replica_model, top_k=4)
    assert sd.input_size == (224, 352)
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


def test_show_semantic_dict_outside_a_notebook_displays_through_ipython(tiny, capsys):
    # IPython is a dependency: without a running shell its display() prints the repr.
    assert show_semantic_dict(EXAMPLE, "late", tiny) is None  # shown once, never as Out[] too
    assert capsys.readouterr().out.strip() == repr(semantic_dict(EXAMPLE, "late", tiny))


# --- bases, bar scales, heat map, galleries, export -----------------------------------------

PURE = {RED: (255, 0, 0), GREEN: (0, 255, 0), BLUE: (0, 0, 255), WHITE: (255, 255, 255)}
PLACES = {RED: (1, 1), GREEN: (1, 6), BLUE: (6, 2), WHITE: (5, 6)}


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Model:
    """The planted colour model: layer "blocks", 8x8 positions, one channel per colour."""
    return load_model(build_planted_model(tmp_path_factory.mktemp("planted") / "planted.onnx"))


@pytest.fixture(scope="module")
def four_blocks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A photo at the model's size with a red, a green, a blue and a white block at PLACES."""
    array = np.zeros((MODEL_SIZE, MODEL_SIZE, 3), np.uint8)
    for channel, (row, col) in PLACES.items():
        array[row * BLOCK : (row + 1) * BLOCK, col * BLOCK : (col + 1) * BLOCK] = PURE[channel]
    path = tmp_path_factory.mktemp("four") / "four.png"
    Image.fromarray(array).save(path)
    return path


def decode_png(uri: str) -> np.ndarray:
    """The RGBA pixels of a PNG data URI, [rows, cols, 4]."""
    header, data = uri.split(",", 1)
    assert header == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGBA"))


def overlay_pictures(html: str) -> dict[tuple[int, str], np.ndarray]:
    """Every group overlay layer of a fragment, by (basis index, group or "all")."""
    found = re.findall(
        r'<img class="sd-overlay" data-basis-index="(\d+)" data-group="(\w+)" src="([^"]+)"', html
    )
    return {(int(index), group): decode_png(src) for index, group, src in found}


def test_nmf_groups_of_one_image_find_and_show_its_planted_regions(planted, four_blocks):
    sd = semantic_dict(four_blocks, "blocks", planted, top_k=2, basis="nmf", n_groups=4)
    view = sd.views[0]
    assert (sd.basis, view.unit, view.size, view.top_k, view.label) == (
        "nmf",
        "group",
        4,
        2,
        "NMF groups",
    )
    acts = planted.activations(four_blocks, "blocks")["blocks"][0]
    basis, coefficients = factorize(acts, 4, layer="blocks")
    np.testing.assert_array_equal(view.basis.components, basis.components)
    np.testing.assert_array_equal(view.channels, reference_top_k(coefficients, 2)[0])
    np.testing.assert_array_equal(view.maps, coefficients)
    html = sd.to_html()
    pictures = overlay_pictures(html)
    assert set(pictures) == {(0, "all")} | {(0, str(g)) for g in range(4)}
    for group in range(4):
        channel = int(np.argmax(basis.components[group]))  # each group is one planted colour
        row, col = PLACES[channel]
        alpha = pictures[(0, str(group))][..., 3]
        assert alpha.shape == (8, 8)  # one pixel per position: rows x cols
        assert alpha[row, col] == alpha.max() > 0
        assert (alpha > 0).sum() == 1  # the planted block and nothing else
        sprite = np.asarray(view.spritemap.sprite(group))
        assert (sprite == PURE[channel]).all()  # the group's picture: its own patch
        assert view.spritemap.manifest["sprites"][group]["source"] == "image"
    blend = pictures[(0, "all")]
    assert (blend[..., 3] > 0).sum() == 4
    data = payload_of(html)
    assert data["bases"][0]["colours"] == [
        "#{:02x}{:02x}{:02x}".format(*c) for c in overlays.group_colours(4)
    ]
    assert "this image where each group is strongest" in html


def test_several_bases_in_one_dictionary(planted, four_blocks):
    directions = np.eye(5, dtype=np.float32)[[RED, BLUE, WHITE]] + 0.05
    given = Basis(directions, layer="blocks")
    sd = semantic_dict(
        four_blocks, "blocks", planted, 4, basis=["neurons", "nmf", directions, given], n_groups=4
    )
    assert [v.method for v in sd.views] == ["neurons", "nmf", "given", "given"]
    acts = planted.activations(four_blocks, "blocks")["blocks"][0]
    np.testing.assert_array_equal(sd.channels, reference_top_k(acts, 4)[0])
    np.testing.assert_array_equal(sd.views[2].channels, sd.views[3].channels)
    np.testing.assert_array_equal(sd.views[2].channels, reference_top_k(given.project(acts), 3)[0])
    data = payload_of(sd.to_html())
    assert [b["label"] for b in data["bases"]] == [
        "neurons", "NMF groups", "given directions 1", "given directions 2"
    ]  # fmt: skip
    assert [b["k"] for b in data["bases"]] == [4, 4, 3, 3]  # top_k capped at 3 directions
    assert [b["unit"] for b in data["bases"]] == ["channel", "group", "direction", "direction"]
    assert [b["sprites"]["kind"] for b in data["bases"]] == ["none", *["embedded"] * 3]
    assert data["bases"][0]["colours"] is None and len(data["bases"][2]["colours"]) == 3
    assert sd.view("nmf") is sd.views[1]
    with pytest.raises(SemdictError, match="no 'pca' basis"):
        sd.view("pca")
    assert "3 given directions of blocks" in repr(sd)


def test_bad_bases_are_refused_before_the_model_runs(planted, four_blocks):
    with pytest.raises(SemdictError, match="unknown basis 'pca'"):
        semantic_dict(four_blocks, "blocks", planted, basis="pca")
    with pytest.raises(SemdictError, match=r"basis=\[\] asks for no basis"):
        semantic_dict(four_blocks, "blocks", planted, basis=[])
    with pytest.raises(SemdictError, match="is for a layer with 4 channels, but 'blocks' with 5"):
        semantic_dict(four_blocks, "blocks", planted, basis=np.ones((2, 4)))
    with pytest.raises(SemdictError, match="is for layer 'mixed4d'"):
        semantic_dict(four_blocks, "blocks", planted, basis=Basis(np.ones((2, 5)), layer="mixed4d"))
    with pytest.raises(SemdictError, match="scale must be one of image, raw, dataset"):
        semantic_dict(four_blocks, "blocks", planted, scale="log")
    with pytest.raises(SemdictError, match="n_groups=65 is more than NMF can find"):
        semantic_dict(four_blocks, "blocks", planted, basis="nmf", n_groups=65)


def test_dataset_spritemaps_picture_their_basis_and_give_typical_maxima(planted, tmp_path):
    photos = []
    for index, (channel, level) in enumerate([(RED, 250), (GREEN, 200), (BLUE, 150)]):
        array = np.zeros((MODEL_SIZE, MODEL_SIZE, 3), np.uint8)
        array[4 * index : 4 * index + 4, :4] = tuple(level if c else 0 for c in PURE[channel][:3])
        photos.append(array)
    given = Basis(np.eye(5, dtype=np.float32)[[RED, GREEN, BLUE]] * 2, layer="blocks")
    neuron_sprites = build_spritemap(photos, "blocks", planted, 8, progress=False)
    given_sprites = build_spritemap(photos, "blocks", planted, 8, progress=False, basis=given)
    target = photos[0]
    sd = semantic_dict(
        target, "blocks", planted, 3, [given_sprites, neuron_sprites],
        basis=["neurons", given], scale="dataset",
    )  # fmt: skip
    neurons, directions = sd.views
    assert neurons.spritemap is neuron_sprites and directions.spritemap is given_sprites
    assert directions.sprite_note is None
    best = [s["activation"] for s in neuron_sprites.manifest["sprites"]]
    np.testing.assert_allclose(neurons.typical, best)  # one example per channel: its maximum
    np.testing.assert_allclose(directions.typical, [b / 2 for b in best[:2]] + [best[3] / 2])
    data = payload_of(sd.to_html())
    first = data["bases"][0]
    assert first["scale"] == "dataset" and first["ref"] is None
    assert first["refs"] == _html.float32_values(neurons.typical)
    assert "typical maximum over the 3 images of its spritemap" in first["note"]
    channel, value = sd.entries(*sd.start)[0]  # red at its own maximum: a full bar, 100%
    assert channel == RED
    assert _html.bar_parts(value, first["refs"][RED], False) == ("100.00", 100, "100%")
    with pytest.raises(SpritemapError, match="not among those asked for"):
        semantic_dict(target, "blocks", planted, spritemap=[given_sprites])
    with pytest.raises(SpritemapError, match="basis= does not ask for the neurons"):
        semantic_dict(target, "blocks", planted, spritemap=neuron_sprites, basis=given)
    with pytest.raises(SpritemapError, match="two spritemaps of the neurons"):
        semantic_dict(target, "blocks", planted, spritemap=[neuron_sprites, neuron_sprites])
    own = semantic_dict(target, "blocks", planted, basis=given, scale="dataset")
    assert "For dataset examples, pass spritemap=build_spritemap" in own.sprite_note
    assert "No dataset maxima for these directions" in payload_of(own.to_html())["bases"][0]["note"]


def test_raw_scale_shares_one_full_bar_across_a_page_and_says_so():
    small, small_acts = synthetic_dict(rows=3, cols=4, seed=21, scale="raw")
    large, large_acts = synthetic_dict(rows=3, cols=4, seed=22, scale="raw")
    large.views[0].values *= 3  # a stronger image
    alone = payload_of(small.to_html())["bases"][0]
    assert alone["scale"] == "raw" and alone["ref"] == alone["max"]
    page = _render.render_page([small, large])
    first, second = (
        json.loads(m)["bases"][0] for m in re.findall(r'class="sd-data">(.*?)</script>', page)
    )
    assert first["ref"] == second["ref"] == second["max"] > first["max"]
    reference = f"{second['ref']:.3g}".rstrip("0").rstrip(".")  # 3 significant digits
    assert f"a full bar is {reference}, the largest" in first["note"]
    assert _html.readable_number(second["ref"]) == reference
    row, col = small.start
    channel, value = small.entries(row, col)[0]
    html = _render.render_fragment(small, raw=_payload.raw_references([small, large]))
    label = re.findall(r'<span class="sd-percent">([^<]+)</span>', html)[0]
    assert label == _html.readable_number(value)  # the raw value, 3 significant digits
    assert float(label) == pytest.approx(value, rel=5e-3) and len(label.replace(".", "")) <= 5
    image = payload_of(synthetic_dict(seed=23)[0].to_html())["bases"][0]
    assert image["scale"] == "image" and "relative to this image's largest" in image["note"]


@pytest.mark.parametrize(
    ("value", "reference", "raw", "parts"),
    [
        (3.0, 4.0, False, ("75.00", 75, "75%")),
        (5.0, 4.0, False, ("100.00", 125, "125%")),  # above the reference: full bar, 125%
        (0.125, 1.0, True, ("12.50", 13, "0.125")),  # raw: the value, 3 significant digits
        (0.12345, 1.0, True, ("12.35", 12, "0.123")),
        (137.75078, 200.0, True, ("68.88", 69, "138")),
        (0.0625, 0.5, True, ("12.50", 13, "0.0625")),  # a half percent rounds up, as in JS
        (1.0, 0.0, False, ("0.00", 0, "0%")),  # a dead direction's reference
    ],
)
def test_bar_parts_round_like_javascript(value, reference, raw, parts):
    assert _html.bar_parts(value, reference, raw) == parts
    assert _html.js_round(-2.5) == -2 and _html.js_round(0.49999999999999994) == 0


def test_heat_map_is_the_total_activation_with_rows_and_columns_kept():
    sd, acts = synthetic_dict(rows=3, cols=7, seed=24)
    np.testing.assert_allclose(sd.total, acts.sum(axis=2), rtol=1e-6)
    html = sd.to_html()
    heat_img = r'<img class="sd-heat" src="([^"]+)" alt="" style="[^"]+" hidden="hidden">'
    src = re.search(heat_img, html).group(1)
    heat = decode_png(src)
    assert heat.shape == (3, 7, 4)  # one pixel per position: 3 rows, 7 columns
    brightness = heat[..., :3].astype(int).sum(axis=2)
    order = np.argsort(sd.total.ravel(), kind="stable")
    assert (np.diff(brightness.ravel()[order]) >= 0).all()  # brighter where the total is larger
    assert re.search(r'class="sd-note sd-heat-note" hidden="hidden">Heat map: total activ', html)
    assert 'class="sd-button sd-toggle sd-toggle-heat" aria-pressed="false"' in html


def test_to_dict_is_json_and_save_npz_round_trips(planted, four_blocks, tmp_path):
    sd = semantic_dict(four_blocks, "blocks", planted, 2, basis=["neurons", "nmf"], n_groups=4)
    data = json.loads(json.dumps(sd.to_dict()))
    assert (data["layer"], data["rows"], data["cols"], data["start"]) == ("blocks", 8, 8, [1, 1])
    assert [b["method"] for b in data["bases"]] == ["neurons", "nmf"]
    assert data["bases"][0]["channels"] == sd.views[0].channels.tolist()
    np.testing.assert_array_equal(np.float32(data["bases"][1]["values"]), sd.views[1].values)
    np.testing.assert_array_equal(np.float32(data["bases"][1]["components"]),
                                  sd.views[1].basis.components)  # fmt: skip
    assert data["bases"][0]["components"] is None and data["top_classes"] is None
    np.testing.assert_array_equal(np.float32(data["total_activation"]), sd.total)
    path = sd.save_npz(tmp_path / "out" / "four.npz")
    assert [p.name for p in path.parent.iterdir()] == ["four.npz"]
    with np.load(path, allow_pickle=False) as saved:
        np.testing.assert_array_equal(saved["0_channels"], sd.views[0].channels)
        np.testing.assert_array_equal(saved["1_values"], sd.views[1].values)
        np.testing.assert_array_equal(saved["1_components"], sd.views[1].basis.components)
        np.testing.assert_array_equal(saved["total_activation"], sd.total)
        assert "0_components" not in saved.files
        meta = json.loads(str(saved["meta"]))
    assert meta["bases"][1]["unit"] == "group" and "channels" not in meta["bases"][1]


def test_a_gallery_puts_many_dictionaries_on_one_page(tiny, tmp_path, capsys):
    photos = []
    for index, (width, height) in enumerate([(60, 40), (40, 60), (50, 50)]):
        photos.append(tmp_path / f"photo{index}.png")
        picture(width, height, seed=index).save(photos[-1])
    made, _ = synthetic_dict(seed=25)
    result = gallery([*photos, made], "late", tiny, 3, title="<my> photos")
    assert len(result) == 4 and result.dicts[3] is made
    assert [sd.title for sd in result.dicts[:3]] == ["photo0.png", "photo1.png", "photo2.png"]
    assert "gallery late" in capsys.readouterr().err  # the progress bar
    page = result.save(tmp_path / "gallery.html").read_text("utf-8")
    assert page.count('<div class="semdict" id=') == 4
    assert page.count("if (window[API])") == 1
    assert "&lt;my&gt; photos <span" in page and "(4 dictionaries)" in page
    fragment = result._repr_html_()
    assert fragment.count("window.semdictOnnx1.mount(") == 4
    assert fragment.count(".semdict:not(#_) .sd-entry {") == 1
    assert result.to_dict()["dicts"][0]["title"] == "photo0.png"
    with pytest.raises(SemdictError, match="needs at least one image"):
        gallery([], "late", tiny)
    with pytest.raises(SemdictError, match="one or more SemanticDict"):
        Gallery(["x"])
