"""Small ONNX models built with onnx.helper that follow the project's model contract.

Input "image" float32 [N, H, W, 3] NHWC in [0, 1]; every listed layer an NHWC output; the
"semdict_onnx" ModelInfo metadata. Layers are written NCHW inside, as tf2onnx does, with a
Transpose on the way in and one per output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from semdict_onnx._metadata import METADATA_KEY, InputInfo, LayerInfo, ModelInfo

NCHW = "image_nchw"


class GraphBuilder:
    """Collects nodes and weights; `save` writes the ONNX model with its model card."""

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self.nodes = [helper.make_node("Transpose", ["image"], [NCHW], perm=[0, 3, 1, 2])]
        self.initializers: list[onnx.TensorProto] = []
        self.outputs: list[tuple[str, str, int]] = []  # (layer, nchw tensor, channels)

    def weight(self, name: str, array: np.ndarray) -> str:
        """Add a constant tensor and return its name."""
        self.initializers.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        """Add a node with one output and return that output's name."""
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def conv(self, source: str, output: str, weights: np.ndarray, bias=None, **attrs) -> str:
        """A Conv with the given [out, in, kh, kw] weights and optional bias."""
        inputs = [source, self.weight(f"{output}_w", weights)]
        if bias is not None:
            inputs.append(self.weight(f"{output}_b", bias))
        return self.node("Conv", inputs, output, **attrs)

    def layer(self, name: str, nchw: str, channels: int) -> None:
        """Expose `nchw` as the NHWC output layer `name`."""
        self.node("Transpose", [nchw], name, perm=[0, 2, 3, 1])
        self.outputs.append((name, nchw, channels))

    def save(self, path: Path, network: str = "TestNet") -> Path:
        """Write the model; layer heights and widths come from ONNX Runtime itself."""
        graph = helper.make_graph(
            self.nodes,
            "test",
            [
                helper.make_tensor_value_info(
                    "image", TensorProto.FLOAT, ["N", self.height, self.width, 3]
                )
            ],
            [
                helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", None, None, None])
                for name, *_ in self.outputs
            ],
            self.initializers,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        probe = np.zeros((1, self.height, self.width, 3), np.float32)
        shapes = [out.shape for out in session.run(None, {"image": probe})]
        info = ModelInfo(
            network=network,
            input=InputInfo(name="image", height=self.height, width=self.width),
            layers=tuple(
                LayerInfo(name, channels, shape[1], shape[2])
                for (name, _, channels), shape in zip(self.outputs, shapes, strict=True)
            ),
            source_sha256="0" * 64,
            replica=True,
        )
        helper.set_model_props(model, {METADATA_KEY: info.to_json()})
        onnx.save(model, str(path))
        return path


# The planted model: a 1x1 conv over (r, g, b) whose channels answer known colours, then a
# 4x4 average pool (stride 4), so layer position (row, col) sees exactly input block (row, col).
MODEL_SIZE = 32
BLOCK = 4
PLANTED = np.array([[1, -1, -1], [-1, 1, -1], [-1, -1, -1], [-1, -1, 1], [1, 1, 1]], np.float32)
PLANTED_BIAS = np.array([0, 0, -0.1, 0, -2.5], np.float32)
RED, GREEN, DEAD, BLUE, WHITE = range(5)  # DEAD is always below 0 on inputs in [0, 1]


def build_planted_model(path: Path, rows: int = 8, cols: int = 8) -> Path:
    """Write the planted model (one layer, "blocks": rows x cols positions, 5 channels) to `path`.

    Its input is rows * BLOCK pixels high and cols * BLOCK wide (MODEL_SIZE square by default).
    """
    g = GraphBuilder(rows * BLOCK, cols * BLOCK)
    mix = g.conv("image_nchw", "mix", PLANTED.reshape(5, 3, 1, 1), PLANTED_BIAS)
    colours = g.node("Relu", [mix], "colours")
    pooled = g.node(
        "AveragePool", [colours], "pooled", kernel_shape=[BLOCK] * 2, strides=[BLOCK] * 2
    )
    g.layer("blocks", pooled, 5)
    return g.save(path)


def square(size: int, row: int, col: int, colour, scale: int = 2) -> np.ndarray:
    """A black (size * scale) px image whose block (row, col) is filled with `colour`."""
    image = np.zeros((size * scale, size * scale, 3), np.uint8)
    side = BLOCK * scale
    image[row * side : (row + 1) * side, col * side : (col + 1) * side] = colour
    return image
