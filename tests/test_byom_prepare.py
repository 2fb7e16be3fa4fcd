"""Bring your own model, per family (torchvision ResNet, tf2onnx Keras, ViT): list_layers finds the
layers, prepare_model writes a file today's load_model reads, its activations equal ONNX
Runtime's own values of those tensors on the unprepared file, planted patterns land on the
right grid cells and crops, and semantic dictionaries work on it."""

from __future__ import annotations

import json
from pathlib import Path

import model_families as mf
import numpy as np
import pytest
from byom_families import FAMILIES, build_all, planted_picture, reference, softmax
from PIL import Image
from semdict_helpers import reference_top_k

from semdict_onnx import load_model, receptive_fields, semantic_dict, to_batch
from semdict_onnx._layer_catalog import list_layers
from semdict_onnx._metadata import METADATA_KEY, ModelInfo

EXAMPLES = Path(__file__).resolve().parent.parent / "semdict_onnx" / "examples"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Each family's raw file, its prepared file and card (prepared once per module)."""
    return build_all(tmp_path_factory.mktemp("families"))


def images_for(size: tuple[int, int]) -> np.ndarray:
    """Three pictures at the model's input size: two photos and seeded noise."""
    photos = to_batch([EXAMPLES / "chelsea.jpg", EXAMPLES / "rocket.jpg"], *size)
    noise = np.random.default_rng(7).random((1, *size, 3), dtype=np.float32)
    return np.concatenate([photos, noise])


@pytest.mark.parametrize("name", list(FAMILIES))
def test_list_layers_finds_each_family_layers(built, name):
    family = FAMILIES[name]
    raw, _, _ = built[name]
    found = {c.name: c for c in list_layers(raw)}
    order = list(found)
    for short, tensor in family.layers.items():
        candidate = found[tensor]
        assert candidate.layout == family.layer_layouts[short], short
        assert candidate.stride == (family.strides[short],) * 2, short
        assert candidate.extra_tokens == (
            family.extra_tokens if candidate.layout == "tokens" else 0
        )
        channel_axis = {"NCHW": 1, "NHWC": 3, "tokens": 2}[candidate.layout]
        assert candidate.channels == candidate.shape[channel_axis]
    positions = [order.index(tensor) for tensor in family.layers.values()]
    assert positions == sorted(positions), "network order"
    assert family.class_tensor not in found  # [N, classes] is not a feature map


@pytest.mark.parametrize("name", list(FAMILIES))
def test_activations_equal_onnx_runtime_on_the_unprepared_file(built, name):
    family = FAMILIES[name]
    raw, prepared, info = built[name]
    model = load_model(prepared, providers=["CPUExecutionProvider"])
    assert model.info == info == ModelInfo.from_json(info.to_json())
    images = images_for(family.size)
    got = model.activations(list(images), layers=[*family.layers, info.class_output])
    want = reference(family, raw, images)
    for short in family.layers:
        assert got[short].shape == want[short].shape
        np.testing.assert_allclose(got[short], want[short], rtol=1e-5, atol=1e-5, err_msg=short)
    probabilities = want[family.class_tensor]
    if family.logits:
        probabilities = softmax(probabilities)
    np.testing.assert_allclose(got[info.class_output], probabilities, rtol=1e-5, atol=1e-6)


