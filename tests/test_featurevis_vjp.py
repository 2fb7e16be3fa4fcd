"""Every vector-Jacobian rule against central finite differences, on small random graphs.

Each case is a graph from an input `x` to an output `y`. The gradient model (the rules of
semdict_onnx/_featurevis/_vjp.py, written as ONNX and run by ONNX Runtime) gives the gradient
of L = sum(y * r) for a random r; finite differences of L, element by element of x, must agree
to 2e-3 of the gradient's scale. Inputs keep clear of kinks (ReLU at 0, max-pool ties, clip
bounds) by more than the step, so the differences see one linear piece.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from semdict_onnx._featurevis._backward import Backward
from semdict_onnx._featurevis._vjp import RULES
from semdict_onnx.errors import GradientRuleError

STEP = 1e-2
TOLERANCE = 2e-3
RNG = np.random.default_rng(0)


def _normal(*shape: int) -> np.ndarray:
    return RNG.normal(0, 1, shape).astype(np.float32)


def _spread(*shape: int) -> np.ndarray:
    """Values 0.05 apart in random order: no two within a step of each other, none near 0."""
    count = int(np.prod(shape))
    values = (np.arange(count) - (count - 1) / 2) * 0.05
    values[values == 0] = 0.025  # odd counts: move the middle value off the kink
    return RNG.permutation(values).reshape(shape).astype(np.float32)


def _positive(*shape: int) -> np.ndarray:
    return RNG.uniform(0.5, 2.0, shape).astype(np.float32)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def gradient_function(
    nodes: list[onnx.NodeProto], x: np.ndarray, constants: dict[str, np.ndarray]
) -> tuple[Callable, Callable]:
    """(forward(x) -> y, gradient(x, r) -> dL/dx) for the graph `nodes` from "x" to "y"."""
    initializers = [numpy_helper.from_array(value, name) for name, value in constants.items()]
    names = [name for node in nodes for name in node.output]
    source = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))
    probe_graph = helper.make_graph(
        nodes,
        "probe",
        [source],
        [helper.make_empty_tensor_value_info(n) for n in names],
        initializers,
    )
    probe = helper.make_model(probe_graph, opset_imports=[helper.make_opsetid("", 17)])
    probe.ir_version = 8
    values = _session(probe).run(names, {"x": x})
    shapes = {name: value.shape for name, value in zip(names, values, strict=True)}
    shapes["x"] = x.shape
    floats = {name for name, value in zip(names, values, strict=True) if value.dtype == np.float32}
    copies = [onnx.NodeProto.FromString(node.SerializeToString()) for node in nodes]
    backward = Backward(copies, constants, shapes, floats | {"x"}, 17, RULES, "the test graph")
    grad = backward.gradient({"y": "r"}, "x")
    backward.nodes.append(helper.make_node("Identity", [grad], ["dx"]))
    graph = helper.make_graph(
        [*copies, *backward.nodes],
        "gradient",
        [source, helper.make_tensor_value_info("r", TensorProto.FLOAT, list(shapes["y"]))],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ("y", "dx")],
        initializers + backward.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = _session(model)
    zeros = np.zeros(shapes["y"], np.float32)
    return (
        lambda v: session.run(["y"], {"x": v, "r": zeros})[0],
        lambda v, r: session.run(["dx"], {"x": v, "r": r})[0],
    )


def check_against_differences(
    nodes: list[onnx.NodeProto], x: np.ndarray, constants: dict | None = None
) -> None:
    """The rule's gradient of sum(y * r) equals central differences at every element of x."""
    forward, gradient = gradient_function(nodes, x, constants or {})
    r = _normal(*forward(x).shape)
    analytic = gradient(x, r)
    numeric = np.zeros(x.size)
    flat = x.reshape(-1)
    for index in range(flat.size):
        plus, minus = flat.copy(), flat.copy()
        plus[index] += STEP
        minus[index] -= STEP
        up = np.sum(forward(plus.reshape(x.shape)).astype(np.float64) * r)
        down = np.sum(forward(minus.reshape(x.shape)).astype(np.float64) * r)
        numeric[index] = (up - down) / (2 * STEP)
    numeric = numeric.reshape(x.shape)
    scale = max(np.abs(numeric).max(), 1e-3)
    worst = np.abs(analytic - numeric).max() / scale
    assert worst < TOLERANCE, f"gradient off by {worst:.2e} of its scale"


def node(op: str, inputs: list[str], output: str = "y", **attrs) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [output], name=f"{op}:{output}", **attrs)


