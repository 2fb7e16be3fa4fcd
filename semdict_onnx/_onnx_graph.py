"""Facts read from someone else's ONNX graph: its image input, that input's layout, shapes.

Shared by the layer catalog (list_layers), prepare_model and the receptive-field walk. Shapes
come from ONNX's own shape inference at a concrete input size (batch 1): the weights are left
out of the copy it runs on (declared as inputs of their shape), so a large network is not
copied whole; ONNX Runtime is asked only for the few shapes inference leaves open.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from ._metadata import LAYOUTS
from .errors import ModelFormatError, ModelNotFoundError, PrepareError

Shape = tuple[int | None, ...]
# Initializers with more elements than this are declared as inputs for shape inference.
_KEEP_VALUES_UP_TO = 64
# Ops that take an NCHW tensor: the first one the image meets says the input is NCHW.
_NCHW_OPS = {
    "Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool",
    "GlobalMaxPool", "BatchNormalization", "InstanceNormalization",
}  # fmt: skip
_PASS_OPS = {"Add", "Sub", "Mul", "Div", "Cast", "Identity", "Clip"}


def load_onnx(source: str | os.PathLike[str] | onnx.ModelProto) -> onnx.ModelProto:
    """The ONNX model at `source` (a path), or a copy of the given ModelProto."""
    if isinstance(source, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(source)
        return copy
    path = Path(source).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"no ONNX file at {str(path)!r}")
    try:
        return onnx.load(str(path))
    except (OSError, DecodeError, ValueError) as exc:
        raise ModelFormatError(f"{str(path)!r} is not a readable ONNX model ({exc})") from exc


def dims_of(value: onnx.ValueInfoProto) -> list[int | str | None]:
    """The dimensions of a value: ints where fixed, the symbol's name or None where open."""
    dims: list[int | str | None] = []
    for dim in value.type.tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        else:
            dims.append(dim.dim_param or None)
    return dims


def image_input(graph: onnx.GraphProto, name: str | None = None) -> onnx.ValueInfoProto:
    """The graph's image input: `name`, else its one rank-4 float input."""
    weights = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]
    if name is not None:
        found = next((value for value in inputs if value.name == name), None)
        if found is None:
            raise PrepareError(
                f"the graph has no input {name!r}; its inputs are "
                f"{', '.join(repr(value.name) for value in inputs)}"
            )
        return found
    images = [
        value
        for value in inputs
        if value.type.tensor_type.elem_type
        in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)
        and len(value.type.tensor_type.shape.dim) == 4
    ]
    if len(images) != 1:
        described = ", ".join(f"{value.name!r} {dims_of(value)}" for value in inputs)
        raise PrepareError(
            f"cannot tell which input is the image (a float tensor of rank 4): the graph's "
            f"inputs are {described}; name it with input_name= (--input-name)"
        )
    if len(inputs) > 1:
        others = ", ".join(repr(value.name) for value in inputs if value is not images[0])
        raise PrepareError(
            f"the graph has inputs besides the image {images[0].name!r} ({others}); "
            "only networks whose one input is the image can be prepared"
        )
    return images[0]


def _layout_from_consumers(graph: onnx.GraphProto, name: str) -> str | None:
    """The layout the graph treats its input as, from the first op that says (None: none)."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(node)
    pending, seen = [name], set()
    while pending:
        tensor = pending.pop()
        for node in consumers.get(tensor, []):
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node.op_type in _NCHW_OPS:
                return "NCHW"
            if node.op_type == "Transpose":
                perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
                return {(0, 3, 1, 2): "NHWC", (0, 2, 3, 1): "NCHW"}.get(tuple(perm or ()))
            if node.op_type in _PASS_OPS:
                pending.extend(node.output)
    return None


def input_layout(graph: onnx.GraphProto, value: onnx.ValueInfoProto, given: str | None) -> str:
    """The image input's layout: from its shape (3 channels at axis 1 or 3) and the ops it
    meets, else `given`; a `given` layout the graph contradicts is an error."""
    if given is not None and str(given).upper() not in LAYOUTS:
        raise PrepareError(f"layout must be one of {', '.join(LAYOUTS)}, not {given!r}")
    given = None if given is None else str(given).upper()
    dims = dims_of(value)
    by_shape = None
    if dims[1] == 3 and dims[3] != 3:
        by_shape = "NCHW"
    elif dims[3] == 3 and dims[1] != 3:
        by_shape = "NHWC"
    by_ops = _layout_from_consumers(graph, value.name)
    found = by_ops or by_shape
    if by_ops and by_shape and by_ops != by_shape:
        raise ModelFormatError(
            f"the input {value.name!r} is shaped {dims} ({by_shape}) but the graph's first "
            f"ops treat it as {by_ops}; this graph does not take an image"
        )
    if found is None:
        if given is None:
            raise PrepareError(
                f"cannot tell the layout of input {value.name!r} {dims} from the graph; "
                "pass layout='NCHW' or layout='NHWC' (--layout)"
            )
        return given
    if given is not None and given != found:
        evidence = f"shaped {dims}" if by_shape else "read by ops that take " + found
        raise PrepareError(
            f"layout={given!r} contradicts the graph: its input {value.name!r} is {evidence}, "
            f"so it is {found}; leave layout (--layout) out or pass {found!r}"
        )
    return found


def concrete_input(layout: str, size: tuple[int, int], batch: int = 1) -> list[int]:
    """The input's shape at `size` (height, width) and `batch`."""
    height, width = size
    return [batch, 3, height, width] if layout == "NCHW" else [batch, height, width, 3]


