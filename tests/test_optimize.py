"""The export's LRN rewrite (semdict_onnx.export._optimize): Conv arithmetic that gives ONNX
Runtime's LRN results."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from semdict_onnx.export._optimize import lrn_window_weights, optimize, replace_lrn


def lrn_model(channels: int, size: int, alpha: float, beta: float, bias: float) -> onnx.ModelProto:
    """x [N, C, 9, 7] -> Relu -> LRN -> y, with a dynamic batch, as tf2onnx writes LRN."""
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node(
                "LRN", ["r"], ["y"], name="norm", size=size, alpha=alpha, beta=beta, bias=bias
            ),
        ],
        "lrn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", channels, 9, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", channels, 9, 7])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run(["y"], {"x": x})[0]


@pytest.mark.parametrize(
    ("channels", "size", "alpha", "beta", "bias"),
    [
        (64, 9, 9e-4, 0.5, 1.0),  # GoogLeNet's LRNs as tf2onnx writes them
        (192, 9, 9e-4, 0.5, 1.0),
        (20, 5, 1e-3, 0.75, 2.0),  # ONNX's default beta: the Pow path
        (5, 7, 0.5, 0.5, 0.5),  # a window wider than all the channels
    ],
)
def test_rewritten_lrn_matches_onnxruntime_lrn(channels, size, alpha, beta, bias):
    original = lrn_model(channels, size, alpha, beta, bias)
    rewritten = lrn_model(channels, size, alpha, beta, bias)
    assert replace_lrn(rewritten) == ["norm"]
    ops = [node.op_type for node in rewritten.graph.node]
    assert "LRN" not in ops and "Conv" in ops
    assert ("Sqrt" in ops) == (beta == 0.5) and ("Pow" in ops) == (beta != 0.5)
    onnx.checker.check_model(rewritten)
    x = np.random.default_rng(channels).normal(0, 30, (3, channels, 9, 7)).astype(np.float32)
    np.testing.assert_allclose(run(rewritten, x), run(original, x), rtol=2e-6, atol=1e-6)


def test_window_weights_sum_each_channels_neighbours():
    weights = lrn_window_weights(6, 3, alpha=3.0)[:, :, 0, 0]
    # Output channel c sums input channels c-1..c+1, times alpha / size = 1.
    expected = np.array(
        [
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [0, 1, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 0],
            [0, 0, 0, 1, 1, 1],
            [0, 0, 0, 0, 1, 1],
        ],
        np.float32,
    )
    np.testing.assert_array_equal(weights, expected)


def test_lrn_with_unknown_channels_is_left_alone():
    model = lrn_model(8, 5, 1e-4, 0.75, 1.0)
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "c"
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "c"
    assert optimize(model) == []
    assert [node.op_type for node in model.graph.node] == ["Relu", "LRN"]


def test_exported_replica_has_no_lrn_left(replica_model_path, replica_export_log):
    model = onnx.load(replica_model_path, load_external_data=False)
    ops = [node.op_type for node in model.graph.node]
    assert "LRN" not in ops
    assert ops.count("Sqrt") == 2  # GoogLeNet's two LRNs, beta 0.5
    assert replica_export_log.count("faster graph: LRN") == 2
