"""The reverse pass over an ONNX graph: gradients written as new ONNX nodes.

`Backward` walks a graph's nodes from the last to the first. For every node between the
tensor being differentiated and the seeded outputs it asks the node's vector-Jacobian rule
(_vjp.py) for the gradients of the node's inputs, and sums the contributions that reach one
tensor along several paths. `Emitter` writes the new nodes and constants under names that
clash with nothing in the graph. Rules read what they need from `Backward`: constant values,
the static shapes a probe run measured (ranks, broadcast axes, channel counts) and the
opset, for the ops whose signature changed with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import GradientRuleError

# The gradients of a node's inputs or outputs, None where there is none.
Grads = list["str | None"]
# A vector-Jacobian rule: (pass, node, gradient of each output or None, which inputs need one)
# -> the gradient of each input (None where not needed).
Rule = Callable[["Backward", onnx.NodeProto, Grads, list[bool]], Grads]
# The opset from which ReduceMean, ReduceProd and friends take their axes as an input.
REDUCE_AXES_INPUT_OPSET = 18


class Emitter:
    """Writes new nodes and constant initializers whose names clash with nothing given."""

    def __init__(self, opset: int, taken: Iterable[str], prefix: str) -> None:
        taken = set(taken)
        while any(name.startswith(f"{prefix}/") for name in taken):
            prefix += "_"
        self.prefix = prefix
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0
        self._constants: dict[tuple[str, tuple[int, ...], bytes], str] = {}
        self._shapes: dict[tuple[str, int | None, int | None], str] = {}

    def fresh(self, hint: str) -> str:
        """A new, unused tensor name."""
        self._count += 1
        return f"{self.prefix}/{hint}/{self._count}"

    def ops(self, op_type: str, inputs: Sequence[str], outputs: int, **attrs: Any) -> list[str]:
        """Add one node with `outputs` outputs; returns their names."""
        names = [self.fresh(op_type) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=names[0], **attrs))
        return names

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        """Add one node with one output; returns its name."""
        return self.ops(op_type, inputs, 1, **attrs)[0]

    def const(self, value: Any, dtype: type = np.float32) -> str:
        """An initializer holding `value` (made once per distinct value)."""
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            name = self.fresh("const")
            self.initializers.append(numpy_helper.from_array(array, name))
            self._constants[key] = name
        return self._constants[key]

    def ints(self, values: Sequence[int]) -> str:
        """An int64 vector constant."""
        return self.const(list(values), np.int64)

    def shape(self, tensor: str, start: int | None = None, end: int | None = None) -> str:
        """Shape(tensor)[start:end] as an int64 vector, computed at run time (made once)."""
        key = (tensor, start, end)
        if key not in self._shapes:
            attrs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
            self._shapes[key] = self.op("Shape", tensor, **attrs)
        return self._shapes[key]

    def reduce(self, op_type: str, tensor: str, axes: Sequence[int], keepdims: bool) -> str:
        """A Reduce* node over `axes`, with axes as an input or an attribute as the opset wants."""
        if op_type == "ReduceSum" or self.opset >= REDUCE_AXES_INPUT_OPSET:
            return self.op(op_type, tensor, self.ints(axes), keepdims=int(keepdims))
        return self.op(op_type, tensor, axes=list(axes), keepdims=int(keepdims))

    def as_float(self, integer: str) -> str:
        """An int64 tensor cast to float32."""
        return self.op("Cast", integer, to=onnx.TensorProto.FLOAT)


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as Python values (strings decoded)."""
    values = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        values[attribute.name] = value.decode() if isinstance(value, bytes) else value
    return values


