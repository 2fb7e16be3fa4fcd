"""Vector-Jacobian rules of the spatial ops: convolutions, pooling and reductions.

Conv at stride 1 is a Conv of the output gradient with the weights transposed and flipped;
strided, a ConvTranspose cut to the input by Slice (what output_padding does for one size,
for every size). MaxPool adds each output gradient at its argmax index (ScatterElements add);
AveragePool spreads it with a depthwise ConvTranspose (a centred stride-1 one that counts its
pads is its own transpose: another AveragePool); global pools and reductions Expand it.
_vjp.py gathers every rule module's RULES.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import onnx

from ._backward import Backward, Grads, attributes, first_only, registry, to_first

RULES, _rule = registry()


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
    first_only(bw, node, needs, " (the data, not the weights or bias)")
    attrs = attributes(node)
    kernel = attrs.get("kernel_shape") or bw.static_shape(node.input[1])[2:]
    gradient = conv_input_gradient(bw, grads[0], node.input[0], node.input[1], kernel, attrs)
    return to_first(node, gradient)


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
    if _self_adjoint(attrs, kernel):
        # A centred sum of every window / area, pads counted as zeros: its own transpose.
        centred = [(k - 1) // 2 for k in kernel] * 2
        return [
            bw.op("AveragePool", grads[0], kernel_shape=kernel, pads=centred, count_include_pad=1)
        ]
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


def _self_adjoint(attrs: dict, kernel: list[int]) -> bool:
    """Whether an AveragePool is its own transpose: stride 1, no dilation, odd kernel, pads
    of half the kernel on each side, counted in every window's area."""
    rank = len(kernel)
    centred = [(k - 1) // 2 for k in kernel] * 2
    auto_pad = attrs.get("auto_pad", "NOTSET")
    pads = centred if auto_pad.startswith("SAME") else list(attrs.get("pads") or [0] * 2 * rank)
    return (
        attrs.get("count_include_pad", 0) == 1
        and all(k % 2 == 1 for k in kernel)
        and all(s == 1 for s in attrs.get("strides") or [1] * rank)
        and all(d == 1 for d in attrs.get("dilations") or [1] * rank)
        and auto_pad != "VALID"
        and pads == centred
    )


@_rule("GlobalAveragePool")
def _global_average_pool(
    bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]
) -> Grads:
    x = node.input[0]
    count = bw.as_float(bw.reduce("ReduceProd", bw.shape(x, 2), [0], keepdims=False))
    return [bw.op("Expand", bw.op("Div", grads[0], count), bw.shape(x))]


@_rule("ReduceMean", "ReduceSum")
def _reduce(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    first_only(bw, node, needs)
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
            return to_first(node, grads[0])
        axes = range(rank)
    axes = sorted(int(axis) % rank for axis in axes)
    grad = grads[0]
    if not attrs.get("keepdims", 1):
        grad = bw.op("Unsqueeze", grad, bw.ints(axes))
    if node.op_type == "ReduceMean":
        sizes = bw.op("Gather", bw.shape(x), bw.ints(axes))
        grad = bw.op("Div", grad, bw.as_float(bw.reduce("ReduceProd", sizes, [0], False)))
    return to_first(node, bw.op("Expand", grad, bw.shape(x)))