def inferred_facts(
    model: onnx.ModelProto, input_name: str, dims: list[int]
) -> tuple[dict[str, Shape], dict[str, int]]:
    """Every tensor's shape and element type as ONNX shape inference finds them with the
    input fixed at `dims`."""
    graph = model.graph
    light = onnx.helper.make_graph([], graph.name or "graph", [], [])
    light.node.extend(graph.node)
    weights = {init.name for init in graph.initializer}
    for value in graph.input:
        if value.name == input_name:
            elem = value.type.tensor_type.elem_type
            light.input.append(onnx.helper.make_tensor_value_info(input_name, elem, dims))
        elif value.name not in weights:
            light.input.append(value)
    for init in graph.initializer:
        if int(np.prod(init.dims, dtype=np.int64)) > _KEEP_VALUES_UP_TO:
            light.input.append(
                onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
            )
        else:
            light.initializer.append(init)
    light.output.extend(graph.output)
    copy = onnx.helper.make_model(light, opset_imports=model.opset_import)
    copy.ir_version = model.ir_version
    try:
        inferred = onnx.shape_inference.infer_shapes(copy, strict_mode=False, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        raise ModelFormatError(f"ONNX shape inference fails on this graph ({exc})") from exc
    shapes: dict[str, Shape] = {}
    types: dict[str, int] = {}
    values: Iterable[onnx.ValueInfoProto] = (
        *inferred.graph.input,
        *inferred.graph.value_info,
        *inferred.graph.output,
    )
    for value in values:
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type:
            types[value.name] = tensor_type.elem_type
        if tensor_type.HasField("shape"):
            shapes[value.name] = tuple(d if isinstance(d, int) else None for d in dims_of(value))
    for init in graph.initializer:
        shapes[init.name] = tuple(int(d) for d in init.dims)
        types[init.name] = init.data_type
    return shapes, types


def inferred_shapes(model: onnx.ModelProto, input_name: str, dims: list[int]) -> dict[str, Shape]:
    """Every tensor's shape as ONNX shape inference finds it with the input fixed at `dims`."""
    return inferred_facts(model, input_name, dims)[0]


def probe_shapes(
    model: onnx.ModelProto, input_name: str, dims: list[int], tensors: list[str]
) -> dict[str, Shape]:
    """The shapes of `tensors` from one ONNX Runtime run on zeros (for those inference leaves
    open)."""
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

    if not tensors:
        return {}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    for name in tensors:
        probe.graph.output.append(onnx.ValueInfoProto(name=name))
    elem = next(v for v in model.graph.input if v.name == input_name).type.tensor_type.elem_type
    zeros = np.zeros(dims, onnx.helper.tensor_dtype_to_np_dtype(elem))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            probe.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        values = session.run(tensors, {input_name: zeros})
    except (ort_errors.Fail, ort_errors.InvalidArgument, ort_errors.InvalidGraph,
            ort_errors.RuntimeException, ort_errors.NotImplemented) as exc:  # fmt: skip
        raise ModelFormatError(
            f"ONNX Runtime cannot run this graph on a {dims} input ({str(exc).splitlines()[0]})"
        ) from exc
    return {name: tuple(value.shape) for name, value in zip(tensors, values, strict=True)}
