"""Sub-models that compute only some outputs of an ONNX model.

ONNX Runtime runs every node of a model whatever outputs a call asks for, so asking a
GoogLeNet model for its first mixed layer alone costs the whole network. `prune` cuts a
model down to the nodes the asked outputs need; their values stay bit for bit the same.
`Model` (model.py) switches to such a sub-model for an output set it is asked for often.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import onnx

from .errors import UnknownLayerError


def needed_node_indices(graph: onnx.GraphProto, outputs: Sequence[str]) -> set[int]:
    """The indices in `graph.node` of the nodes that `outputs` depend on."""
    producer = {name: index for index, node in enumerate(graph.node) for name in node.output}
    keep: set[int] = set()
    pending = [producer[name] for name in outputs if name in producer]
    while pending:
        index = pending.pop()
        if index not in keep:
            keep.add(index)
            pending += [producer[name] for name in graph.node[index].input if name in producer]
    return keep


def _delete_where(field: Any, unwanted: Callable[[int, Any], bool]) -> None:
    """Delete the items of a repeated protobuf field for which unwanted(index, item) holds."""
    for index in reversed(range(len(field))):
        if unwanted(index, field[index]):
            del field[index]


def prune(model: onnx.ModelProto, outputs: Sequence[str]) -> onnx.ModelProto:
    """Cut `model`, in place, down to computing `outputs`; returns it."""
    graph = model.graph
    missing = set(outputs) - {value.name for value in graph.output}
    if missing:
        raise UnknownLayerError(f"the model has no outputs {sorted(missing)}")
    keep = needed_node_indices(graph, outputs)
    _delete_where(graph.node, lambda index, _: index not in keep)
    used = {name for node in graph.node for name in node.input}
    _delete_where(graph.initializer, lambda _, tensor: tensor.name not in used)
    _delete_where(graph.value_info, lambda _, value: value.name not in used)
    _delete_where(graph.output, lambda _, value: value.name not in outputs)
    return model
