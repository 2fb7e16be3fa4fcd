"""Vector-Jacobian products of ONNX ops, each written in standard ONNX ops: every rule.

One rule per op type: given the gradients of a node's outputs, the gradients of its inputs.
The rules need nothing but ONNX Runtime to run, work at any batch size and any image size
(sizes that depend on the input, such as SAME padding at stride 2, are computed in the graph
from Shape), and only differentiate with respect to the data input of ops whose other inputs
are weights. `RULES` maps op types to rules (this module's elementwise ones, _vjp_spatial.py's
convolutions, pools and reductions, _vjp_shape.py's ops that move values); _backward.py
applies them.

Elementwise here: Add, Sub, Mul, Div, Pow (summed over broadcast axes), Sqrt, Neg, Relu,
LeakyRelu, Sigmoid, Clip (masks where the derivative is zero), BatchNormalization in
inference (the per-channel scale / sqrt(var + epsilon)). With `redirect_relu`, Relu gives
Lucid's redirected gradient instead (its render_vis uses it for the first 16 steps): where a
ReLU stops all of a batch item's gradient, the gradient passes except where it would push an
inactive unit lower, so channels that start silent can wake up.
"""

from __future__ import annotations

import numpy as np
import onnx

from . import _vjp_shape, _vjp_spatial
from ._backward import Backward, Grads, attributes, first_only, registry, to_first

_ELEMENTWISE, _rule = registry()


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
    first_only(bw, node, needs)
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
        return to_first(node, grads[0])
    inside = masks[0] if len(masks) == 1 else bw.op("And", *masks)
    return to_first(node, bw.op("Where", inside, grads[0], bw.const(0.0)))


@_rule("BatchNormalization")
def _batch_norm(bw: Backward, node: onnx.NodeProto, grads: Grads, needs: list[bool]) -> Grads:
    first_only(bw, node, needs, " (the data, not the statistics)")
    attrs = attributes(node)
    if attrs.get("training_mode", 0) or any(grads[1:]):
        raise bw.unsupported(node, "runs in training mode; only inference has a rule")
    x, scale, variance = node.input[0], node.input[1], node.input[4]
    root = bw.op("Sqrt", bw.op("Add", variance, bw.const(attrs.get("epsilon", 1e-5))))
    factor = bw.op("Reshape", bw.op("Div", scale, root), bw.ints([-1] + [1] * (bw.rank(x) - 2)))
    return to_first(node, bw.op("Mul", grads[0], factor))


# Every rule, by op type.
RULES = {**_ELEMENTWISE, **_vjp_spatial.RULES, **_vjp_shape.RULES}