def test_open_sized_resnet_runs_at_other_sizes(built):
    """The torchvision graph leaves height and width open: the prepared file says so, and at
    160 x 224 its grid and values still match ONNX Runtime on the raw file."""
    family = FAMILIES["resnet"]
    raw, prepared, info = built["resnet"]
    assert info.input.variable_size and info.input.stride == 8 and info.input.layout == "NCHW"
    model = load_model(prepared, providers=["CPUExecutionProvider"])
    images = images_for((160, 224))
    got = model.activations(list(images), layers=list(family.layers), size=(160, 224))
    want = reference(family, raw, images)
    for short in family.layers:
        np.testing.assert_allclose(got[short], want[short], rtol=1e-5, atol=1e-5, err_msg=short)
    fields = receptive_fields(model, list(family.layers), (160, 224))
    assert fields["layer2"].grid == got["layer2"].shape[1:3] == (20, 28)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_planted_pattern_lands_on_its_cells_and_crops(built, name):
    """Channel 0 of every layer answers the planted pattern: it fires only at positions whose
    field overlaps the pattern, and one of them has the pattern's centre in its crop."""
    _, prepared, _ = built[name]
    model = load_model(prepared, providers=["CPUExecutionProvider"])
    image, (left, top, right, bottom) = planted_picture(name)
    size = (image.shape[1], image.shape[0])
    acts = model.activations(image)
    fields = receptive_fields(model)
    centre = ((left + right) / 2, (top + bottom) / 2)
    for layer, values in acts.items():
        firing = np.argwhere(values[0, :, :, 0] > 0)
        assert len(firing) > 0, layer
        contains_centre = False
        for row, col in firing:
            box = fields[layer].image_box(int(row), int(col), size)
            assert box.left < right and left < box.right, (layer, row, col, box)
            assert box.top < bottom and top < box.bottom, (layer, row, col, box)
            contains_centre |= (
                box.left <= centre[0] <= box.right and box.top <= centre[1] <= box.bottom
            )
        assert contains_centre, layer
    if name == "keras":  # stride 1, centre tap: it fires exactly on the red pixels
        assert {tuple(p) for p in np.argwhere(acts["block1_conv1"][0, :, :, 0] > 0)} == {
            (y, x) for y in range(top, bottom) for x in range(left, right)
        }
    if name == "vit":  # one patch, and its crop is that patch exactly
        for layer, values in acts.items():
            assert np.argwhere(values[0, :, :, 0] > 0).tolist() == [[1, 3]], layer
            assert tuple(fields[layer].image_box(1, 3, size)) == (left, top, right, bottom)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_semantic_dict_works_on_prepared_models(built, name):
    family = FAMILIES[name]
    _, prepared, info = built[name]
    model = load_model(prepared, providers=["CPUExecutionProvider"])
    layer = list(family.layers)[-1]
    photo = EXAMPLES / "coffee.jpg"
    page = semantic_dict(photo, layer, model=model, top_k=3)
    with Image.open(photo) as opened:  # a dictionary keeps the photo's aspect ratio
        size = model.input_size_for((opened.height, opened.width))
    acts = model.activations(photo, layers=[layer], size=size)[layer][0]
    order, values = reference_top_k(acts, 3)
    assert page.channels.shape == (*acts.shape[:2], 3)
    np.testing.assert_array_equal(page.channels, order)
    np.testing.assert_array_equal(page.values, values)
    assert info.network in page.weights_note
    if family.labels:
        assert {c.label for c in page.top_classes} <= set(family.labels)
    html = page.to_html()
    assert info.network in html


def test_card_records_how_the_network_was_prepared(built):
    _, prepared, info = built["vit"]
    import onnx

    props = {p.key: p.value for p in onnx.load(str(prepared)).metadata_props}
    card = json.loads(props[METADATA_KEY])
    assert card["schema"] == 2
    embed = card["layers"][0]
    assert embed["tensor"] == mf.VIT_LAYERS["embed"] and embed["layout"] == "tokens"
    assert embed["extra_tokens"] == 1
    assert embed["field"]["source"] == "patch" and embed["field"]["size"] == [8, 8]
    assert card["input"]["preprocessing"]["mean"] == [0.5, 0.5, 0.5]
    assert card["input"]["layout"] == "NCHW" and card["class_output"] == "probabilities"
    _, _, keras = built["keras"]
    assert keras.input.preprocessing.channel_order == "BGR"
    assert (keras.input.height, keras.input.width, keras.input.variable_size) == (48, 64, False)
    assert keras.class_output == mf.KERAS_PROBS and keras.labels is None


def test_fixed_size_graphs_are_resized_to_never_refused(built):
    _, prepared, info = built["keras"]
    model = load_model(prepared, providers=["CPUExecutionProvider"])
    big = Image.fromarray(planted_picture("keras")[0]).resize((640, 480))
    assert model.activations(big)["block1_conv1"].shape == (1, 48, 64, 6)
    with pytest.raises(ValueError, match="fixed input size, so every image is resized to it"):
        model.activations(big, size=(96, 128))
