"""Rewrites of the exported ONNX graph that make ONNX Runtime faster with the same results.

ONNX Runtime's CPU kernel for LRN (local response normalization) is a plain loop: on
GoogLeNet its two LRN nodes took longer than all 57 convolutions together. `replace_lrn`
writes each LRN as ops ONNX Runtime runs on its fast paths, with the same formula

    y = x / (bias + alpha / size * sum of x^2 over the channel window) ^ beta

the window sum (scaled, plus the bias) as a 1x1 Conv with a banded weight matrix, then a
square root (beta 0.5, as in GoogLeNet) or a power, and a division. Only float32 rounding
differs; the export's parity check measures the rewritten graph against TensorFlow.
Measured alternatives are in docs/performance.md.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

# The names of the nodes replace_lrn writes for an LRN called NAME: NAME + suffix. Squares of
# activations overflow float16, so a float16 model keeps these nodes in float32.
LRN_NODE_SUFFIXES = ("/squares", "/base", "/power", "/divide")


def _channels(model: onnx.ModelProto) -> dict[str, int | None]:
    """The static channel count (axis 1) of every value shape inference knows, else None."""
    inferred = onnx.shape_inference.infer_shapes(model)
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    channels: dict[str, int | None] = {}
    for value in values:
        dims = value.type.tensor_type.shape.dim
        channels[value.name] = (
            dims[1].dim_value if len(dims) >= 2 and dims[1].HasField("dim_value") else None
        )
    return channels


def lrn_window_weights(channels: int, size: int, alpha: float, dtype=np.float32) -> np.ndarray:
    """The [C, C, 1, 1] Conv weights summing each channel's LRN window, times alpha / size."""
    below = (size - 1) // 2
    above = size - 1 - below
    index = np.arange(channels)
    offset = index[None, :] - index[:, None]  # input channel minus output channel
    band = (offset >= -below) & (offset <= above)
    return (band * np.float32(alpha / size)).astype(dtype)[:, :, None, None]


def replace_lrn(model: onnx.ModelProto) -> list[str]:
    """Replace every LRN node with Mul, Conv, Sqrt or Pow, and Div; the names replaced."""
    channels = _channels(model)
    graph = model.graph
    nodes: list[onnx.NodeProto] = []
    replaced = []
    for node in graph.node:
        count = channels.get(node.input[0]) if node.op_type == "LRN" else None
        if node.op_type != "LRN" or node.domain not in ("", "ai.onnx") or not count:
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        alpha, beta = attrs.get("alpha", 1e-4), attrs.get("beta", 0.75)
        bias, size = attrs.get("bias", 1.0), attrs["size"]
        name, x = node.name or node.output[0], node.input[0]
        weights, offsets = f"{name}/window_w", f"{name}/window_b"
        graph.initializer.extend(
            [
                numpy_helper.from_array(lrn_window_weights(count, size, alpha), weights),
                numpy_helper.from_array(np.full(count, bias, np.float32), offsets),
            ]
        )
        squares, denominator, power, divide = (name + suffix for suffix in LRN_NODE_SUFFIXES)
        nodes.append(helper.make_node("Mul", [x, x], [squares], name=squares))
        nodes.append(
            helper.make_node(
                "Conv",
                [squares, weights, offsets],
                [denominator],
                name=denominator,
                kernel_shape=[1, 1],
            )
        )
        if beta == 0.5:
            nodes.append(helper.make_node("Sqrt", [denominator], [power], name=power))
        else:
            exponent = f"{name}/beta"
            graph.initializer.append(numpy_helper.from_array(np.array(beta, np.float32), exponent))
            nodes.append(helper.make_node("Pow", [denominator, exponent], [power], name=power))
        nodes.append(helper.make_node("Div", [x, power], list(node.output), name=divide))
        replaced.append(name)
    del graph.node[:]
    graph.node.extend(nodes)
    return replaced


def optimize(model: onnx.ModelProto) -> list[str]:
    """Apply every rewrite in place; one line per rewrite done, for the export's log."""
    done = [f"LRN {name} -> Mul, 1x1 Conv, Sqrt/Pow, Div" for name in replace_lrn(model)]
    onnx.checker.check_model(model)
    return done
