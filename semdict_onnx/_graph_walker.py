"""The graph walk behind receptive fields: each tensor's spatial axes, followed op by op.

Starting from the image input, whose two spatial axes are known, every tensor gets the
positions of its spatial axes with, per axis: its length, the receptive field size in input
pixels, the jump (input pixels between neighbouring positions) and the centre of position 0.
Coordinates are continuous: input pixel i covers [i, i + 1).

The walk sees through the ops convolutional, residual and normalized networks use: kernels
with strides, pads and dilations (Conv, ConvTranspose, pools), element-wise and broadcasting
ops (Add, Mul, Clip, activations, BatchNormalization...), Pad, Concat and Split on the channel
axis, Slice, Transpose, the Reshape/Squeeze/Flatten family where it keeps rows and columns,
Resize/Upsample and depth-space shuffles. Global context is not counted: a global pool, a
squeeze-excitation gain or a normalization's statistics reach every position, but the field
is the local path, the one that says where a position looks. A tensor the walk cannot see
through (an unknown op, attention mixing positions, a reshape merging rows and columns) is
`Opaque`, with the reason naming the op and its node, and so is everything computed from it.

This module is long because it is one table of ops; each op's rule is a few lines.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

Shape = tuple[int | None, ...]

KERNEL_OPS = {"Conv", "ConvInteger", "QLinearConv", "MaxPool", "AveragePool", "LpPool"}
GLOBAL_OPS = {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"}
REDUCE_OPS = {
    "ArgMax", "ArgMin", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
    "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare",
}  # fmt: skip
# Ops whose outputs describe shapes, not positions.
SHAPE_OPS = {"Shape", "Size", "ConstantOfShape", "EyeLike", "Range"}
# Element-wise ops (with numpy broadcasting): each position of the output sees the same
# position of the inputs. Normalizations are here too: their statistics are global context.
ELEMENTWISE_OPS = {
    "Abs", "Acos", "Add", "And", "BatchNormalization", "BitShift", "Cast", "CastLike", "Ceil",
    "Celu", "Clip", "Cos", "DequantizeLinear", "Div", "Dropout", "DynamicQuantizeLinear", "Elu",
    "Equal", "Erf", "Exp", "Floor", "Gelu", "Greater", "GreaterOrEqual",
    "GroupNormalization", "HardSigmoid", "HardSwish", "Identity", "InstanceNormalization",
    "IsInf", "IsNaN", "LayerNormalization", "LeakyRelu", "Less", "LessOrEqual", "Log", "LRN",
    "Max", "Mean", "MeanVarianceNormalization", "Min", "Mish", "Mod", "Mul", "Neg", "Not", "Or",
    "Pow", "PRelu", "QuantizeLinear", "Reciprocal", "Relu", "Round", "Selu", "Shrink", "Sigmoid",
    "Sign", "Sin", "Softplus", "Softsign", "Sqrt", "Sub", "Sum", "Swish", "Tanh",
    "ThresholdedRelu", "Where", "Xor",
}  # fmt: skip
# Ops along one axis (attribute "axis"): element-wise unless that axis is a spatial one.
ALONG_AXIS_OPS = {"Softmax", "LogSoftmax", "Hardmax", "LpNormalization"}
RESHAPE_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}


@dataclass(frozen=True)
class Axis:
    """One spatial axis of a tensor: its length, receptive field size, jump and first centre."""

    length: int
    size: float
    jump: float
    start: float


class Grid(NamedTuple):
    """A tensor's rank (None where unknown) and its spatial axes by position ({}: none)."""

    rank: int | None
    axes: dict[int, Axis]


class Opaque(NamedTuple):
    """A tensor the walk cannot see through, and why (naming the op and its node)."""

    reason: str


Spatial = Grid | Opaque
_SUBGRAPH_TYPES = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
NO_GRID = Grid(None, {})


