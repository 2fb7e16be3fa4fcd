"""Bad input to prepare_model and list_layers: each a clear error of its own class, and no file
(nor temporary file) left behind. Also: crops given by hand, old model cards, graphs whose open
size does not really run at other sizes."""

from __future__ import annotations

import json

import model_families as mf
import numpy as np
import onnx
import pytest
from byom_families import FAMILIES

from semdict_onnx import load_model, receptive_fields
from semdict_onnx._layer_catalog import list_layers
from semdict_onnx._metadata import ModelInfo, Preprocessing
from semdict_onnx._prepare import prepare_model
from semdict_onnx.errors import ModelFormatError, PrepareError, SemdictError, UnknownLayerError


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    folder = tmp_path_factory.mktemp("raw")
    return {name: family.build(folder / f"{name}.onnx") for name, family in FAMILIES.items()}


def refused(tmp_path, error, match, source, layers, **options):
    """prepare_model raises `error` matching `match`, and the output folder stays empty."""
    out_dir = tmp_path / "out"
    out_dir.mkdir(exist_ok=True)
    with pytest.raises(error, match=match) as caught:
        prepare_model(source, out_dir / "model.onnx", layers, **options)
    assert isinstance(caught.value, SemdictError)
    assert list(out_dir.iterdir()) == []
    return str(caught.value)


def test_unknown_layer_lists_close_names(raw, tmp_path):
    message = refused(
        tmp_path,
        UnknownLayerError,
        "no tensor",
        raw["resnet"],
        {"layer3": "/layer3/layer3.0/relu_1/Relu_output_0"},
    )
    assert "/layer2/layer2.0/relu_1/Relu_output_0" in message
    assert "list_layers" in message
    refused(
        tmp_path,
        UnknownLayerError,
        "close names: model/block2_conv1/Relu:0",
        raw["keras"],
        ["model/block2_conv1/Relu"],
    )


def test_tensors_that_are_not_feature_maps_are_refused(raw, tmp_path):
    for tensor in ("/Flatten_output_0", mf.RESNET_LOGITS, "/avgpool/GlobalAveragePool_output_0"):
        refused(tmp_path, PrepareError, "not a feature map", raw["resnet"], [tensor])
    attention = "/encoder/layer.0/attention/Softmax_output_0"  # [1, heads, tokens, tokens]
    refused(tmp_path, PrepareError, "not a feature map", raw["vit"], [attention])


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (dict(mean=(0.5, 0.5)), r"mean must be 3 numbers \(one per colour channel\), not 2"),
        (dict(std=(0.2, 0.2, 0.2, 0.2)), "std must be 3 numbers"),
        (dict(std=(0.2, 0.0, 0.2)), "std must be positive"),
        (dict(value_range=(1, 0)), "value_range must rise"),
        (dict(channel_order="GRB"), "channel_order must be one of RGB, BGR"),
        (dict(preprocessing="imagenet"), "unknown preprocessing 'imagenet'; use one of"),
    ],
)
def test_bad_preprocessing_is_refused(raw, tmp_path, options, match):
    refused(tmp_path, PrepareError, match, raw["resnet"], FAMILIES["resnet"].layers, **options)


def test_labels_must_match_the_class_count(raw, tmp_path):
    layers = FAMILIES["resnet"].layers
    refused(
        tmp_path,
        PrepareError,
        "3 labels were given but class output 'logits' has 5 classes",
        raw["resnet"],
        layers,
        class_output="logits",
        labels=["a", "b", "c"],
    )
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("a\nb\nc\nd\n\n", encoding="utf-8")
    refused(
        tmp_path,
        PrepareError,
        "labels.txt' has 4 lines but class output 'logits' has 5",
        raw["resnet"],
        layers,
        class_output="logits",
        labels=labels_file,
    )
    refused(tmp_path, PrepareError, "need class_output", raw["resnet"], layers, labels=["a"])
    refused(
        tmp_path,
        PrepareError,
        r"is shaped \(1, 16, 28, 28\), not \[N, classes\]",
        raw["resnet"],
        layers,
        class_output="/layer2/layer2.0/relu_1/Relu_output_0",
    )
    labels_file.write_text("a\nb\nc\nd\ne\n", encoding="utf-8")
    info = prepare_model(
        raw["resnet"], tmp_path / "ok.onnx", layers, class_output="logits", labels=labels_file
    )
    assert info.labels == ("a", "b", "c", "d", "e") and info.class_output == "logits"


def test_a_layout_that_contradicts_the_graph_is_refused(raw, tmp_path):
    message = refused(
        tmp_path,
        PrepareError,
        "layout='NCHW' contradicts the graph",
        raw["keras"],
        FAMILIES["keras"].layers,
        layout="NCHW",
    )
    assert "'input_1'" in message and "NHWC" in message
    with pytest.raises(PrepareError, match="layout='NHWC' contradicts"):
        list_layers(raw["resnet"], layout="NHWC")
    assert list_layers(raw["resnet"], layout="NCHW") == list_layers(raw["resnet"])


def test_layout_is_asked_for_only_where_the_graph_does_not_say(tmp_path):
    """A 3x3x3 input that goes through Identity only: nothing says which axis is channels."""
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 3, 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 3, 3])],
    )
    path = tmp_path / "cube.onnx"
    onnx.save(onnx.helper.make_model(graph), str(path))
    with pytest.raises(PrepareError, match="cannot tell the layout of input 'x'.*layout='NCHW'"):
        list_layers(path)
    assert [c.layout for c in list_layers(path, layout="NHWC")] == ["NHWC"]


