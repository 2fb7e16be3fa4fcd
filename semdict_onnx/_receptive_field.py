"""Receptive fields of a model's layers, read from its ONNX graph, and boxes of layer positions.

For every exported layer this walks back from the layer's output through the graph, following
Conv/MaxPool/AveragePool kernels, strides, dilations and pads (and the transposes, pads,
concatenations and element-wise ops between them), to find per spatial axis: the receptive
field size in model-input pixels, the jump (distance in input pixels between neighbouring
positions) and the centre of position 0. Nothing here knows GoogLeNet: any graph built from
these ops works. Coordinates are continuous: input pixel i covers [i, i + 1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from ._metadata import METADATA_KEY, ModelInfo
from .errors import ModelFormatError

KERNEL_OPS = {"Conv", "MaxPool", "AveragePool", "LpPool"}
ELEMENTWISE_OPS = {
    "Abs", "Add", "BatchNormalization", "Cast", "Clip", "Concat", "DequantizeLinear", "Div",
    "Dropout", "Elu", "Erf", "Exp", "Gelu", "HardSigmoid", "HardSwish", "Identity", "LRN",
    "LeakyRelu", "Log", "Max", "Mean", "Min", "Mul", "Neg", "Pow", "PRelu", "QuantizeLinear",
    "Relu", "Selu", "Sigmoid", "Softplus", "Sqrt", "Sub", "Sum", "Tanh",
}  # fmt: skip


@dataclass(frozen=True)
class Axis:
    """One spatial axis of a tensor: its length, receptive field size, jump and first centre."""

    length: int
    size: int
    jump: int
    start: float


class Box(NamedTuple):
    """A rectangle in pixels: left and top inclusive, right and bottom exclusive."""

    left: float
    top: float
    right: float
    bottom: float


@dataclass(frozen=True)
class ReceptiveField:
    """Where a layer's positions look in the model input, per axis as (rows, cols)."""

    layer: str
    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[float, float]
    input_size: tuple[int, int]
    grid: tuple[int, int]

    def input_box(self, row: int, col: int) -> Box:
        """The receptive field of position (row, col) in model-input pixels, not clipped."""
        centre_y = self.start[0] + row * self.jump[0]
        centre_x = self.start[1] + col * self.jump[1]
        half_h, half_w = self.size[0] / 2, self.size[1] / 2
        return Box(centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h)

    def image_box(self, row: int, col: int, image_size: tuple[int, int]) -> Box:
        """The same field in an original image of (width, height) pixels, clipped to it.

        The runtime resizes the whole image to the model's input size, so input pixels scale
        to image pixels by width / input width and height / input height.
        """
        width, height = image_size
        box = self.input_box(row, col)
        scale_x, scale_y = width / self.input_size[1], height / self.input_size[0]
        left = min(max(math.floor(box.left * scale_x), 0), width - 1)
        top = min(max(math.floor(box.top * scale_y), 0), height - 1)
        right = max(min(math.ceil(box.right * scale_x), width), left + 1)
        bottom = max(min(math.ceil(box.bottom * scale_y), height), top + 1)
        return Box(left, top, right, bottom)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for manifests and docs."""
        return {"size": list(self.size), "jump": list(self.jump), "start": list(self.start)}


def receptive_fields(
    model: Any,
    layers: Iterable[str] | None = None,
    input_size: tuple[int, int] | None = None,
) -> dict[str, ReceptiveField]:
    """Receptive fields of `layers` (default: all) of a Model, ONNX file path or ModelProto.

    `input_size` is (height, width) of the model input; default: the size in the model card.
    """
    if isinstance(model, onnx.ModelProto):
        return _fields(model, tuple(layers) if layers is not None else None, input_size)
    path = Path(getattr(model, "path", model))
    key = tuple(layers) if layers is not None else None
    return dict(_fields_of_file(str(path), path.stat().st_mtime_ns, key, input_size))


@lru_cache(maxsize=32)
def _fields_of_file(
    path: str,
    mtime_ns: int,
    layers: tuple[str, ...] | None,
    input_size: tuple[int, int] | None,
) -> dict[str, ReceptiveField]:
    """`_fields` of the ONNX file at `path`, cached per file version (the graph is not kept)."""
    del mtime_ns  # part of the cache key only
    try:
        proto = onnx.load(path, load_external_data=False)
    except (OSError, DecodeError) as exc:
        raise ModelFormatError(f"{path!r} is not a readable ONNX model ({exc})") from exc
    return _fields(proto, layers, input_size)


def _fields(
    proto: onnx.ModelProto, layers: tuple[str, ...] | None, input_size: tuple[int, int] | None
) -> dict[str, ReceptiveField]:
    """The receptive fields of `layers` (None: all) of the model `proto`."""
    info = _model_info(proto)
    height, width = input_size or (info.input.height, info.input.width)
    names = list(layers) if layers is not None else info.layer_names
    for name in names:
        info.layer(name)
    walker = _Walker(proto.graph, info.input.name, (height, width))
    result = {}
    for name in names:
        axes = walker.axes_of(name, name)
        if set(axes) != {1, 2}:
            raise ModelFormatError(
                f"layer {name!r} does not keep rows and columns on axes 1 and 2 (NHWC); "
                "re-export the model with scripts/export.py"
            )
        rows, cols = axes[1], axes[2]
        result[name] = ReceptiveField(
            layer=name,
            size=(rows.size, cols.size),
            jump=(rows.jump, cols.jump),
            start=(rows.start, cols.start),
            input_size=(height, width),
            grid=(rows.length, cols.length),
        )
    return result


def _model_info(proto: onnx.ModelProto) -> ModelInfo:
    """The model card stored in the ONNX metadata."""
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            return ModelInfo.from_json(prop.value)
    raise ModelFormatError(
        f"the ONNX model has no {METADATA_KEY!r} metadata; export it with scripts/export.py"
    )


class _Walker:
    """Follows tensors back to the image input, remembering each tensor's spatial axes."""

    def __init__(self, graph: onnx.GraphProto, input_name: str, size: tuple[int, int]) -> None:
        self.producer = {out: node for node in graph.node for out in node.output}
        self.constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute:
                self.constants[node.output[0]] = numpy_helper.to_array(
                    helper.get_attribute_value(node.attribute[0])
                )
        image = {1: Axis(size[0], 1, 1, 0.5), 2: Axis(size[1], 1, 1, 0.5)}
        self.known: dict[str, dict[int, Axis]] = {input_name: image}

    def axes_of(self, tensor: str, layer: str) -> dict[int, Axis]:
        """The spatial axes of `tensor` (empty for constants), computed depth-first."""
        stack = [tensor]
        while stack:
            name = stack[-1]
            if name in self.known:
                stack.pop()
                continue
            node = self.producer.get(name)
            if node is None:
                if name in self.constants or name == "":
                    self.known[name] = {}
                    stack.pop()
                    continue
                raise ModelFormatError(
                    f"layer {layer!r} depends on graph input {name!r}, not the image input"
                )
            pending = [i for i in node.input if i and i not in self.known]
            if pending:
                stack.extend(pending)
                continue
            result = self._through(node, layer)
            for out in node.output:
                self.known[out] = result
            stack.pop()
        return self.known[tensor]

    def _through(self, node: onnx.NodeProto, layer: str) -> dict[int, Axis]:
        """The spatial axes of `node`'s outputs, from those of its inputs."""
        inputs = [self.known[i] if i else {} for i in node.input]
        spatial = [axes for axes in inputs if axes]
        if not spatial:
            return {}
        op = node.op_type
        if op in KERNEL_OPS:
            return _through_kernel(node, inputs[0], self.constants, layer)
        if op == "Transpose":
            perm = _attr(node, "perm", None)
            if perm is None:
                raise _cannot_follow(node, layer, "it has no perm attribute")
            return {out: inputs[0][src] for out, src in enumerate(perm) if src in inputs[0]}
        if op == "Pad" and len(node.input) > 1 and node.input[1] in self.constants:
            return _through_pad(inputs[0], list(self.constants[node.input[1]]))
        if op in ELEMENTWISE_OPS:
            if op == "Concat":
                axis = _attr(node, "axis", 0)
                if axis < 0 or axis in set().union(*spatial):
                    raise _cannot_follow(node, layer, "it may concatenate along a spatial axis")
            return _union(spatial, node, layer)
        raise _cannot_follow(node, layer, "this op type is not one the walker knows")


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    """The value of attribute `name` of `node`, or `default`."""
    found = next((a for a in node.attribute if a.name == name), None)
    return default if found is None else helper.get_attribute_value(found)