def tidy(value: float) -> float:
    """`value` as an int where it is one (up to rounding), so tables read 59, not 59.0."""
    nearest = round(value)
    return int(nearest) if abs(value - nearest) < 1e-9 else float(value)


def attribute(node: onnx.NodeProto, name: str, default: Any) -> Any:
    """The value of attribute `name` of `node` (strings decoded), or `default`."""
    found = next((a for a in node.attribute if a.name == name), None)
    if found is None:
        return default
    value = helper.get_attribute_value(found)
    return value.decode() if isinstance(value, bytes) else value


def graph_constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Initializers and Constant node values by tensor name."""
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            value = helper.get_attribute_value(node.attribute[0])
            if isinstance(value, onnx.TensorProto):
                constants[node.output[0]] = numpy_helper.to_array(value)
            else:
                constants[node.output[0]] = np.asarray(value)
    return constants


class GraphWalker:
    """Follows tensors back to the image input, remembering each tensor's spatial axes.

    `spatial_axes` are the input's (rows, cols) axes: (1, 2) for NHWC, (2, 3) for NCHW.
    `shapes`, called at most once and only if an op needs them, gives the concrete shape of
    every tensor at this input size (batch 1).
    """

    def __init__(
        self,
        graph: onnx.GraphProto,
        input_name: str,
        size: tuple[int, int],
        spatial_axes: tuple[int, int] = (1, 2),
        shapes: Callable[[], dict[str, Shape]] | None = None,
    ) -> None:
        self.producer = {out: node for node in graph.node for out in node.output}
        self.constants = graph_constants(graph)
        rows, cols = spatial_axes
        image = {rows: Axis(size[0], 1, 1, 0.5), cols: Axis(size[1], 1, 1, 0.5)}
        self.known: dict[str, Spatial] = {input_name: Grid(4, image)}
        self._shape_source = shapes
        self._shapes: dict[str, Shape] | None = None

    def spatial(self, tensor: str) -> Spatial:
        """The spatial axes of `tensor` (Opaque where the walk cannot see through)."""
        stack = [tensor]
        while stack:
            name = stack[-1]
            if name in self.known:
                stack.pop()
                continue
            node = self.producer.get(name)
            if node is None:
                self.known[name] = (
                    NO_GRID
                    if name in self.constants or name == ""
                    else Opaque(f"graph input {name!r}, not the image input")
                )
                stack.pop()
                continue
            pending = [i for i in node.input if i and i not in self.known]
            if pending:
                stack.extend(pending)
                continue
            result = self._through(node)
            for out in node.output:
                self.known[out] = result
            stack.pop()
        return self.known[tensor]

    def shape(self, tensor: str) -> Shape | None:
        """The concrete shape of `tensor` at this input size, where shape inference knows it."""
        if self._shapes is None:
            self._shapes = self._shape_source() if self._shape_source else {}
        return self._shapes.get(tensor)

    def _rank(self, tensor: str, grid: Grid) -> int | None:
        """The rank of `tensor`: tracked by the walk, else from its shape."""
        if grid.rank is not None:
            return grid.rank
        shape = self.shape(tensor)
        return None if shape is None else len(shape)

    def _through(self, node: onnx.NodeProto) -> Spatial:
        """The spatial axes of `node`'s outputs, from those of its inputs."""
        op = node.op_type
        if op in SHAPE_OPS:
            return NO_GRID
        inputs = [self.known[i] if i else NO_GRID for i in node.input]
        blocked = next((i for i in inputs if isinstance(i, Opaque)), None)
        if blocked is not None:
            return blocked
        if not any(grid.axes for grid in inputs):
            return NO_GRID
        if node.attribute and any(a.type in _SUBGRAPH_TYPES for a in node.attribute):
            return self._cannot(node, "it runs a subgraph")
        handler = _HANDLERS.get(op)
        if handler is None:
            if op in KERNEL_OPS:
                return _through_kernel(self, node, inputs[0])
            if op in ELEMENTWISE_OPS:
                return self._elementwise(node, inputs)
            if op in REDUCE_OPS:
                return _through_reduce(self, node, inputs[0])
            if op in GLOBAL_OPS:
                return NO_GRID  # global context: no positions of its own
            if op in RESHAPE_OPS:
                return _through_reshape(self, node, inputs[0])
            if op in ALONG_AXIS_OPS:
                return _through_along_axis(self, node, inputs[0])
            return self._cannot(node, "this op type is not one the walker knows")
        return handler(self, node, inputs)

    def _cannot(self, node: onnx.NodeProto, why: str) -> Opaque:
        """The Opaque result for a node the walk cannot go through."""
        return Opaque(f"{node.op_type} node {node.name!r}, and {why}")

    def _elementwise(self, node: onnx.NodeProto, inputs: list[Grid]) -> Spatial:
        """Inputs meeting position by position (numpy broadcasting): the field covering all."""
        spatial = [(name, grid) for name, grid in zip(node.input, inputs, strict=True) if grid.axes]
        ranks = [self._rank(name, grid) for name, grid in spatial]
        rank = max((r for r in ranks if r is not None), default=None)
        merged: dict[int, Axis] = {}
        for (_, grid), own in zip(spatial, ranks, strict=True):
            shift = 0 if rank is None or own is None else rank - own
            for index, axis in grid.axes.items():
                other = merged.get(index + shift)
                if other is None:
                    merged[index + shift] = axis
                    continue
                if not math.isclose(other.jump, axis.jump) or other.length != axis.length:
                    return self._cannot(node, "its inputs have different strides")
                low = min(other.start - other.size / 2, axis.start - axis.size / 2)
                high = max(other.start + other.size / 2, axis.start + axis.size / 2)
                merged[index + shift] = Axis(
                    other.length, tidy(high - low), axis.jump, tidy((low + high) / 2)
                )
        return Grid(rank, merged)

    def constant(self, name: str) -> np.ndarray | None:
        """The value of tensor `name` if it is a constant of the graph."""
        return self.constants.get(name) if name else None


