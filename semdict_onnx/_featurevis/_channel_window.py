"""A 1x1 convolution that sums a sliding window of channels, as a pooling over channels.

The export writes GoogLeNet's local response normalization as Mul (the squares), a 1x1 Conv
whose C x C weights are one value `a` on a band |out - in| <= r and 0 elsewhere (the
window sum), Sqrt and Div. ONNX Runtime runs that Conv as a dense C x C product: for the
192-channel LRN after conv2d2, about 5% of the gradient model's time, forward and backward.
`channel_windows` rewrites such a Conv, in the gradient model's copy of the forward graph, as

    Reshape [N, 1, C, H*W] -> AveragePool (2r + 1) x 1, pads r, counting pads
    -> Mul a (2r + 1) -> Add bias -> Reshape [N, C, H, W]

which sums the same 2r + 1 values per output (about 1e-7 apart: float32 rounding in another
order) in a fraction of the time; the AveragePool rule (_vjp_spatial.py) differentiates it
with another AveragePool. Any other Conv is left as it is.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ._backward import Emitter, attributes


def band_radius(weight: np.ndarray) -> int | None:
    """r when `weight` [C, C, 1, 1] is one nonzero value on |out - in| <= r and 0 elsewhere
    (a window narrower than all channels), else None."""
    if weight.ndim != 4 or weight.shape[2:] != (1, 1) or weight.shape[0] != weight.shape[1]:
        return None
    matrix = weight[:, :, 0, 0]
    channels = len(matrix)
    first_row = np.flatnonzero(matrix[0])
    if len(first_row) == 0 or first_row[0] != 0:
        return None
    radius = int(first_row[-1])
    if not 2 * radius + 1 < channels:
        return None
    distance = np.abs(np.subtract.outer(np.arange(channels), np.arange(channels)))
    value = matrix[0, 0]
    expected = np.where(distance <= radius, value, np.float32(0))
    return radius if value != 0 and np.array_equal(matrix, expected) else None


def _window_of(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> tuple | None:
    """(weight, radius, bias value or None) when `node` is a channel-window Conv."""
    if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
        return None
    attrs = attributes(node)
    plain = (
        attrs.get("group", 1) == 1
        and all(s == 1 for s in attrs.get("strides", [1, 1]))
        and not any(attrs.get("pads", [0]))
        and attrs.get("auto_pad", "NOTSET") in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")
    )
    weight = constants.get(node.input[1])
    if not plain or weight is None or weight.dtype != np.float32:
        return None
    radius = band_radius(weight)
    bias = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if radius is None or (bias is not None and (bias.ndim != 1 or np.ptp(bias) != 0)):
        return None
    return weight, radius, None if bias is None else np.float32(bias[0])


def channel_windows(
    nodes: list[onnx.NodeProto], constants: dict[str, np.ndarray], taken: set[str], opset: int
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """`nodes` with every channel-window Conv rewritten (see module doc), and the new
    constants the rewrite needs. Names clash with nothing in `taken`."""
    emitter = Emitter(opset, taken, "window")
    result = []
    for node in nodes:
        found = _window_of(node, constants)
        if found is None:
            result.append(node)
            continue
        weight, radius, bias = found
        x, channels = node.input[0], weight.shape[0]
        rows = emitter.op("Reshape", x, emitter.ints([0, 1, channels, -1]))
        pooled = emitter.op(
            "AveragePool",
            rows,
            kernel_shape=[2 * radius + 1, 1],
            pads=[radius, 0, radius, 0],
            count_include_pad=1,
        )
        summed = emitter.op("Mul", pooled, emitter.const(weight[0, 0, 0, 0] * (2 * radius + 1)))
        if bias is not None:
            summed = emitter.op("Add", summed, emitter.const(bias))
        emitter.nodes.append(
            helper.make_node(
                "Reshape", [summed, emitter.op("Shape", x)], list(node.output), node.name
            )
        )
        result.extend(emitter.nodes)
        emitter.nodes.clear()
    return result, emitter.initializers
