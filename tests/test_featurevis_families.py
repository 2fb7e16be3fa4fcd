"""The gradient model on the other model families users bring, against finite differences.

Each family of tests/model_families.py (a torchvision-style ResNet with batch norm, residual
Adds and a max pool; a Keras-style VGG converted by tf2onnx, NHWC with Clip as ReLU6) is
prepared with prepare_model, as a user would, and the gradient of every prepared layer's
objective is checked against central differences of that objective along random directions.
The ViT's patch embedding is checked the same way; its attention has ops without a rule, and
building the gradient of a block names the first one met.
"""

from __future__ import annotations

import byom_families
import numpy as np
import pytest

from semdict_onnx import load_model
from semdict_onnx._featurevis._gradient_model import gradient_session
from semdict_onnx._prepare import prepare_model
from semdict_onnx.errors import GradientRuleError

TOLERANCE = 2e-2


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The prepared model of a family, on the CPU (each family built once)."""
    models = {}

    def get(name: str):
        if name not in models:
            family = byom_families.FAMILIES[name]
            folder = tmp_path_factory.mktemp(name)
            raw = family.build(folder / "raw.onnx")
            path = folder / "prepared.onnx"
            prepare_model(raw, path, family.layers, **family.options)
            models[name] = load_model(path, providers=["CPUExecutionProvider"])
        return models[name]

    return get


@pytest.mark.parametrize("name", ["resnet", "keras", "vit"])
def test_gradients_match_finite_differences(prepared, name):
    model = prepared(name)
    rng = np.random.default_rng(7)
    height, width = model.input_size
    images = rng.uniform(0.2, 0.8, (2, height, width, 3)).astype(np.float32)
    checked = []
    for layer, channels in model.layers.items():
        if name == "vit" and layer != "embed":  # attention: see the next test
            continue
        session = gradient_session(model, layer)
        weights = rng.random((2, channels)).astype(np.float32)
        session.set_weights(weights)
        _, grad = session(images)
        # A step of 1e-3 of the network's own input range (Caffe's is 255 times wider than
        # the picture's), along the gradient itself (where the derivative is largest, so float32
        # rounding of the objective matters least) and along a smooth random direction, within
        # TOLERANCE of the derivative along the gradient.
        low, high = model.info.input.network_range
        step = 1e-3 / (high - low)
        smooth = np.repeat(
            np.repeat(rng.normal(size=(2, 4, 4, 3)), -(-height // 4), 1), -(-width // 4), 2
        )[:, :height, :width].astype(np.float32)
        along = grad / np.abs(grad).max()
        largest = np.sum((grad * along).reshape(2, -1), axis=1, dtype=np.float64)
        for direction in (along, smooth):
            up = session(images + step * direction)[0].astype(np.float64)
            down = session(images - step * direction)[0].astype(np.float64)
            numeric = (up - down) / (2 * step)
            analytic = np.sum((grad * direction).reshape(2, -1), axis=1, dtype=np.float64)
            assert np.all(np.abs(analytic - numeric) <= TOLERANCE * largest), (
                name,
                layer,
                analytic,
                numeric,
                largest,
            )
        checked.append(layer)
    assert checked


def test_attention_has_no_rule_and_says_so(prepared):
    model = prepared("vit")
    for layer in ("block0", "block1"):
        with pytest.raises(GradientRuleError, match="has no gradient rule") as raised:
            gradient_session(model, layer)
        message = str(raised.value)
        assert f"layer {layer!r}" in message and "Pick an earlier layer" in message
        assert any(f"(op {op})" in message for op in ("MatMul", "Softmax", "Gemm")), message
