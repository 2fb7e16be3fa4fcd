"""Vector-Jacobian products of ONNX ops, each written in standard ONNX ops.

One rule per op type: given the gradients of a node's outputs, the gradients of its inputs.
The rules need nothing but ONNX Runtime to run, work at any batch size and any image size
(sizes that depend on the input, such as SAME padding at stride 2, are computed in the graph
from Shape), and only differentiate with respect to the data input of ops whose other inputs
are weights. `RULES` maps op types to rules; _backward.py applies them.

- Conv: ConvTranspose with the same weights, strides, dilations and groups. At stride 1 the
  forward pads go straight into ConvTranspose; at larger strides the full transposed
  convolution is cut (Slice) to the input, which is what output_padding does for one size,
  for every size at once.
- MaxPool: the forward node also returns the argmax indices, and ScatterElements adds each
  output gradient at its index (overlapping windows add up). A tie goes to the index ONNX
  Runtime returns (the first maximum in the window).
- AveragePool: a depthwise ConvTranspose of 1/area kernels (divided first by the share of
  each window inside the input when padding is not counted); GlobalAveragePool, ReduceMean,
  ReduceSum: Expand (divided by the count for means).
- Concat: Split; Split: Concat. Transpose: the inverse permutation. Reshape, Flatten,
  Squeeze, Unsqueeze: Reshape to the input's shape. Identity: itself.
- Elementwise: Add, Sub, Mul, Div, Pow (summed over broadcast axes), Sqrt, Neg, Relu,
  LeakyRelu, Sigmoid, Clip (masks where the derivative is zero). With `redirect_relu`, Relu
  gives Lucid's redirected gradient instead (its render_vis uses it for the first 16 steps):
  where a ReLU stops all of a batch item's gradient, the gradient passes except where it
  would push an inactive unit lower, so channels that start silent can wake up. BatchNormalization
  (inference): the per-channel scale / sqrt(var + epsilon). Pad (constant mode): Slice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import onnx

from ._backward import Backward, Rule, attributes

RULES: dict[str, Rule] = {}
INT64_MAX = np.iinfo(np.int64).max
Grads = list["str | None"]


def _rule(*op_types: str) -> Callable[[Rule], Rule]:
    """Register a function as the rule of `op_types`."""

    def register(function: Rule) -> Rule:
        for op_type in op_types:
            RULES[op_type] = function
        return function

    return register


def _first_only(bw: Backward, node: onnx.NodeProto, needs: list[bool], what: str = "") -> None:
    """Refuse a gradient through any input but the first (weights, shapes, attributes)."""
    for index, need in enumerate(needs[1:], start=1):
        if need:
            raise bw.unsupported(
                node,
                f"has its input {index} ({node.input[index]!r}) depending on the image; the rule "
                f"only passes the gradient through its first input{what}",
            )


def _to_first(node: onnx.NodeProto, grad: str) -> Grads:
    """A gradient for the first input only."""
    return [grad] + [None] * (len(node.input) - 1)


def conv_input_gradient(
    bw: Backward,
    grad: str,
    x: str,
    weight: str,
    kernel: Sequence[int],
    attrs: dict,
) -> str:
    """The gradient of a convolution's input `x` of shape [N, C, *spatial] (see module doc)."""
    rank = len(kernel)
    strides = list(attrs.get("strides") or [1] * rank)
    dilations = list(attrs.get("dilations") or [1] * rank)
    group = int(attrs.get("group", 1))
    auto_pad = attrs.get("auto_pad", "NOTSET")
    pads = [0] * (2 * rank) if auto_pad == "VALID" else list(attrs.get("pads") or [0] * 2 * rank)
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    same = auto_pad in ("SAME_UPPER", "SAME_LOWER")
    common = {"kernel_shape": list(kernel), "dilations": dilations, "group": group}
    if all(s == 1 for s in strides):
        if same:
            total = [e - 1 for e in extent]
            begin = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in total]
            pads = begin + [t - b for t, b in zip(total, begin, strict=True)]
        flipped = _flipped_weights(bw.constant(weight), group)
        # The backward pads: what the forward pads leave of the kernel's reach on each side.
        backward_pads = [e - 1 - p for e, p in zip(extent * 2, pads, strict=True)]
        if flipped is not None and min(backward_pads) >= 0:
            return bw.op("Conv", grad, bw.const(flipped), pads=backward_pads, **common)
        return bw.op("ConvTranspose", grad, weight, strides=strides, pads=pads, **common)
    full = bw.op("ConvTranspose", grad, weight, strides=strides, **common)
    size = bw.shape(x, 2)
    if same:
        # The total padding SAME chose for this size: (out - 1) * stride + extent - size.
        out = bw.shape(grad, 2)
        steps = bw.op("Mul", bw.op("Sub", out, bw.ints([1] * rank)), bw.ints(strides))
        reach = bw.op("Add", steps, bw.ints(extent))
        total = bw.op("Max", bw.op("Sub", reach, size), bw.ints([0] * rank))
        half = bw.op("Div", total, bw.ints([2] * rank))
        begin = half if auto_pad == "SAME_UPPER" else bw.op("Sub", total, half)
    else:
        begin = bw.ints(pads[:rank])
        # Trailing input positions that no window reached get zeros.
        missing = bw.op("Sub", bw.op("Add", begin, size), bw.shape(full, 2))
        extra = bw.op("Max", missing, bw.ints([0] * rank))
        pad_all = bw.op("Concat", bw.ints([0] * (rank + 4)), extra, axis=0)
        full = bw.op("Pad", full, pad_all)
    end = bw.op("Add", begin, size)
    return bw.op("Slice", full, begin, end, bw.ints(range(2, 2 + rank)))


