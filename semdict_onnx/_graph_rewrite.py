"""The graph edits prepare_model makes: a preprocessing prologue, NHWC layer outputs, pruning.

Everything happens inside the ONNX graph, so ONNX Runtime does it and the runtime's contract
holds unchanged: the new input takes float32 NHWC RGB in [0, 1] and produces, under the
network's own input name, what the network expects (value range, channel order, mean and std,
layout, element type); each chosen layer becomes an output [N, H, W, C] under its short name
(a Transpose for NCHW maps; tokens lose their extra tokens and are reshaped to the patch grid,
the grid's size read from the patch-embedding map at run time, so any input size works); a
logits output can get a Softmax.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ._layer_catalog import LayerCandidate
from ._metadata import Preprocessing

PROLOGUE = "semdict_prologue"
INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class LayerOutput:
    """A chosen layer: the output name users see and the network tensor it shows."""

    name: str
    candidate: LayerCandidate


class _Nodes:
    """New nodes and constants, named under a prefix that the graph does not use."""

    def __init__(self, graph: onnx.GraphProto, prefix: str) -> None:
        self.graph = graph
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.count = 0

    def name(self, what: str) -> str:
        self.count += 1
        return f"{self.prefix}/{what}_{self.count}"

    def const(self, what: str, array: np.ndarray) -> str:
        name = self.name(what)
        self.graph.initializer.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        output = output or self.name(op)
        self.nodes.append(helper.make_node(op, inputs, [output], name=self.name(op), **attrs))
        return output


def add_prologue(
    graph: onnx.GraphProto,
    source: onnx.ValueInfoProto,
    new_name: str,
    layout: str,
    size: tuple[int, int] | None,
    preprocessing: Preprocessing,
) -> None:
    """Replace the image input by `new_name` (NHWC RGB in [0, 1]) and a prologue computing the
    old input from it. `size` None leaves height and width open."""
    nodes = _Nodes(graph, PROLOGUE)
    low, high = preprocessing.value_range
    x = new_name
    if high - low != 1.0:
        x = nodes.op("Mul", [x, nodes.const("scale", np.array(high - low, np.float32))])
    if low != 0.0:
        x = nodes.op("Add", [x, nodes.const("offset", np.array(low, np.float32))])
    if preprocessing.channel_order == "BGR":
        x = nodes.op("Gather", [x, nodes.const("bgr", np.array([2, 1, 0], np.int64))], axis=3)
    if preprocessing.mean is not None:
        x = nodes.op("Sub", [x, nodes.const("mean", np.array(preprocessing.mean, np.float32))])
    if preprocessing.std is not None:
        x = nodes.op("Div", [x, nodes.const("std", np.array(preprocessing.std, np.float32))])
    if layout == "NCHW":
        x = nodes.op("Transpose", [x], perm=[0, 3, 1, 2])
    elem = source.type.tensor_type.elem_type
    if elem != TensorProto.FLOAT:
        x = nodes.op("Cast", [x], to=elem)
    nodes.op("Identity", [x], source.name)
    for index in reversed(range(len(graph.input))):
        if graph.input[index].name == source.name:
            del graph.input[index]
    height, width = size if size is not None else ("height", "width")
    graph.input.insert(
        0, helper.make_tensor_value_info(new_name, TensorProto.FLOAT, ["batch", height, width, 3])
    )
    old_nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes.nodes + old_nodes)


def set_outputs(
    graph: onnx.GraphProto,
    layers: list[LayerOutput],
    class_tensor: str | None,
    class_name: str | None,
    softmax: bool,
    types: dict[str, int],
) -> None:
    """Make the chosen layers (NHWC, float32) and the class output the graph's only outputs
    (`prune` in _subgraph.py then drops what they do not need)."""
    nodes = _Nodes(graph, "semdict_outputs")
    renamed = _free_own_names(graph, layers, nodes, types)
    outputs = []
    for layer in layers:
        candidate = layer.candidate
        x = renamed.get(candidate.name, candidate.name)
        if candidate.layout == "NCHW":
            x = nodes.op("Transpose", [x], perm=[0, 2, 3, 1])
        elif candidate.layout == "tokens":
            x = _tokens_to_grid(nodes, candidate, renamed)
        if types.get(candidate.name, TensorProto.FLOAT) != TensorProto.FLOAT:
            x = nodes.op("Cast", [x], to=TensorProto.FLOAT)
        if x != layer.name:
            nodes.op("Identity", [x], layer.name)
        outputs.append(
            helper.make_tensor_value_info(
                layer.name, TensorProto.FLOAT, ["batch", None, None, candidate.channels]
            )
        )
    if class_tensor is not None and class_name is not None:
        x = renamed.get(class_tensor, class_tensor)
        if softmax:
            x = nodes.op("Softmax", [x], axis=-1)
        if types.get(class_tensor, TensorProto.FLOAT) != TensorProto.FLOAT:
            x = nodes.op("Cast", [x], to=TensorProto.FLOAT)
        if x != class_name:
            nodes.op("Identity", [x], class_name)
        outputs.append(
            helper.make_tensor_value_info(class_name, TensorProto.FLOAT, ["batch", None])
        )
    graph.node.extend(nodes.nodes)
    del graph.output[:]
    graph.output.extend(outputs)


def _free_own_names(
    graph: onnx.GraphProto, layers: list[LayerOutput], nodes: _Nodes, types: dict[str, int]
) -> dict[str, str]:
    """Rename the network tensors that an output of the same name replaces (a layer asked for
    by its own name that is transposed, reshaped or cast on its way out), so that the output
    can carry the name the user gave; returns {old name: new name}."""
    renamed: dict[str, str] = {}
    for layer in layers:
        candidate = layer.candidate
        changed = candidate.layout != "NHWC" or types.get(candidate.name) not in (
            None,
            TensorProto.FLOAT,
        )
        if layer.name == candidate.name and changed:
            renamed[candidate.name] = nodes.name("network_tensor")
    for node in graph.node:
        for values in (node.input, node.output):
            for index, name in enumerate(values):
                if name in renamed:
                    values[index] = renamed[name]
    return renamed


def _tokens_to_grid(nodes: _Nodes, candidate: LayerCandidate, renamed: dict[str, str]) -> str:
    """[N, extra + h*w, C] -> [N, h, w, C], h and w read from the patch grid's shape."""
    sliced = nodes.op(
        "Slice",
        [
            renamed.get(candidate.name, candidate.name),
            nodes.const("first_patch", np.array([candidate.extra_tokens], np.int64)),
            nodes.const("end", np.array([INT64_MAX], np.int64)),
            nodes.const("token_axis", np.array([1], np.int64)),
        ],
    )
    grid_tensor = candidate.grid_tensor or ""
    shape = nodes.op("Shape", [renamed.get(grid_tensor, grid_tensor)])
    first = 2 if candidate.grid_layout == "NCHW" else 1
    rows_cols = nodes.op(
        "Slice",
        [
            shape,
            nodes.const("grid_from", np.array([first], np.int64)),
            nodes.const("grid_to", np.array([first + 2], np.int64)),
        ],
    )
    target = nodes.op(
        "Concat",
        [
            nodes.const("batch", np.array([-1], np.int64)),
            rows_cols,
            nodes.const("channels", np.array([candidate.channels], np.int64)),
        ],
        axis=0,
    )
    return nodes.op("Reshape", [sliced, target])
