"""TensorFlow GraphDef -> ONNX for the semdict_onnx contract, with tf2onnx.

The source graph is imported into a small wrapper graph whose own placeholder `image`
takes float32 NHWC RGB in [0, 1] and feeds `255 * image - 117` to the source's `input`.
Doing the scaling in TensorFlow, rather than patching Mul/Add nodes into the ONNX graph
afterwards, means one tool converts the whole graph, the parity check measures exactly
what users run, and the input shape comes from the wrapper's placeholder even when a
source graph leaves its own `input` shape unspecified.

The input's batch, height and width are all dynamic. Every layer up to mixed5b is
convolutions and SAME pools, which run at any size; only the class head is tied to 224x224:
`avgpool0` is a 7x7 VALID average pool, global at that size, before a reshape to
`[-1, 1024]`. `variable_size_graphdef` replaces it by the mean over height and width (the same
numbers at 224x224) so that softmax2, which ONNX Runtime computes on every run, works at
every size too. That rewrite needs Lucid's exact head; `class_head_problem` says why a graph's
head is not it, and such a graph is converted as it is with its input fixed at 224x224, the
size the network was trained at (`convert(..., variable_size=False)`): a fixed-size model
rather than no model.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import onnx

from semdict_onnx._metadata import LayerInfo

from ._errors import INSTALL_HINT, ConversionError, GraphDefNotFoundError
from ._googlenet import (
    ACTIVATION_LAYERS,
    CLASS_OUTPUT,
    CLASS_POOL,
    INPUT_NAME,
    INPUT_SIZE,
    NETWORK_RANGE,
    OUTPUTS,
    SOURCE_INPUT,
)
from ._tf_env import import_tensorflow, import_tf2onnx

tf = import_tensorflow()
tf2onnx = import_tf2onnx()

OPSET = 17
# The names of the input's dynamic dimensions (N, H, W); an output's batch is also "batch".
INPUT_DIMS = ("batch", "height", "width")
_SCOPE = "source"


def load_graphdef(path: str | os.PathLike[str]) -> tf.compat.v1.GraphDef:
    """Parse a frozen GraphDef, or say clearly that the file is not one."""
    graph_def = tf.compat.v1.GraphDef()
    try:
        with open(path, "rb") as handle:
            graph_def.ParseFromString(handle.read())
    except FileNotFoundError as exc:
        raise GraphDefNotFoundError(
            f"no GraphDef at {path}; check the path, or run the export without "
            "--graphdef to download Lucid's InceptionV1.pb"
        ) from exc
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise ConversionError(
            f"{path} is not a TensorFlow GraphDef ({exc}); if it was downloaded, delete it "
            "and run the export again, or pass the right file with --graphdef"
        ) from exc
    names = {node.name for node in graph_def.node}
    missing = [name for name in (SOURCE_INPUT, *OUTPUTS) if name not in names]
    if missing:
        raise ConversionError(
            f"{path} is a GraphDef but not Lucid's GoogLeNet: it lacks the nodes "
            f"{', '.join(missing)}; export InceptionV1.pb or a replica (--replica)"
        )
    return graph_def


def _node_name(tensor: str) -> str:
    """The node of a GraphDef input reference: `name`, `name:1` or `^name` -> `name`."""
    return tensor.lstrip("^").split(":")[0]


def _class_pool(graph_def: tf.compat.v1.GraphDef) -> tf.compat.v1.NodeDef | None:
    """The class head's average pool if it sits in Lucid's pattern, else None.

    Expected: `avgpool0` (AvgPool, NHWC, VALID) whose only consumer is a Reshape to
    `[-1, channels]` (shape from a Const) that feeds softmax2's MatMul.
    """
    nodes = {node.name: node for node in graph_def.node}
    pool = nodes.get(CLASS_POOL)
    consumers = [
        node for node in graph_def.node if any(_node_name(i) == CLASS_POOL for i in node.input)
    ]
    reshape = consumers[0] if len(consumers) == 1 else None
    shape = (
        nodes.get(_node_name(reshape.input[1]))
        if reshape is not None and len(reshape.input) > 1
        else None
    )
    target = (
        tf.make_ndarray(shape.attr["value"].tensor).tolist()
        if shape is not None and shape.op == "Const"
        else None
    )
    matmuls = [
        node
        for node in graph_def.node
        if reshape is not None
        and node.op == "MatMul"
        and _node_name(node.input[0]) == reshape.name
        and node.name.startswith(CLASS_OUTPUT)
    ]
    found = (
        pool is not None
        and pool.op == "AvgPool"
        and pool.attr["padding"].s == b"VALID"
        and pool.attr["data_format"].s in (b"", b"NHWC")
        and reshape is not None
        and reshape.op == "Reshape"
        and isinstance(target, list)
        and len(target) == 2
        and target[0] == -1
        and len(matmuls) == 1
    )
    return pool if found else None


def _pool_problem(graph_def: tf.compat.v1.GraphDef, pool: tf.compat.v1.NodeDef) -> str | None:
    """Why the class pool is not global over its input at the trained size (None: it is)."""
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, [1, INPUT_SIZE, INPUT_SIZE, 3])
        try:
            tf.import_graph_def(graph_def, input_map={f"{SOURCE_INPUT}:0": image}, name=_SCOPE)
        except ValueError as exc:
            raise ConversionError(
                f"TensorFlow cannot run the source graph on {INPUT_SIZE}x{INPUT_SIZE}x3 images "
                f"({exc}); is it really Lucid's InceptionV1?"
            ) from exc
        tensor = pool.input[0] if ":" in pool.input[0] else f"{pool.input[0]}:0"
        pooled = graph.get_tensor_by_name(f"{_SCOPE}/{tensor}").shape.as_list()
    kernel = list(pool.attr["ksize"].list.i)
    if len(pooled) != 4 or kernel != [1, *pooled[1:3], 1]:
        return (
            f"{CLASS_POOL} pools {kernel[1:3]} but its input is {pooled[1:3]} at "
            f"{INPUT_SIZE}x{INPUT_SIZE}: not a global pool, so a global mean would change "
            f"{CLASS_OUTPUT}"
        )
    return None


def class_head_problem(graph_def: tf.compat.v1.GraphDef) -> str | None:
    """Why the class head cannot be made to take any input size (None: it can)."""
    pool = _class_pool(graph_def)
    if pool is None:
        return (
            f"the class head is not the expected {CLASS_POOL} (AvgPool, VALID) -> Reshape "
            f"[-1, channels] -> {CLASS_OUTPUT}'s MatMul"
        )
    return _pool_problem(graph_def, pool)


def variable_size_graphdef(graph_def: tf.compat.v1.GraphDef) -> tf.compat.v1.GraphDef:
    """A copy of `graph_def` that runs at any input size, the same at 224x224.

    `avgpool0` becomes the mean over height and width (kept dims, same name), and the
    source's `input` placeholder, if it states a shape, accepts any height and width. A head
    that is not Lucid's is a ConversionError (see `class_head_problem`).
    """
    problem = class_head_problem(graph_def)
    if problem is not None:
        raise ConversionError(
            f"{problem}, so it cannot be made to take other input sizes; is it really Lucid's "
            "InceptionV1?"
        )
    result = tf.compat.v1.GraphDef()
    result.CopyFrom(graph_def)
    for node in result.node:
        if node.name == CLASS_POOL:
            axes_name = f"{CLASS_POOL}/global_axes"
            axes = tf.make_tensor_proto(np.array([1, 2], np.int32))
            result.node.add(
                name=axes_name,
                op="Const",
                attr={
                    "dtype": tf.compat.v1.AttrValue(type=axes.dtype),
                    "value": tf.compat.v1.AttrValue(tensor=axes),
                },
            )
            dtype = node.attr["T"].type
            node.op = "Mean"
            node.attr.clear()
            node.attr["T"].type = dtype
            node.attr["Tidx"].type = tf.int32.as_datatype_enum
            node.attr["keep_dims"].b = True
            del node.input[1:]
            node.input.append(axes_name)
        elif node.name == SOURCE_INPUT and node.op == "Placeholder" and "shape" in node.attr:
            shape = node.attr["shape"].shape
            if not shape.unknown_rank and len(shape.dim) == 4:
                shape.dim[1].size = -1
                shape.dim[2].size = -1
    return result


def _wrapper_graphdef(
    graph_def: tf.compat.v1.GraphDef, variable_size: bool
) -> tf.compat.v1.GraphDef:
    """A graph with input `image` [N, H, W, 3] in [0, 1] that rescales it and runs `graph_def`.

    With `variable_size`, `graph_def` is made size-independent first
    (`variable_size_graphdef`) and H and W are free; else both are INPUT_SIZE.
    """
    source = variable_size_graphdef(graph_def) if variable_size else graph_def
    side = None if variable_size else INPUT_SIZE
    low, high = NETWORK_RANGE
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, [None, side, side, 3], name=INPUT_NAME)
        scaled = image * np.float32(high - low) + np.float32(low)
        try:
            tf.import_graph_def(source, input_map={f"{SOURCE_INPUT}:0": scaled}, name=_SCOPE)
        except ValueError as exc:
            raise ConversionError(
                f"TensorFlow cannot run the source graph on NHWC RGB images ({exc}); is it "
                "really Lucid's InceptionV1?"
            ) from exc
    return graph.as_graph_def()


class _ErrorCollector(logging.Handler):
    """Keeps tf2onnx's ERROR records, which it logs instead of raising."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _name_dynamic_dims(model: onnx.ModelProto) -> None:
    """Call the input's dynamic dims batch, height and width, and every output's first batch."""
    named = [(value, INPUT_DIMS) for value in model.graph.input]
    named += [(value, INPUT_DIMS[:1]) for value in model.graph.output]
    for value, names in named:
        for dim, name in zip(value.type.tensor_type.shape.dim, names, strict=False):
            if not dim.HasField("dim_value"):
                dim.dim_param = name