def _norm_axis(axis: int, rank: int | None) -> int | None:
    """A possibly negative axis as a non-negative one (None where the rank is unknown)."""
    if axis >= 0:
        return axis
    return None if rank is None else axis + rank


def _kernel(
    walker: GraphWalker, node: onnx.NodeProto, grid: Grid
) -> tuple[list[int], list[int], list[int], list[int]] | Opaque:
    """A kernel op's kernel shape, strides, dilations and pads (from its weights where the
    kernel_shape attribute is left out), checked to run over an N, C, spatial... input."""
    kernel = attribute(node, "kernel_shape", None)
    if kernel is None and "Conv" in node.op_type:
        weights = walker.constant(node.input[3 if node.op_type == "QLinearConv" else 1])
        kernel = None if weights is None else weights.shape[2:]
    if kernel is None:
        return walker._cannot(node, "its kernel shape is unknown")
    kernel = [int(k) for k in kernel]
    dims = len(kernel)
    if set(grid.axes) != set(range(2, 2 + dims)):
        return walker._cannot(node, "its input is not laid out N, C, spatial axes")
    strides = [int(s) for s in attribute(node, "strides", [1] * dims)]
    dilations = [int(d) for d in attribute(node, "dilations", [1] * dims)]
    pads = [int(p) for p in attribute(node, "pads", [0] * (2 * dims))]
    return kernel, strides, dilations, pads