def _flipped_weights(weight: np.ndarray | None, group: int) -> np.ndarray | None:
    """Conv weights [M, C/g, *k] as the weights of their adjoint at stride 1, [C, M/g, *k]
    flipped in space (None when the weights are computed at run time).

    A stride-1 convolution's input gradient is a convolution of the output gradient with
    these, which ONNX Runtime runs on its fast convolution kernels (ConvTranspose has none).
    """
    if weight is None:
        return None
    out_channels, in_per_group, *kernel = weight.shape
    grouped = weight.reshape(group, out_channels // group, in_per_group, *kernel)
    swapped = grouped.swapaxes(1, 2).reshape(group * in_per_group, out_channels // group, *kernel)
    flip = (slice(None), slice(None)) + (slice(None, None, -1),) * len(kernel)
    return np.ascontiguousarray(swapped[flip], dtype=np.float32)


@_rule("Conv")
def _conv(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    _first_only(bw, node, needs, " (the data, not the weights or bias)")
    attrs = attributes(node)
    kernel = attrs.get("kernel_shape") or bw.static_shape(node.input[1])[2:]
    gradient = conv_input_gradient(bw, grads[0], node.input[0], node.input[1], kernel, attrs)
    return _to_first(node, gradient)


@_rule("MaxPool")
def _max_pool(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    attrs = attributes(node)
    if attrs.get("storage_order", 0) != 0:
        raise bw.unsupported(node, "uses column-major indices (storage_order=1)")
    if grads[0] is None:
        return [None]
    if len(node.output) < 2 or not node.output[1]:
        indices = bw.fresh("argmax")
        if len(node.output) < 2:
            node.output.append(indices)
        else:
            node.output[1] = indices
    x, flat = node.input[0], bw.ints([-1])
    zeros = bw.op("ConstantOfShape", bw.op("Reshape", bw.op("Size", x), bw.ints([1])))
    indices = bw.op("Reshape", node.output[1], flat)
    values = bw.op("Reshape", grads[0], flat)
    summed = bw.op("ScatterElements", zeros, indices, values, axis=0, reduction="add")
    return [bw.op("Reshape", summed, bw.shape(x))]


@_rule("AveragePool")
def _average_pool(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    attrs = attributes(node)
    if attrs.get("ceil_mode", 0):
        raise bw.unsupported(node, "uses ceil_mode=1, which has no rule")
    x, kernel = node.input[0], list(attrs["kernel_shape"])
    channels = bw.static_shape(x)[1]
    weight = bw.const(np.full((channels, 1, *kernel), 1.0 / math.prod(kernel), np.float32))
    grad = grads[0]
    auto_pad = attrs.get("auto_pad", "NOTSET")
    padded = auto_pad.startswith("SAME") or (auto_pad == "NOTSET" and any(attrs.get("pads", [])))
    if padded and not attrs.get("count_include_pad", 0):
        # Each window divides by the pixels it has inside the input: scale by area / that.
        one = onnx.numpy_helper.from_array(np.ones(1, np.float32))
        ones = bw.op("ConstantOfShape", bw.shape(x), value=one)
        pool = {k: v for k, v in attrs.items() if k != "count_include_pad"}
        inside = bw.op("AveragePool", ones, count_include_pad=1, **pool)
        grad = bw.op("Div", grad, inside)
    conv = {**attrs, "group": channels, "dilations": attrs.get("dilations")}
    return [conv_input_gradient(bw, grad, x, weight, kernel, conv)]


@_rule("GlobalAveragePool")
def _global_average_pool(
    bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]
) -> Grads:
    x = node.input[0]
    count = bw.as_float(bw.reduce("ReduceProd", bw.shape(x, 2), [0], keepdims=False))
    return [bw.op("Expand", bw.op("Div", grads[0], count), bw.shape(x))]


@_rule("ReduceMean", "ReduceSum")
def _reduce(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    _first_only(bw, node, needs)
    attrs, x = attributes(node), node.input[0]
    rank = bw.rank(x)
    axes = attrs.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        value = bw.constant(node.input[1])
        if value is None:
            raise bw.unsupported(node, "takes its axes from a computed tensor")
        axes = value.tolist()
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            return _to_first(node, grads[0])
        axes = range(rank)
    axes = sorted(int(axis) % rank for axis in axes)
    grad = grads[0]
    if not attrs.get("keepdims", 1):
        grad = bw.op("Unsqueeze", grad, bw.ints(axes))
    if node.op_type == "ReduceMean":
        sizes = bw.op("Gather", bw.shape(x), bw.ints(axes))
        grad = bw.op("Div", grad, bw.as_float(bw.reduce("ReduceProd", sizes, [0], False)))
    return _to_first(node, bw.op("Expand", grad, bw.shape(x)))


@_rule("Concat")
def _concat(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    axis = attributes(node)["axis"] % bw.rank(node.output[0])
    sizes = bw.op("Concat", *(bw.shape(x, axis, axis + 1) for x in node.input), axis=0)
    parts = bw.ops("Split", [grads[0], sizes], len(node.input), axis=axis)
    return [part if need else None for part, need in zip(parts, needs, strict=True)]


@_rule("Split")
def _split(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    _first_only(bw, node, needs)
    axis = attributes(node).get("axis", 0)
    parts = [
        grad if grad is not None else bw.op("ConstantOfShape", bw.shape(output))
        for grad, output in zip(grads, node.output, strict=True)
    ]
    return _to_first(node, bw.op("Concat", *parts, axis=axis))


@_rule("Transpose")
def _transpose(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    perm = attributes(node).get("perm") or list(reversed(range(bw.rank(node.input[0]))))
    return [bw.op("Transpose", grads[0], perm=[int(i) for i in np.argsort(perm)])]


@_rule("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def _reshape(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    _first_only(bw, node, needs)
    return _to_first(node, bw.op("Reshape", grads[0], bw.shape(node.input[0])))


@_rule("Identity")
def _identity(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    return [grads[0]]


def _binary(bw: Backward, node: onnx.NodeProto, needs: list[bool], *grads: str | None) -> Grads:
    """Gradients of both operands of a broadcasting binary op, each summed to its shape."""
    return [
        bw.unbroadcast(grad, operand, node.output[0]) if need and grad is not None else None
        for grad, operand, need in zip(grads, node.input, needs, strict=True)
    ]


@_rule("Add")
def _add(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    return _binary(bw, node, needs, grads[0], grads[0])


@_rule("Sub")
def _sub(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    return _binary(bw, node, needs, grads[0], bw.op("Neg", grads[0]) if needs[1] else None)


@_rule("Mul")
def _mul(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    (a, b), grad = node.input, grads[0]
    return _binary(
        bw,
        node,
        needs,
        bw.op("Mul", grad, b) if needs[0] else None,
        bw.op("Mul", grad, a) if needs[1] else None,
    )


@_rule("Div")
def _div(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    (_, b), grad, y = node.input, grads[0], node.output[0]
    return _binary(
        bw,
        node,
        needs,
        bw.op("Div", grad, b) if needs[0] else None,
        bw.op("Neg", bw.op("Div", bw.op("Mul", grad, y), b)) if needs[1] else None,
    )


@_rule("Pow")
def _pow(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    (a, b), grad, y = node.input, grads[0], node.output[0]
    exponent = bw.constant(b)
    base_grad = None
    if needs[0]:
        if exponent is not None:  # d a^b / d a = b a^(b - 1), the new exponent folded here
            value = exponent.astype(np.float32)
            slope = bw.op("Mul", bw.const(value), bw.op("Pow", a, bw.const(value - 1)))
        else:
            slope = bw.op("Mul", b, bw.op("Pow", a, bw.op("Sub", b, bw.const(1.0))))
        base_grad = bw.op("Mul", grad, slope)
    return _binary(
        bw,
        node,
        needs,
        base_grad,
        bw.op("Mul", bw.op("Mul", grad, y), bw.op("Log", a)) if needs[1] else None,
    )


@_rule("Sqrt")
def _sqrt(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    return [bw.op("Div", bw.op("Mul", grads[0], bw.const(0.5)), node.output[0])]


@_rule("Neg")
def _neg(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    return [bw.op("Neg", grads[0])]


@_rule("Relu")
def _relu(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    # The mask reads the output (> 0 where the input is), so the input need not be kept and
    # ONNX Runtime can still fuse the forward Conv and Relu.
    zero, grad = bw.const(0.0), grads[0]
    positive = bw.op("Greater", node.output[0], zero)
    passed = bw.op("Where", positive, grad, zero)
    if not bw.redirect_relu:
        return [passed]
    # Lucid's redirected gradient: for a batch item whose gradient this ReLU stops entirely,
    # let it through, except where it would push an inactive unit further down.
    lowering = bw.op("Less", grad, zero)
    redirected = bw.op("Where", bw.op("Or", positive, bw.op("Not", lowering)), grad, zero)
    axes = list(range(1, bw.rank(node.output[0])))
    magnitude = bw.reduce("ReduceSum", bw.op("Abs", passed), axes, keepdims=True)
    return [bw.op("Where", bw.op("Greater", magnitude, zero), passed, redirected)]


@_rule("LeakyRelu")
def _leaky_relu(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    alpha = attributes(node).get("alpha", 0.01)
    positive = bw.op("Greater", node.input[0], bw.const(0.0))
    return [bw.op("Where", positive, grads[0], bw.op("Mul", grads[0], bw.const(alpha)))]


@_rule("Sigmoid")
def _sigmoid(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    y = node.output[0]
    slope = bw.op("Mul", y, bw.op("Sub", bw.const(1.0), y))
    return [bw.op("Mul", grads[0], slope)]


@_rule("Clip")
def _clip(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    _first_only(bw, node, needs)
    attrs, x = attributes(node), node.input[0]
    bounds = list(node.input[1:3]) + [""] * (3 - len(node.input))
    low = bounds[0] or (bw.const(attrs["min"]) if "min" in attrs else "")
    high = bounds[1] or (bw.const(attrs["max"]) if "max" in attrs else "")
    masks = []
    if low:
        masks.append(bw.op("GreaterOrEqual", x, low))
    if high:
        masks.append(bw.op("LessOrEqual", x, high))
    if not masks:
        return _to_first(node, grads[0])
    inside = masks[0] if len(masks) == 1 else bw.op("And", *masks)
    return _to_first(node, bw.op("Where", inside, grads[0], bw.const(0.0)))


@_rule("BatchNormalization")
def _batch_norm(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    _first_only(bw, node, needs, " (the data, not the statistics)")
    attrs = attributes(node)
    if attrs.get("training_mode", 0) or any(grads[1:]):
        raise bw.unsupported(node, "runs in training mode; only inference has a rule")
    x, scale, variance = node.input[0], node.input[1], node.input[4]
    root = bw.op("Sqrt", bw.op("Add", variance, bw.const(attrs.get("epsilon", 1e-5))))
    factor = bw.op("Reshape", bw.op("Div", scale, root), bw.ints([-1] + [1] * (bw.rank(x) - 2)))
    return _to_first(node, bw.op("Mul", grads[0], factor))


@_rule("Pad")
def _pad(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    _first_only(bw, node, needs)
    attrs = attributes(node)
    mode = attrs.get("mode", "constant")
    if mode != "constant":
        raise bw.unsupported(node, f"pads in mode {mode!r}; only constant padding has a rule")
    axes = node.input[3] if len(node.input) > 3 and node.input[3] else ""
    pads = bw.constant(node.input[1]) if len(node.input) > 1 else np.array(attrs["pads"])
    if pads is not None and not axes and (pads >= 0).all():
        half = len(pads) // 2
        ends = [-int(end) if end else INT64_MAX for end in pads[half:]]
        cut = bw.op("Slice", grads[0], bw.ints(pads[:half]), bw.ints(ends), bw.ints(range(half)))
        return _to_first(node, cut)
    negated = bw.ints(-pads) if pads is not None else bw.op("Neg", node.input[1])
    extra = ("", axes) if axes else ()
    return _to_first(node, bw.op("Pad", grads[0], negated, *extra))