def _check_converted(model: onnx.ModelProto, errors: list[str]) -> None:
    """Fail if tf2onnx left TensorFlow ops behind or produced an invalid model."""
    leftovers = sorted(
        {node.op_type for node in model.graph.node if node.domain not in ("", "ai.onnx")}
    )
    if errors or leftovers:
        details = "; ".join(errors[:5]) or f"unconverted ops: {', '.join(leftovers)}"
        raise ConversionError(
            f"tf2onnx could not convert the graph ({details}); check that tensorflow and "
            f"tf2onnx are the versions the export extra names ({INSTALL_HINT})"
        )
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"tf2onnx produced an invalid ONNX model: {exc}") from exc


def convert(graph_def: tf.compat.v1.GraphDef, variable_size: bool = True) -> onnx.ModelProto:
    """The ONNX model: input `image` [batch, height, width, 3] in [0, 1], outputs OUTPUTS.

    `variable_size=False` keeps the graph as it is and fixes height and width at INPUT_SIZE.
    """
    wrapper = _wrapper_graphdef(graph_def, variable_size)
    outputs = {f"{_SCOPE}/{name}:0": name for name in OUTPUTS}
    collector = _ErrorCollector()
    logger = logging.getLogger("tf2onnx")
    logger.addHandler(collector)
    try:
        model, _ = tf2onnx.convert.from_graph_def(
            wrapper,
            name="googlenet",
            input_names=[f"{INPUT_NAME}:0"],
            output_names=list(outputs),
            opset=OPSET,
            tensors_to_rename={f"{INPUT_NAME}:0": INPUT_NAME, **outputs},
        )
    except Exception as exc:
        raise ConversionError(f"tf2onnx failed: {type(exc).__name__}: {exc}") from exc
    finally:
        logger.removeHandler(collector)
    _check_converted(model, collector.messages)
    _name_dynamic_dims(model)
    return model


