"""The channel-window rewrite (semdict_onnx/_featurevis/_channel_window.py): the export's
local response normalization sums a window of channels with a 1x1 Conv, which the gradient
model runs as an AveragePool over channels instead.

Checked: which weights count as a window; that the rewritten graph computes the same values
and, through the AveragePool rule, the gradient finite differences give; and that the
replica's gradient model really runs its LRN windows that way.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from test_featurevis_vjp import _normal, check_against_differences, node

from semdict_onnx import load_model
from semdict_onnx._featurevis._channel_window import band_radius, channel_windows
from semdict_onnx._featurevis._gradient_model import build_gradient_model


def _band(channels: int, radius: int, value: float = 0.3) -> np.ndarray:
    distance = np.abs(np.subtract.outer(np.arange(channels), np.arange(channels)))
    return np.where(distance <= radius, value, 0).astype(np.float32)[:, :, None, None]


@pytest.mark.parametrize(
    ("weight", "radius"), [(_band(8, 2), 2), (_band(6, 0), 0), (_band(9, 3), 3)]
)
def test_a_band_of_one_value_is_a_window(weight, radius):
    assert band_radius(weight) == radius


def test_other_weights_are_not_windows():
    uneven = _band(8, 2)
    uneven[3, 4] = 0.2
    assert band_radius(uneven) is None
    assert band_radius(_band(5, 2)) is None  # as wide as all channels: a plain sum
    assert band_radius(np.ones((4, 4, 1, 1), np.float32)) is None
    assert band_radius(_band(8, 2)[:, :, :, :1].repeat(3, axis=3)) is None  # not 1x1
    assert band_radius(_band(8, 2)[:6]) is None  # not square
    assert band_radius(np.zeros((4, 4, 1, 1), np.float32)) is None


def _lrn(channels: int) -> tuple[list[onnx.NodeProto], dict[str, np.ndarray]]:
    """The export's LRN: x / sqrt(bias + a * window sum of x^2)."""
    nodes = [
        node("Mul", ["x", "x"], "sq"),
        node("Conv", ["sq", "window", "bias"], "base", kernel_shape=[1, 1]),
        node("Sqrt", ["base"], "root"),
        node("Div", ["x", "root"]),
    ]
    constants = {"window": _band(channels, 2), "bias": np.full(channels, 1.5, np.float32)}
    return nodes, constants


def _rewritten(channels: int) -> tuple[list[onnx.NodeProto], dict[str, np.ndarray]]:
    nodes, constants = _lrn(channels)
    taken = {name for n in nodes for name in (*n.input, *n.output)}
    rewritten, added = channel_windows(nodes, constants, taken, 17)
    assert "Conv" not in {n.op_type for n in rewritten}
    assert "AveragePool" in {n.op_type for n in rewritten}
    constants = {**constants, **{t.name: numpy_helper.to_array(t) for t in added}}
    return rewritten, constants


def _run(nodes: list[onnx.NodeProto], constants: dict, x: np.ndarray) -> np.ndarray:
    graph = helper.make_graph(
        nodes,
        "lrn",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(value, name) for name, value in constants.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_the_rewrite_computes_the_same_values():
    x = _normal(2, 7, 4, 5)
    original = _run(*_lrn(7), x)
    np.testing.assert_allclose(_run(*_rewritten(7), x), original, rtol=1e-6, atol=1e-7)


def test_the_rewritten_gradient_matches_finite_differences():
    nodes, constants = _rewritten(6)
    check_against_differences(nodes, _normal(1, 6, 3, 3), constants)


def test_the_replicas_lrn_windows_run_as_pooling(replica_model_path):
    model = load_model(replica_model_path)
    source = onnx.load(replica_model_path)
    windows = [
        n.output[0] for n in source.graph.node if n.op_type == "Conv" and "response" in n.name
    ]
    assert len(windows) == 2  # the export's two LRNs
    gradient = build_gradient_model(source, model.info, "mixed3b")
    producers = {out: n for n in gradient.graph.node for out in n.output}
    for window in windows:
        assert producers[window].op_type == "Reshape"  # of the AveragePool's sums
    pools = [n for n in gradient.graph.node if n.op_type == "AveragePool"]
    assert len(pools) == 4  # each window forward, and its transpose backward
