"""Sub-models that compute only some outputs of an ONNX model.

ONNX Runtime runs every node of a model whatever outputs a call asks for, so asking a
GoogLeNet model for its first mixed layer alone costs the whole network. `prune` cuts a
model down to the nodes the asked outputs need, with onnx.utils.Extractor; their values stay
bit for bit the same. The runtime's own graph walk that did this before measured the same
(the same sub-models, within noise of each other's time: docs/performance.md), so the
library's stays. _runner.py switches to such a sub-model for an output set asked for often.
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx
import onnx.utils

from .errors import UnknownLayerError


def prune(model: onnx.ModelProto, outputs: Sequence[str]) -> onnx.ModelProto:
    """A model computing only `outputs` of `model` (kept in the graph's order) from its inputs."""
    graph = model.graph
    missing = set(outputs) - {value.name for value in graph.output}
    if missing:
        raise UnknownLayerError(f"the model has no outputs {sorted(missing)}")
    names = [value.name for value in graph.output if value.name in outputs]
    inputs = [value.name for value in graph.input]
    return onnx.utils.Extractor(model).extract_model(inputs, names)