def _output_dims(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    """Each output's dims (None where unknown) when the input is INPUT_SIZE x INPUT_SIZE."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for dim in fixed.graph.input[0].type.tensor_type.shape.dim[1:3]:
        dim.dim_value = INPUT_SIZE
    inferred = onnx.shape_inference.infer_shapes(fixed)
    return {
        value.name: [
            dim.dim_value if dim.HasField("dim_value") else None
            for dim in value.type.tensor_type.shape.dim
        ]
        for value in inferred.graph.output
    }


def layer_infos(model: onnx.ModelProto) -> tuple[LayerInfo, ...]:
    """The activation layers with channels and HxW at 224x224, read from the output shapes."""
    dims = _output_dims(model)
    layers = []
    for name in ACTIVATION_LAYERS:
        shape = dims.get(name)
        if shape is None or len(shape) != 4 or None in shape[1:]:
            raise ConversionError(
                f"output {name} has shape {shape}, not [batch, H, W, C]; "
                "the source graph does not look like Lucid's InceptionV1"
            )
        _, height, width, channels = shape
        layers.append(LayerInfo(name=name, channels=channels, height=height, width=width))
    return tuple(layers)


def num_classes(model: onnx.ModelProto) -> int:
    """The width of the class output, read from the model's output shape."""
    shape = _output_dims(model).get(CLASS_OUTPUT)
    if shape is None or len(shape) != 2 or shape[1] is None:
        raise ConversionError(f"output {CLASS_OUTPUT} has shape {shape}, not [batch, classes]")
    return shape[1]