CONV_CASES = {
    "3x3 stride 1 same": ((2, 3, 5, 6), (4, 3, 3, 3), {"auto_pad": "SAME_UPPER"}),
    "7x7 stride 2 same, even size": (
        (1, 3, 8, 8),
        (4, 3, 7, 7),
        {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
    ),
    "7x7 stride 2 same, odd size": (
        (1, 3, 9, 7),
        (4, 3, 7, 7),
        {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
    ),
    "3x3 stride 2 same lower": (
        (1, 2, 7, 8),
        (3, 2, 3, 3),
        {"auto_pad": "SAME_LOWER", "strides": [2, 2]},
    ),
    "stride 2, uneven pads, rows left over": (
        (1, 2, 8, 9),
        (3, 2, 3, 3),
        {"pads": [1, 0, 0, 2], "strides": [2, 2]},
    ),
    "stride 3 valid": ((1, 2, 10, 11), (3, 2, 3, 3), {"auto_pad": "VALID", "strides": [3, 3]}),
    "dilation 2": ((1, 2, 9, 9), (3, 2, 3, 3), {"pads": [2, 2, 2, 2], "dilations": [2, 2]}),
    "dilation 2 stride 2": (
        (1, 2, 11, 10),
        (3, 2, 3, 3),
        {"pads": [1, 2, 2, 1], "dilations": [2, 2], "strides": [2, 2]},
    ),
    "groups 2": ((1, 4, 6, 6), (6, 2, 3, 3), {"auto_pad": "SAME_UPPER", "group": 2}),
    "depthwise stride 2": (
        (1, 3, 7, 7),
        (3, 1, 3, 3),
        {"pads": [1, 1, 1, 1], "group": 3, "strides": [2, 2]},
    ),
    "1x1": ((2, 5, 4, 3), (6, 5, 1, 1), {}),
    "pads beyond the kernel": ((1, 2, 4, 4), (2, 2, 3, 3), {"pads": [3, 0, 1, 3]}),
}


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv(case):
    x_shape, w_shape, attrs = CONV_CASES[case]
    constants = {"w": _normal(*w_shape), "b": _normal(w_shape[0])}
    check_against_differences(
        [node("Conv", ["x", "w", "b"], **attrs)], _normal(*x_shape), constants
    )


POOL_CASES = {
    "max 3x3 stride 1 same (overlapping)": (
        "MaxPool",
        (2, 3, 5, 6),
        {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER"},
    ),
    "max 3x3 stride 2 same, odd": (
        "MaxPool",
        (1, 2, 7, 7),
        {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    ),
    "max 3x3 stride 2 same, even": (
        "MaxPool",
        (1, 2, 8, 6),
        {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    ),
    "max 2x2 stride 2": ("MaxPool", (1, 3, 6, 6), {"kernel_shape": [2, 2], "strides": [2, 2]}),
    "max 3x3 explicit pads": (
        "MaxPool",
        (1, 2, 6, 7),
        {"kernel_shape": [3, 3], "pads": [1, 0, 1, 2]},
    ),
    "max 2x2 dilation 2": ("MaxPool", (1, 2, 7, 7), {"kernel_shape": [2, 2], "dilations": [2, 2]}),
    "average 3x3 stride 1 same": (
        "AveragePool",
        (1, 2, 5, 6),
        {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER"},
    ),
    "average 3x3 stride 2 pads counted": (
        "AveragePool",
        (1, 2, 7, 8),
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1},
    ),
    "average 3x3 stride 2 pads not counted": (
        "AveragePool",
        (1, 2, 7, 8),
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 1, 1]},
    ),
    "average 3x3 stride 1 centred, pads counted (its own transpose)": (
        "AveragePool",
        (2, 2, 5, 6),
        {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1},
    ),
    "average 5x1 same, pads counted (its own transpose)": (
        "AveragePool",
        (1, 1, 7, 3),
        {"kernel_shape": [5, 1], "auto_pad": "SAME_UPPER", "count_include_pad": 1},
    ),
    "average 3x3 stride 1 uneven pads counted (not its own transpose)": (
        "AveragePool",
        (1, 2, 5, 6),
        {"kernel_shape": [3, 3], "pads": [2, 0, 0, 2], "count_include_pad": 1},
    ),
    "average 2x2 stride 2": (
        "AveragePool",
        (2, 2, 6, 4),
        {"kernel_shape": [2, 2], "strides": [2, 2]},
    ),
}


@pytest.mark.parametrize("case", POOL_CASES)
def test_pooling(case):
    op, shape, attrs = POOL_CASES[case]
    check_against_differences([node(op, ["x"], **attrs)], _spread(*shape))


def test_max_pool_whose_indices_are_used_elsewhere_keeps_them():
    nodes = [
        helper.make_node("MaxPool", ["x"], ["p", "i"], kernel_shape=[2, 2]),
        node("Relu", ["p"]),
    ]
    check_against_differences(nodes, _spread(1, 2, 5, 5))


SHAPE = (2, 3, 4, 5)
CASES: dict[str, tuple[list[onnx.NodeProto], Callable[[], np.ndarray], dict]] = {
    "global average pool": ([node("GlobalAveragePool", ["x"])], lambda: _normal(*SHAPE), {}),
    "reduce mean, axes attribute": (
        [node("ReduceMean", ["x"], axes=[2, 3], keepdims=0)],
        lambda: _normal(*SHAPE),
        {},
    ),
    "reduce sum, keep dims": (
        [node("ReduceSum", ["x", "axes"], keepdims=1)],
        lambda: _normal(*SHAPE),
        {"axes": np.array([1, -1], np.int64)},
    ),
    "reduce sum, all axes": ([node("ReduceSum", ["x"], keepdims=0)], lambda: _normal(*SHAPE), {}),
    "concat of paths from one input": (
        [
            node("Relu", ["x"], "a"),
            node("Mul", ["x", "two"], "b"),
            node("Concat", ["a", "x", "b"], axis=1),
        ],
        lambda: _spread(*SHAPE),
        {"two": np.float32(2.0)},
    ),
    "split": (
        [
            helper.make_node("Split", ["x", "sizes"], ["s0", "s1", "s2"], axis=3),
            node("Mul", ["s0", "s2"]),
        ],
        lambda: _normal(*SHAPE),
        {"sizes": np.array([2, 1, 2], np.int64)},
    ),
    "gather, repeated indices": (
        [node("Gather", ["x", "idx"], axis=1)],
        lambda: _normal(*SHAPE),
        {"idx": np.array([2, 0, 2, -1], np.int64)},
    ),
    "gather, one index": (
        [node("Gather", ["x", "one"], axis=3)],
        lambda: _normal(*SHAPE),
        {"one": np.array(-2, np.int64)},
    ),
    "slice, negative and clamped bounds": (
        [node("Slice", ["x", "starts", "ends", "axes"])],
        lambda: _normal(*SHAPE),
        {
            "starts": np.array([1, -4], np.int64),
            "ends": np.array([99, -1], np.int64),
            "axes": np.array([1, -1], np.int64),
        },
    ),
    "add with broadcast constant": (
        [node("Add", ["x", "c"])],
        lambda: _normal(*SHAPE),
        {"c": _normal(1, 3, 1, 1)},
    ),
    "add of broadcast input": (
        [node("ReduceMean", ["x"], "m", axes=[2], keepdims=1), node("Add", ["m", "x"])],
        lambda: _normal(*SHAPE),
        {},
    ),
    "sub, both sides": (
        [node("Relu", ["x"], "a"), node("Sub", ["a", "x"])],
        lambda: _spread(*SHAPE),
        {},
    ),
    "sub from a constant": ([node("Sub", ["c", "x"])], lambda: _normal(*SHAPE), {"c": _normal(5)}),
    "mul, broadcast and squared": (
        [node("Mul", ["x", "c"], "a"), node("Mul", ["a", "x"])],
        lambda: _normal(*SHAPE),
        {"c": _normal(3, 1, 5)},
    ),
    "div, both sides": (
        [node("Add", ["x", "c"], "d"), node("Div", ["x", "d"])],
        lambda: _positive(*SHAPE),
        {"c": np.float32(1.5)},
    ),
    "pow, constant exponent": (
        [node("Pow", ["x", "e"])],
        lambda: _positive(*SHAPE),
        {"e": np.float32(0.75)},
    ),
    "pow, both sides": ([node("Pow", ["x", "x"])], lambda: _positive(*SHAPE), {}),
    "sqrt": ([node("Sqrt", ["x"])], lambda: _positive(*SHAPE), {}),
    "neg": ([node("Neg", ["x"])], lambda: _normal(*SHAPE), {}),
    "relu": ([node("Relu", ["x"])], lambda: _spread(*SHAPE), {}),
    "leaky relu": ([node("LeakyRelu", ["x"], alpha=0.2)], lambda: _spread(*SHAPE), {}),
    "sigmoid": ([node("Sigmoid", ["x"])], lambda: _normal(*SHAPE), {}),
    "clip, both bounds": (
        [node("Clip", ["x", "lo", "hi"])],
        lambda: _spread(*SHAPE),
        {"lo": np.float32(-0.2), "hi": np.float32(0.3)},
    ),
    "clip, upper bound only": (
        [node("Clip", ["x", "", "hi"])],
        lambda: _spread(*SHAPE),
        {"hi": np.float32(0.1)},
    ),
    "batch normalization": (
        [node("BatchNormalization", ["x", "s", "b", "m", "v"], epsilon=1e-3)],
        lambda: _normal(*SHAPE),
        {"s": _normal(3), "b": _normal(3), "m": _normal(3), "v": _positive(3)},
    ),
    "pad, constant": (
        [node("Pad", ["x", "pads", "value"])],
        lambda: _normal(*SHAPE),
        {"pads": np.array([0, 1, 2, 0, 1, 0, 1, 3], np.int64), "value": np.float32(0.5)},
    ),
    "pad, negative (crops)": (
        [node("Pad", ["x", "pads"])],
        lambda: _normal(*SHAPE),
        {"pads": np.array([0, 0, -1, 2, 0, 0, 1, -2], np.int64)},
    ),
    "transpose": ([node("Transpose", ["x"], perm=[0, 2, 3, 1])], lambda: _normal(*SHAPE), {}),
    "reshape": (
        [node("Reshape", ["x", "shape"])],
        lambda: _normal(*SHAPE),
        {"shape": np.array([2, -1], np.int64)},
    ),
    "flatten": ([node("Flatten", ["x"], axis=2)], lambda: _normal(*SHAPE), {}),
    "unsqueeze and squeeze": (
        [
            node("Unsqueeze", ["x", "axes"], "u"),
            node("Squeeze", ["u", "axes"], "s"),
            node("Mul", ["s", "s"]),
        ],
        lambda: _normal(*SHAPE),
        {"axes": np.array([1], np.int64)},
    ),
    "identity": ([node("Identity", ["x"])], lambda: _normal(*SHAPE), {}),
    "the export's local response normalization": (
        [
            node("Mul", ["x", "x"], "sq"),
            node("Conv", ["sq", "window", "bias"], "base", kernel_shape=[1, 1]),
            node("Sqrt", ["base"], "root"),
            node("Div", ["x", "root"]),
        ],
        lambda: _normal(1, 6, 3, 3),
        {
            "window": np.triu(np.tril(np.full((6, 6), 0.3, np.float32), 2), -2)[:, :, None, None],
            "bias": np.ones(6, np.float32),
        },
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_rule(case):
    nodes, make_input, constants = CASES[case]
    check_against_differences(nodes, make_input(), constants)


def test_every_rule_has_a_case():
    covered = {n.op_type for nodes, _, _ in CASES.values() for n in nodes}
    covered |= {"Conv"} | {op for op, _, _ in POOL_CASES.values()}
    assert set(RULES) <= covered, set(RULES) - covered


def _backward_of(nodes: list[onnx.NodeProto], x: np.ndarray) -> None:
    """Build the gradient of `nodes` from x to y (raises what the rules raise)."""
    gradient_function(nodes, x, {})


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ([node("Erf", ["x"])], "node 'Erf:y' (op Erf) has no gradient rule"),
        ([node("Pad", ["x", "pads"], mode="reflect")], "only constant padding has a rule"),
        ([node("Conv", ["x", "x"])], "input 1 ('x') depending on the image"),
    ],
)
def test_an_op_without_a_rule_is_named(nodes, message):
    constants = {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)}
    x = _normal(1, 1, 3, 3)
    with pytest.raises(GradientRuleError, match=re.escape(message)) as raised:
        gradient_function(nodes, x, constants if "pads" in nodes[0].input else {})
    assert "the test graph" in str(raised.value)
    assert isinstance(raised.value, NotImplementedError)


def test_redirected_relu_lets_a_silent_item_wake_up():
    """Lucid's redirected gradient: an item whose ReLU passes nothing gets the gradient,
    except where it would push a unit further down; an item with any gradient is unchanged."""
    nodes = [node("Relu", ["x"])]
    x = np.stack([-_positive(2, 3, 3), _spread(2, 3, 3)])  # item 0 silent, item 1 partly alive
    r = _normal(2, 2, 3, 3)
    initializer_free = onnx.NodeProto.FromString(nodes[0].SerializeToString())
    shapes = {"x": x.shape, "y": x.shape}
    backward = Backward([initializer_free], {}, shapes, {"x", "y"}, 17, RULES, "test", True)
    grad = backward.gradient({"y": "r"}, "x")
    graph = helper.make_graph(
        [initializer_free, *backward.nodes],
        "redirected",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(x.shape)) for n in ("x", "r")],
        [helper.make_empty_tensor_value_info(grad)],
        backward.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (result,) = _session(model).run(None, {"x": x, "r": r})
    np.testing.assert_array_equal(result[0], np.where(r[0] < 0, 0, r[0]))  # silent: redirected
    np.testing.assert_array_equal(result[1], np.where(x[1] > 0, r[1], 0))  # alive: the true one