class Backward(Emitter):
    """The reverse pass over `nodes`, with the facts rules need about the graph's tensors.

    `constants` maps constant tensors (initializers, Constant nodes) to their values;
    `shapes` maps every other tensor to its shape in a probe run; `floats` names the float
    tensors (only those carry gradients); `target` says in words what is being
    differentiated, for error messages. `redirect_relu` asks the Relu rule for Lucid's
    redirected gradient (see _vjp.py) instead of the true one.
    """

    def __init__(
        self,
        nodes: Sequence[onnx.NodeProto],
        constants: Mapping[str, np.ndarray],
        shapes: Mapping[str, tuple[int, ...]],
        floats: set[str],
        opset: int,
        rules: Mapping[str, Rule],
        target: str,
        redirect_relu: bool = False,
    ) -> None:
        taken = {name for node in nodes for name in (*node.input, *node.output, node.name)}
        super().__init__(opset, taken | set(constants) | set(shapes), "vjp")
        self._forward = list(nodes)
        self._constants_given = constants
        self._shapes_seen = shapes
        self._floats = floats
        self._rules = rules
        self.target = target
        self.redirect_relu = redirect_relu

    def constant(self, name: str) -> np.ndarray | None:
        """The value of a constant tensor, or None when it is computed at run time."""
        return self._constants_given.get(name)

    def static_shape(self, name: str) -> tuple[int, ...]:
        """The tensor's shape in the probe run (a constant's own shape)."""
        if name in self._constants_given:
            return tuple(self._constants_given[name].shape)
        return self._shapes_seen[name]

    def rank(self, name: str) -> int:
        """The tensor's number of dimensions."""
        return len(self.static_shape(name))

    def unbroadcast(self, gradient: str, operand: str, output: str) -> str:
        """The gradient of a broadcast operand: summed over the axes it was broadcast along."""
        shape, out = self.static_shape(operand), self.static_shape(output)
        if shape == out:
            return gradient
        lead = len(out) - len(shape)
        axes = [*range(lead)]
        axes += [lead + i for i, size in enumerate(shape) if size == 1 and out[lead + i] != 1]
        summed = self.reduce("ReduceSum", gradient, axes, keepdims=True) if axes else gradient
        return self.op("Reshape", summed, self.shape(operand)) if lead else summed

    def unsupported(self, node: onnx.NodeProto, why: str) -> GradientRuleError:
        """The error for a node whose gradient cannot be written, naming it and the layer."""
        name = node.name or (node.output[0] if node.output else "?")
        return GradientRuleError(
            f"cannot compute the gradient of {self.target}: node {name!r} (op {node.op_type}) "
            f"{why}. Pick an earlier layer, or add a rule for it in "
            "semdict_onnx/_featurevis/_vjp.py"
        )

    def gradient(self, seeds: Mapping[str, str], wrt: str) -> str:
        """The gradient of tensor `wrt`, given the gradients `seeds` of some later tensors."""
        requires = {wrt}
        for node in self._forward:
            if any(name in requires for name in node.input):
                requires.update(name for name in node.output if name in self._floats)
        contributions = {name: [seed] for name, seed in seeds.items()}
        for node in reversed(self._forward):
            outputs = [self._total(name, contributions) for name in node.output]
            needs = [bool(name) and name in requires for name in node.input]
            if all(grad is None for grad in outputs) or not any(needs):
                continue
            rule = self._rules.get(node.op_type) if node.domain in ("", "ai.onnx") else None
            if rule is None:
                domain = f" in domain {node.domain!r}" if node.domain else ""
                known = ", ".join(sorted(self._rules))
                raise self.unsupported(
                    node, f"has no gradient rule{domain}; ops with rules: {known}"
                )
            grads = rule(self, node, outputs, needs)
            for name, need, grad in zip(node.input, needs, grads, strict=False):
                if need and grad is not None:
                    contributions.setdefault(name, []).append(grad)
        total = self._total(wrt, contributions)
        if total is None:
            raise GradientRuleError(f"{self.target} does not depend on the input {wrt!r}")
        return total

    def _total(self, name: str, contributions: dict[str, list[str]]) -> str | None:
        """The summed gradient of `name` (None when nothing reached it)."""
        parts = contributions.get(name)
        if not parts:
            return None
        if len(parts) > 1:
            contributions[name] = [self.op("Sum", *parts)]
        return contributions[name][0]


def registry() -> tuple[dict[str, Rule], Callable[..., Callable[[Rule], Rule]]]:
    """A rule module's RULES dict and the decorator `@rule("Op", ...)` that fills it."""
    rules: dict[str, Rule] = {}

    def rule(*op_types: str) -> Callable[[Rule], Rule]:
        def register(function: Rule) -> Rule:
            for op_type in op_types:
                rules[op_type] = function
            return function

        return register

    return rules, rule


def first_only(bw: Backward, node: onnx.NodeProto, needs: list[bool], what: str = "") -> None:
    """Refuse a gradient through any input but the first (weights, shapes, attributes)."""
    for index, need in enumerate(needs[1:], start=1):
        if need:
            raise bw.unsupported(
                node,
                f"has its input {index} ({node.input[index]!r}) depending on the image; the rule "
                f"only passes the gradient through its first input{what}",
            )


def to_first(node: onnx.NodeProto, grad: str) -> Grads:
    """A gradient for the first input only."""
    return [grad] + [None] * (len(node.input) - 1)
