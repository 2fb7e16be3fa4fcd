"""A tiny ONNX model that keeps the export contract, for fast runtime tests.

Deliberately not GoogLeNet: other names, a non-square input and a value range other than
[0, 1], so a test on it proves the runtime reads every fact from the metadata. Layers:
`pixels` is the scaled input itself (so tests can check preprocessing exactly), `early` and
`late` are strided ReLU convolutions, `probs` a softmax over CLASSES.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from semdict_onnx._metadata import METADATA_KEY, InputInfo, LayerInfo, ModelInfo

INPUT_NAME = "pixels_in"
HEIGHT, WIDTH = 20, 16
VALUE_RANGE = (0.0, 255.0)
CLASSES = ("dummy", "cat", "dog", "rocket", "coffee", "astronaut")
# name -> (channels, height, width)
LAYERS = {"pixels": (3, 20, 16), "early": (8, 10, 8), "late": (12, 5, 4)}
CLASS_OUTPUT = "probs"


def tiny_info(replica: bool = True) -> ModelInfo:
    """The model card of the tiny model."""
    return ModelInfo(
        network="TinyNet",
        input=InputInfo(INPUT_NAME, HEIGHT, WIDTH, VALUE_RANGE, (-1.0, 1.0)),
        layers=tuple(LayerInfo(name, c, h, w) for name, (c, h, w) in LAYERS.items()),
        source_sha256="0" * 64,
        replica=replica,
        class_output=CLASS_OUTPUT,
        num_classes=len(CLASSES),
        labels=CLASSES,
    )


def _conv(name: str, source: str, cin: int, cout: int, rng: np.random.Generator) -> tuple:
    """A 3x3 stride-2 convolution + ReLU on NCHW `source`, with its weights."""
    weights = numpy_helper.from_array(
        rng.normal(0, 0.5, (cout, cin, 3, 3)).astype(np.float32), f"{name}_w"
    )
    bias = numpy_helper.from_array(rng.normal(0, 0.1, cout).astype(np.float32), f"{name}_b")
    nodes = [
        helper.make_node(
            "Conv",
            [source, f"{name}_w", f"{name}_b"],
            [f"{name}_pre"],
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
        ),
        helper.make_node("Relu", [f"{name}_pre"], [f"{name}_nchw"]),
        helper.make_node("Transpose", [f"{name}_nchw"], [name], perm=[0, 2, 3, 1]),
    ]
    return nodes, [weights, bias]


def build_tiny_model(metadata: str | None = "default", seed: int = 0) -> onnx.ModelProto:
    """The tiny model; `metadata` None leaves the semdict_onnx key out, a string replaces it."""
    rng = np.random.default_rng(seed)
    low, high = VALUE_RANGE
    constants = [
        numpy_helper.from_array(np.array(2 / (high - low), np.float32), "scale"),
        numpy_helper.from_array(np.array(-1 - 2 * low / (high - low), np.float32), "shift"),
    ]
    nodes = [
        helper.make_node("Mul", [INPUT_NAME, "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "shift"], ["pixels"]),
        helper.make_node("Transpose", ["pixels"], ["input_nchw"], perm=[0, 3, 1, 2]),
    ]
    early_nodes, early_weights = _conv("early", "input_nchw", 3, 8, rng)
    late_nodes, late_weights = _conv("late", "early_nchw", 8, 12, rng)
    dense = numpy_helper.from_array(
        rng.normal(0, 1, (12, len(CLASSES))).astype(np.float32), "dense_w"
    )
    nodes += early_nodes + late_nodes
    nodes += [
        helper.make_node("ReduceMean", ["late"], ["pooled"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["pooled", "dense_w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [CLASS_OUTPUT], axis=-1),
    ]
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", h, w, c])
        for name, (c, h, w) in LAYERS.items()
    ]
    outputs.append(
        helper.make_tensor_value_info(CLASS_OUTPUT, TensorProto.FLOAT, ["N", len(CLASSES)])
    )
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", HEIGHT, WIDTH, 3])],
        outputs,
        initializer=constants + early_weights + late_weights + [dense],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    if metadata is not None:
        text = tiny_info().to_json() if metadata == "default" else metadata
        helper.set_model_props(model, {METADATA_KEY: text})
    onnx.checker.check_model(model)
    return model


def write_tiny_model(path: Path, metadata: str | None = "default") -> Path:
    """Save the tiny model to `path` and return it."""
    onnx.save(build_tiny_model(metadata), str(path))
    return path