def _cannot_follow(node: onnx.NodeProto, layer: str, why: str) -> ModelFormatError:
    """The error for a node the walk cannot go through."""
    return ModelFormatError(
        f"cannot compute the receptive field of layer {layer!r}: it depends on "
        f"{node.op_type} node {node.name!r} and {why}"
    )


def _union(spatial: list[dict[int, Axis]], node: onnx.NodeProto, layer: str) -> dict[int, Axis]:
    """Merge branches that meet element-wise: the field covering all of them per axis."""
    merged: dict[int, Axis] = {}
    for axes in spatial:
        for index, axis in axes.items():
            other = merged.get(index)
            if other is None:
                merged[index] = axis
                continue
            if other.jump != axis.jump or other.length != axis.length:
                raise _cannot_follow(node, layer, "its inputs have different strides")
            low = min(other.start - other.size / 2, axis.start - axis.size / 2)
            high = max(other.start + other.size / 2, axis.start + axis.size / 2)
            merged[index] = Axis(other.length, round(high - low), axis.jump, (low + high) / 2)
    return merged


def _through_pad(axes: dict[int, Axis], pads: list[int]) -> dict[int, Axis]:
    """Explicit padding: the axis grows and position 0 moves back by the leading pad."""
    rank = len(pads) // 2
    out = {}
    for index, axis in axes.items():
        before, after = int(pads[index]), int(pads[index + rank])
        start = axis.start - before * axis.jump
        out[index] = Axis(axis.length + before + after, axis.size, axis.jump, start)
    return out