def _through_kernel(walker: GraphWalker, node: onnx.NodeProto, grid: Grid) -> Spatial:
    """A convolution or pooling over axes 2.. of an N, C, spatial... tensor."""
    found = _kernel(walker, node, grid)
    if isinstance(found, Opaque):
        return found
    kernel, strides, dilations, pads = found
    dims = len(kernel)
    auto_pad = attribute(node, "auto_pad", "NOTSET")
    ceil_mode = bool(attribute(node, "ceil_mode", 0))
    out = {}
    for i in range(dims):
        axis = grid.axes[2 + i]
        extent = (kernel[i] - 1) * dilations[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            length = -(-axis.length // strides[i])
            total = max((length - 1) * strides[i] + extent - axis.length, 0)
            before = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        elif auto_pad == "VALID":
            before = 0
            length = (axis.length - extent) // strides[i] + 1
        else:
            before, total = pads[i], pads[i] + pads[i + dims]
            rounding = math.ceil if ceil_mode else math.floor
            length = rounding((axis.length + total - extent) / strides[i]) + 1
        out[2 + i] = Axis(
            length=int(length),
            size=tidy(axis.size + (extent - 1) * axis.jump),
            jump=tidy(axis.jump * strides[i]),
            start=tidy(axis.start + ((extent - 1) / 2 - before) * axis.jump),
        )
    return Grid(grid.rank, out)


def _through_conv_transpose(walker: GraphWalker, node: onnx.NodeProto, inputs: list) -> Spatial:
    """A transposed convolution: output o gathers inputs (o + pad - t * dilation) / stride."""
    grid = inputs[0]
    found = _kernel(walker, node, grid)
    if isinstance(found, Opaque):
        return found
    kernel, strides, dilations, pads = found
    dims = len(kernel)
    extra = [int(p) for p in attribute(node, "output_padding", [0] * dims)]
    wanted = attribute(node, "output_shape", None)
    auto_pad = attribute(node, "auto_pad", "NOTSET")
    out = {}
    for i in range(dims):
        axis = grid.axes[2 + i]
        extent = (kernel[i] - 1) * dilations[i] + 1
        full = (axis.length - 1) * strides[i] + extent + extra[i]
        if wanted is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            length = int(wanted[-dims + i]) if wanted is not None else axis.length * strides[i]
            total = full - length
            half = total // 2
            before = half if auto_pad == "SAME_UPPER" else total - half
        else:
            before = pads[i]
            length = full - pads[i] - pads[i + dims]
        step = axis.jump / strides[i]
        out[2 + i] = Axis(
            length=int(length),
            size=tidy(axis.size + (extent - 1) * step),
            jump=tidy(step),
            start=tidy(axis.start + (before - (extent - 1) / 2) * step),
        )
    return Grid(grid.rank, out)


def _through_transpose(walker: GraphWalker, node: onnx.NodeProto, inputs: list) -> Spatial:
    """Axes move with the permutation (default: reversed)."""
    grid = inputs[0]
    rank = walker._rank(node.input[0], grid)
    perm = attribute(node, "perm", None)
    if perm is None:
        if rank is None:
            return walker._cannot(node, "it has no perm and its rank is unknown")
        perm = list(reversed(range(rank)))
    moved = {out: grid.axes[src] for out, src in enumerate(perm) if src in grid.axes}
    return Grid(len(perm), moved)


def _through_concat(walker: GraphWalker, node: onnx.NodeProto, inputs: list) -> Spatial:
    """Concatenation along the channel axis: the union of the branches' fields."""
    first = next(grid for grid in inputs if grid.axes)
    name = node.input[inputs.index(first)]
    axis = _norm_axis(int(attribute(node, "axis", 0)), walker._rank(name, first))
    if axis is None or any(axis in grid.axes for grid in inputs):
        return walker._cannot(node, "it may concatenate along a spatial axis")
    return walker._elementwise(node, inputs)


def _through_split(walker: GraphWalker, node: onnx.NodeProto, inputs: list) -> Spatial:
    """Split along a non-spatial axis: every part keeps the grid."""
    grid = inputs[0]
    axis = _norm_axis(int(attribute(node, "axis", 0)), walker._rank(node.input[0], grid))
    if axis is None or axis in grid.axes:
        return walker._cannot(node, "it may split along a spatial axis")
    return grid


def _through_gather(walker: GraphWalker, node: onnx.NodeProto, inputs: list) -> Spatial:
    """Gather along a non-spatial axis (a channel reorder such as RGB to BGR)."""
    grid = inputs[0]
    if inputs[1].axes:
        return walker._cannot(node, "its indices come from the image")
    rank = walker._rank(node.input[0], grid)
    axis = _norm_axis(int(attribute(node, "axis", 0)), rank)
    indices = walker.constant(node.input[1])
    index_shape = walker.shape(node.input[1]) if indices is None else indices.shape
    if axis is None or axis in grid.axes or index_shape is None:
        return walker._cannot(node, "it may gather along a spatial axis")
    shift = len(index_shape) - 1
    moved = {(i + shift if i > axis else i): a for i, a in grid.axes.items()}
    return Grid(None if rank is None else rank + shift, moved)


def _constant_ints(walker: GraphWalker, node: onnx.NodeProto, index: int) -> list[int] | None:
    """Input `index` of `node` as a list of ints, if it is a constant (None: absent or not)."""
    if len(node.input) <= index or not node.input[index]:
        return None
    value = walker.constant(node.input[index])
    return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]


def _through_pad(walker: GraphWalker, node: onnx.NodeProto, inputs: list) -> Spatial:
    """Padding: an axis grows and position 0 moves back by the leading pad."""
    grid = inputs[0]
    rank = walker._rank(node.input[0], grid)
    pads = _constant_ints(walker, node, 1) or attribute(node, "pads", None)
    if pads is None:
        return _unchanged_lengths(walker, node, grid, "its pads are not constant")
    axes = _constant_ints(walker, node, 3) or list(range(len(pads) // 2))
    count = len(axes)
    out = dict(grid.axes)
    for k, axis_index in enumerate(axes):
        index = _norm_axis(axis_index, rank)
        if index is None:
            return walker._cannot(node, "its axes are negative and its rank is unknown")
        if index in out:
            axis = out[index]
            before, after = int(pads[k]), int(pads[k + count])
            start = tidy(axis.start - before * axis.jump)
            out[index] = Axis(axis.length + before + after, axis.size, axis.jump, start)
    return Grid(grid.rank, out)


def _through_slice(walker: GraphWalker, node: onnx.NodeProto, inputs: list) -> Spatial:
    """A slice: on a spatial axis it keeps every step-th position from `start` on."""
    grid = inputs[0]
    rank = walker._rank(node.input[0], grid)
    if len(node.input) > 1:
        starts, ends = _constant_ints(walker, node, 1), _constant_ints(walker, node, 2)
        axes, steps = _constant_ints(walker, node, 3), _constant_ints(walker, node, 4)
    else:  # opset < 10: attributes
        starts, ends = attribute(node, "starts", None), attribute(node, "ends", None)
        axes, steps = attribute(node, "axes", None), None
    if starts is None or ends is None:
        return _unchanged_lengths(walker, node, grid, "its bounds are not constant")
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    out = dict(grid.axes)
    for begin, end, axis_index, step in zip(starts, ends, axes, steps, strict=False):
        index = _norm_axis(axis_index, rank)
        if index is None:
            return walker._cannot(node, "its axes are negative and its rank is unknown")
        if index not in out:
            continue
        axis = out[index]
        kept = range(axis.length)[slice(begin, end, step)]
        if len(kept) == 0:
            return walker._cannot(node, "it keeps no position of a spatial axis")
        out[index] = Axis(
            len(kept),
            axis.size,
            tidy(axis.jump * kept.step),
            tidy(axis.start + kept.start * axis.jump),
        )
    return Grid(grid.rank, out)


def _unchanged_lengths(walker: GraphWalker, node: onnx.NodeProto, grid: Grid, why: str) -> Spatial:
    """Pass `grid` through where the tensor shapes show the spatial lengths unchanged."""
    before, after = walker.shape(node.input[0]), walker.shape(node.output[0])
    if before is None or after is None or len(before) != len(after):
        return walker._cannot(node, why)
    if any(before[i] != after[i] or before[i] is None for i in grid.axes):
        return walker._cannot(node, f"{why} and it changes a spatial axis")
    return grid


def _through_reshape(walker: GraphWalker, node: onnx.NodeProto, grid: Grid) -> Spatial:
    """Reshape, Flatten, Squeeze, Unsqueeze: rows and columns must survive as axes of their own.

    A spatial axis is kept where the output has an axis of the same length with the same
    number of elements before it and after it (batch 1), so it indexes the same positions.
    """
    before, after = walker.shape(node.input[0]), walker.shape(node.output[0])
    if before is None or after is None or None in before or None in after:
        return walker._cannot(node, "the shapes around it are unknown")
    out = {}
    for index, axis in grid.axes.items():
        lead, trail = math.prod(before[:index]), math.prod(before[index + 1 :])
        match = [
            j
            for j in range(len(after))
            if after[j] == before[index]
            and math.prod(after[:j]) == lead
            and math.prod(after[j + 1 :]) == trail
        ]
        if not match:
            return walker._cannot(node, "it merges or splits the grid's rows or columns")
        out[match[0]] = axis
    return Grid(len(after), out)


def _through_reduce(walker: GraphWalker, node: onnx.NodeProto, grid: Grid) -> Spatial:
    """A reduction: over every spatial axis it is global context; over none it keeps them."""
    rank = walker._rank(node.input[0], grid)
    if node.op_type in ("ArgMax", "ArgMin"):
        axes = [int(attribute(node, "axis", 0))]
    else:
        axes = attribute(node, "axes", None) or _constant_ints(walker, node, 1)
    if not axes:
        return NO_GRID  # reduces over every axis
    axes = [_norm_axis(int(a), rank) for a in axes]
    if None in axes:
        return walker._cannot(node, "its axes are negative and its rank is unknown")
    spatial = set(grid.axes)
    if spatial <= set(axes):
        return NO_GRID
    if spatial & set(axes):
        return walker._cannot(node, "it reduces over one of the grid's axes only")
    if int(attribute(node, "keepdims", 1)):
        return grid
    moved = {i - sum(a < i for a in axes): axis for i, axis in grid.axes.items()}
    return Grid(None if rank is None else rank - len(axes), moved)


def _through_along_axis(walker: GraphWalker, node: onnx.NodeProto, grid: Grid) -> Spatial:
    """Softmax and kin along one axis: element-wise for the grid unless that axis is spatial."""
    axis = _norm_axis(int(attribute(node, "axis", -1)), walker._rank(node.input[0], grid))
    if axis is None or axis in grid.axes:
        return walker._cannot(node, "it mixes positions along a spatial axis")
    return grid


def _through_matmul(walker: GraphWalker, node: onnx.NodeProto, inputs: list) -> Spatial:
    """A matrix product with a constant: a per-position linear map when it contracts channels."""
    first, second = inputs[0], inputs[1]
    if first.axes and second.axes:
        return walker._cannot(node, "it multiplies two image-dependent tensors (mixing positions)")
    if first.axes:
        rank = walker._rank(node.input[0], first)
        if rank is None or rank - 1 in first.axes:
            return walker._cannot(node, "it contracts a spatial axis")
        return first
    rank = walker._rank(node.input[1], second)
    if rank is None or rank - 2 in second.axes:
        return walker._cannot(node, "it contracts a spatial axis")
    return second


def _through_resize(walker: GraphWalker, node: onnx.NodeProto, inputs: list) -> Spatial:
    """Resize/Upsample: jump / scale, the centre moved as its coordinate mode says."""
    grid = inputs[0]
    scales = attribute(node, "scales", None)
    if scales is None:
        scales_at = 1 if node.op_type == "Upsample" or len(node.input) == 2 else 2
        found = walker.constant(node.input[scales_at]) if len(node.input) > scales_at else None
        scales = None if found is None or found.size == 0 else [float(v) for v in found]
    sizes = _constant_ints(walker, node, 3)
    after = walker.shape(node.output[0]) if scales is None and sizes is None else None
    default_mode = "asymmetric" if node.op_type == "Upsample" else "half_pixel"
    mode = attribute(node, "coordinate_transformation_mode", default_mode)
    interpolation = attribute(node, "mode", "nearest")
    # The continuous mapping puts an output's centre up to half an input step from the input
    # it copies (nearest) and between the 2 (linear) or 4 (cubic) it mixes: widen to cover them.
    widen = {"nearest": 1, "linear": 2, "bilinear": 2, "cubic": 4}.get(interpolation, 4)
    if mode == "tf_crop_and_resize" or attribute(node, "axes", None) is not None:
        return walker._cannot(node, f"its coordinate mode {mode!r} or axes are not supported")
    out = {}
    for index, axis in grid.axes.items():
        if scales is not None and len(scales) > index:
            scale, length = scales[index], math.floor(axis.length * scales[index])
        elif sizes is not None and len(sizes) > index:
            length = sizes[index]
            scale = length / axis.length
        elif after is not None and len(after) > index and after[index]:
            length = int(after[index])
            scale = length / axis.length
        else:
            return walker._cannot(node, "its scales and sizes are unknown")
        if mode == "align_corners":
            jump = axis.jump * (axis.length - 1) / max(length - 1, 1)
            start = axis.start
        elif mode == "asymmetric":
            jump, start = axis.jump / scale, axis.start
        elif mode == "tf_half_pixel_for_nn":
            jump, start = axis.jump / scale, axis.start + axis.jump * 0.5 / scale
        else:  # half_pixel and its variants
            jump = axis.jump / scale
            start = axis.start + axis.jump * (0.5 / scale - 0.5)
        out[index] = Axis(int(length), tidy(axis.size + widen * axis.jump), tidy(jump), tidy(start))
    return Grid(grid.rank, out)


def _through_space_to_depth(walker: GraphWalker, node: onnx.NodeProto, inputs: list) -> Spatial:
    """SpaceToDepth is a block x block kernel of stride block; DepthToSpace its inverse."""
    grid = inputs[0]
    if set(grid.axes) != {2, 3}:
        return walker._cannot(node, "its input is not laid out N, C, H, W")
    block = int(attribute(node, "blocksize", 1))
    out = {}
    for index, axis in grid.axes.items():
        if node.op_type == "SpaceToDepth":
            out[index] = Axis(
                axis.length // block,
                tidy(axis.size + (block - 1) * axis.jump),
                tidy(axis.jump * block),
                tidy(axis.start + (block - 1) / 2 * axis.jump),
            )
        else:
            step = axis.jump / block
            out[index] = Axis(
                axis.length * block,
                axis.size,
                tidy(step),
                tidy(axis.start - (block - 1) / 2 * step),
            )
    return Grid(grid.rank, out)


_HANDLERS: dict[str, Callable[[GraphWalker, onnx.NodeProto, list], Spatial]] = {
    "ConvTranspose": _through_conv_transpose,
    "Transpose": _through_transpose,
    "Concat": _through_concat,
    "Split": _through_split,
    "Gather": _through_gather,
    "Pad": _through_pad,
    "Slice": _through_slice,
    "MatMul": _through_matmul,
    "Resize": _through_resize,
    "Upsample": _through_resize,
    "SpaceToDepth": _through_space_to_depth,
    "DepthToSpace": _through_space_to_depth,
}


def known_op_types() -> Iterable[str]:
    """Every op type the walk can see through (for docs and tests)."""
    return sorted(
        set(_HANDLERS) | KERNEL_OPS | GLOBAL_OPS | REDUCE_OPS | SHAPE_OPS | ELEMENTWISE_OPS
        | ALONG_AXIS_OPS | RESHAPE_OPS
    )  # fmt: skip