def test_input_size_that_a_fixed_graph_does_not_take_is_refused(raw, tmp_path):
    refused(
        tmp_path,
        PrepareError,
        r"fixed at 48x64; leave input_size \(--size\) out",
        raw["keras"],
        FAMILIES["keras"].layers,
        input_size=224,
    )


def test_short_names_must_not_clash(raw, tmp_path):
    layers = FAMILIES["resnet"].layers
    refused(
        tmp_path,
        PrepareError,
        "already a tensor of the graph",
        raw["resnet"],
        {"/stem/bn/BatchNormalization_output_0": layers["stem"]},
    )
    refused(tmp_path, PrepareError, "no layers given", raw["resnet"], [])
    refused(
        tmp_path,
        PrepareError,
        "crop_sizes names nope",
        raw["resnet"],
        layers,
        crop_sizes={"nope": 10},
    )


def test_extra_tokens_that_do_not_fit_are_refused(raw, tmp_path):
    layers = {"embed": mf.VIT_LAYERS["embed"]}
    message = refused(
        tmp_path,
        PrepareError,
        "with 2 extra tokens its tokens are not the patch",
        raw["vit"],
        layers,
        extra_tokens=2,
    )
    assert "has 4x4 = 16 positions" in message
    info = prepare_model(raw["vit"], tmp_path / "ok.onnx", layers, extra_tokens={"embed": 1})
    assert info.layers[0].extra_tokens == 1


def test_unwalkable_layers_need_a_crop_size_given_by_hand(tmp_path):
    """A feature map behind an op the walk does not know (Einsum): listed with its field
    unknown; prepare_model asks for a crop size, then stores it as the layer's field."""
    net = mf.Net(0)
    x = net.op(
        "Conv",
        ["input", net.const("w", net.random(4, 3, 3, 3))],
        "conv",
        pads=[1, 1, 1, 1],
        strides=[2, 2],
    )
    y = net.op("Einsum", [x], "mixed", equation="nchw->nchw")
    net.op("Relu", [y], "out")
    image = onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, 32, 32])
    out = onnx.helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [1, 4, 16, 16])
    path = net.save(tmp_path / "einsum.onnx", [image], [out])
    listed = {c.name: c for c in list_layers(path)}
    assert listed["out"].field is None and "Einsum node 'mixed'" in listed["out"].note
    message = refused(
        tmp_path, PrepareError, "cannot be computed from the graph", path, {"late": "out"}
    )
    assert "crop_sizes" in message and "Einsum node 'mixed'" in message
    info = prepare_model(path, tmp_path / "given.onnx", {"late": "out"}, crop_sizes={"late": 12})
    field = receptive_fields(tmp_path / "given.onnx")["late"]
    assert (field.size, field.jump, field.start, field.grid) == ((12, 12), (2, 2), (1, 1), (16, 16))
    assert info.layers[0].field.source == "given"


def test_open_sized_graph_that_runs_at_one_size_only_is_prepared_fixed(raw, tmp_path):
    """A ViT whose input dims are left open but whose position embeddings fit 32x32 only."""
    model = onnx.load(str(raw["vit"]))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].Clear()
    dims[2].dim_param = "height"
    dims[3].Clear()
    dims[3].dim_param = "width"
    path = tmp_path / "open-vit.onnx"
    onnx.save(model, str(path))
    info = prepare_model(path, tmp_path / "vit.onnx", FAMILIES["vit"].layers, input_size=32)
    assert (info.input.variable_size, info.input.default_size) == (False, (32, 32))
    loaded = load_model(tmp_path / "vit.onnx", providers=["CPUExecutionProvider"])
    assert loaded.activations(np.zeros((50, 70, 3), np.uint8))["block1"].shape == (1, 4, 4, 16)


def test_unreadable_sources_are_refused(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not onnx" * 8)
    refused(tmp_path, ModelFormatError, "not a readable ONNX model", junk, ["x"])
    refused(tmp_path, FileNotFoundError, "no ONNX file", tmp_path / "missing.onnx", ["x"])


def test_schema_1_cards_still_load_and_preprocessing_round_trips():
    """A card exactly as today's export writes it (schema 1, no new keys) reads with defaults."""
    old = {
        "schema": 1,
        "network": "InceptionV1",
        "source_sha256": "0" * 64,
        "replica": False,
        "input": {
            "name": "image",
            "height": 224,
            "width": 224,
            "value_range": [0, 1],
            "network_range": [-117, 138],
            "variable_size": True,
            "min_side": 32,
            "stride": 32,
        },
        "layers": [{"name": "mixed4d", "channels": 528, "height": 14, "width": 14}],
        "class_output": "softmax2",
        "num_classes": 1008,
        "labels": None,
        "spritemaps": {},
    }
    info = ModelInfo.from_json(json.dumps(old))
    assert info.layers[0].source_tensor == "mixed4d" and info.layers[0].field is None
    assert info.layers[0].layout == "NHWC" and info.input.preprocessing is None
    assert info.input.layout == "NHWC"
    with pytest.raises(ModelFormatError, match="schema 3 is not one this version reads"):
        ModelInfo.from_json(json.dumps({**old, "schema": 3}))
    caffe = Preprocessing.preset("caffe")
    assert caffe.network_range() == pytest.approx((-123.68, 255 - 103.939))
    pixel = np.array([[[[1.0, 0.0, 0.0]]]], np.float32)  # pure red, RGB in [0, 1]
    assert caffe.apply(pixel).ravel().tolist() == pytest.approx([-103.939, -116.779, 131.32])