def _through_kernel(
    node: onnx.NodeProto, axes: dict[int, Axis], constants: dict[str, Any], layer: str
) -> dict[int, Axis]:
    """A convolution or pooling over axes 2.. of an N, C, spatial... tensor."""
    kernel = _attr(node, "kernel_shape", None)
    if kernel is None and node.op_type == "Conv" and node.input[1] in constants:
        kernel = constants[node.input[1]].shape[2:]
    if kernel is None:
        raise _cannot_follow(node, layer, "its kernel shape is unknown")
    kernel = [int(k) for k in kernel]
    dims = len(kernel)
    if set(axes) != set(range(2, 2 + dims)):
        raise _cannot_follow(node, layer, "its input is not laid out N, C, spatial axes")
    strides = [int(s) for s in _attr(node, "strides", [1] * dims)]
    dilations = [int(d) for d in _attr(node, "dilations", [1] * dims)]
    pads = [int(p) for p in _attr(node, "pads", [0] * (2 * dims))]
    auto_pad = _attr(node, "auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    ceil_mode = bool(_attr(node, "ceil_mode", 0))
    out = {}
    for i in range(dims):
        axis = axes[2 + i]
        extent = (kernel[i] - 1) * dilations[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            length = -(-axis.length // strides[i])
            total = max((length - 1) * strides[i] + extent - axis.length, 0)
            before = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        elif auto_pad == "VALID":
            before, total = 0, 0
            length = (axis.length - extent) // strides[i] + 1
        else:
            before, total = pads[i], pads[i] + pads[i + dims]
            rounding = math.ceil if ceil_mode else math.floor
            length = rounding((axis.length + total - extent) / strides[i]) + 1
        out[2 + i] = Axis(
            length=int(length),
            size=axis.size + (extent - 1) * axis.jump,
            jump=axis.jump * strides[i],
            start=axis.start + ((extent - 1) / 2 - before) * axis.jump,
        )
    return out


def layer_fields_table(fields: dict[str, ReceptiveField]) -> str:
    """A Markdown table of receptive fields, one row per layer, for docs and the CLI."""
    lines = [
        "| layer | grid (rows x cols) | field size (px) | jump (px) | centre of position 0 (px) |",
        "|---|---|---|---|---|",
    ]
    for name, field in fields.items():
        lines.append(
            f"| {name} | {field.grid[0]} x {field.grid[1]} | {_pair(field.size)} | "
            f"{_pair(field.jump)} | {_pair(field.start)} |"
        )
    return "\n".join(lines)


def _pair(values: tuple[float, float]) -> str:
    """One number when rows and columns agree, else 'rows x cols'."""
    return f"{values[0]:g}" if values[0] == values[1] else f"{values[0]:g} x {values[1]:g}"
