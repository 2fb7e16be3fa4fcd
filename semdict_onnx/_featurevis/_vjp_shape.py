"""Vector-Jacobian rules of the ops that move values without changing them.

Concat and Split undo each other; Gather (constant indices) adds the gradient back at the
positions it read (ScatterElements add), Slice and Pad (constant mode) pad and cut back;
Transpose applies the inverse permutation; Reshape, Flatten, Squeeze and Unsqueeze reshape
to the input's shape. _vjp.py gathers every rule module's RULES.
"""

from __future__ import annotations

import numpy as np
import onnx

from ._backward import Backward, Grads, attributes, first_only, registry, to_first

RULES, _rule = registry()
INT64_MAX = np.iinfo(np.int64).max


@_rule("Concat")
def _concat(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    axis = attributes(node)["axis"] % bw.rank(node.output[0])
    sizes = bw.op("Concat", *(bw.shape(x, axis, axis + 1) for x in node.input), axis=0)
    parts = bw.ops("Split", [grads[0], sizes], len(node.input), axis=axis)
    return [part if need else None for part, need in zip(parts, needs, strict=True)]


@_rule("Split")
def _split(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    first_only(bw, node, needs)
    axis = attributes(node).get("axis", 0)
    parts = [
        grad if grad is not None else bw.op("ConstantOfShape", bw.shape(output))
        for grad, output in zip(grads, node.output, strict=True)
    ]
    return to_first(node, bw.op("Concat", *parts, axis=axis))


@_rule("Gather")
def _gather(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    first_only(bw, node, needs)
    x, axis = node.input[0], attributes(node).get("axis", 0) % bw.rank(node.input[0])
    indices = bw.constant(node.input[1])
    if indices is None or indices.ndim > 1:
        raise bw.unsupported(node, "gathers with computed or multi-dimensional indices")
    grad = grads[0]
    if indices.ndim == 0:  # the axis was dropped: put it back
        grad = bw.op("Unsqueeze", grad, bw.ints([axis]))
    size = bw.static_shape(x)[axis]
    where = (indices.reshape(-1) % size).reshape(
        [-1 if i == axis else 1 for i in range(bw.rank(x))]
    )
    spread = bw.op("Expand", bw.ints(where), bw.shape(grad))
    zeros = bw.op("ConstantOfShape", bw.shape(x))
    summed = bw.op("ScatterElements", zeros, spread, grad, axis=axis, reduction="add")
    return to_first(node, summed)


@_rule("Slice")
def _slice(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    first_only(bw, node, needs)
    x, rank = node.input[0], bw.rank(node.input[0])
    given = [bw.constant(name) if name else None for name in node.input[1:5]]
    given += [None] * (4 - len(given))
    starts, ends, axes, steps = given
    if starts is None or ends is None or (len(node.input) > 3 and node.input[3] and axes is None):
        raise bw.unsupported(node, "slices at computed positions")
    if steps is not None and np.any(steps != 1):
        raise bw.unsupported(node, "slices with steps other than 1")
    axes = np.arange(len(starts)) if axes is None else axes % rank
    # The slice's bounds in this input's dimensions, clamped as Slice clamps them.
    dims = bw.op("Gather", bw.shape(x), bw.ints(axes))
    bounds = []
    for values in (starts, ends):
        values = np.clip(values, -(2**62), 2**62)
        counted = bw.op("Add", bw.ints(values), bw.op("Mul", dims, bw.ints(values < 0)))
        bounds.append(bw.op("Min", bw.op("Max", counted, bw.ints([0] * len(axes))), dims))
    begin, end = bounds
    after = bw.op("Sub", dims, end)
    zeros, where = bw.ints([0] * rank), bw.ints(axes)
    pads = [bw.op("ScatterElements", zeros, where, part, axis=0) for part in (begin, after)]
    return to_first(node, bw.op("Pad", grads[0], bw.op("Concat", *pads, axis=0)))


@_rule("Transpose")
def _transpose(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    perm = attributes(node).get("perm") or list(reversed(range(bw.rank(node.input[0]))))
    return [bw.op("Transpose", grads[0], perm=[int(i) for i in np.argsort(perm)])]


@_rule("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def _reshape(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    first_only(bw, node, needs)
    return to_first(node, bw.op("Reshape", grads[0], bw.shape(node.input[0])))


@_rule("Identity")
def _identity(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    return [grads[0]]


@_rule("Pad")
def _pad(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    first_only(bw, node, needs)
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
        return to_first(node, cut)
    negated = bw.ints(-pads) if pads is not None else bw.op("Neg", node.input[1])
    extra = ("", axes) if axes else ()
    return to_first(node, bw.op("Pad", grads[0], negated, *extra))
