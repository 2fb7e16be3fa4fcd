"""TensorFlow GraphDef -> ONNX for the semdict_onnx contract, with tf2onnx.

The source graph is imported into a small wrapper graph whose own placeholder `image`
takes float32 NHWC RGB in [0, 1] and feeds `255 * image - 117` to the source's `input`.
Doing the scaling in TensorFlow, rather than patching Mul/Add nodes into the ONNX graph
afterwards, means one tool converts the whole graph, the parity check measures exactly
what users run, and the input shape (batch dynamic, 224x224x3) comes from the wrapper's
placeholder even when a source graph leaves its own `input` shape unspecified.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import onnx
from googlenet import (
    ACTIVATION_LAYERS,
    CLASS_OUTPUT,
    INPUT_NAME,
    INPUT_SIZE,
    NETWORK_RANGE,
    OUTPUTS,
    SOURCE_INPUT,
)
from tf_env import import_tensorflow, import_tf2onnx

from semdict_onnx.errors import ModelFormatError, SemdictError
from semdict_onnx.metadata import METADATA_KEY, LayerInfo, ModelInfo

tf = import_tensorflow()
tf2onnx = import_tf2onnx()

OPSET = 17
BATCH_DIM = "batch"
_SCOPE = "source"


class ConversionError(SemdictError):
    """The source graph could not be read or converted into a valid ONNX model."""


def load_graphdef(path: str | os.PathLike[str]) -> tf.compat.v1.GraphDef:
    """Parse a frozen GraphDef, or say clearly that the file is not one."""
    graph_def = tf.compat.v1.GraphDef()
    try:
        with open(path, "rb") as handle:
            graph_def.ParseFromString(handle.read())
    except FileNotFoundError as exc:
        raise ConversionError(
            f"no GraphDef at {path}; check the path, or run scripts/export.py without "
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


def _wrapper_graphdef(graph_def: tf.compat.v1.GraphDef) -> tf.compat.v1.GraphDef:
    """A graph with input `image` in [0, 1] that rescales it and runs `graph_def` on it."""
    low, high = NETWORK_RANGE
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(
            tf.float32, [None, INPUT_SIZE, INPUT_SIZE, 3], name=INPUT_NAME
        )
        scaled = image * np.float32(high - low) + np.float32(low)
        try:
            tf.import_graph_def(graph_def, input_map={f"{SOURCE_INPUT}:0": scaled}, name=_SCOPE)
        except ValueError as exc:
            raise ConversionError(
                f"TensorFlow cannot run the source graph on {INPUT_SIZE}x{INPUT_SIZE}x3 images "
                f"({exc}); is it really Lucid's InceptionV1?"
            ) from exc
    return graph.as_graph_def()


class _ErrorCollector(logging.Handler):
    """Keeps tf2onnx's ERROR records, which it logs instead of raising."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _rename_batch_dims(model: onnx.ModelProto) -> None:
    """Call the dynamic first dimension of the input and every output `batch`."""
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM


def _check_converted(model: onnx.ModelProto, errors: list[str]) -> None:
    """Fail if tf2onnx left TensorFlow ops behind or produced an invalid model."""
    leftovers = sorted(
        {node.op_type for node in model.graph.node if node.domain not in ("", "ai.onnx")}
    )
    if errors or leftovers:
        details = "; ".join(errors[:5]) or f"unconverted ops: {', '.join(leftovers)}"
        raise ConversionError(
            f"tf2onnx could not convert the graph ({details}); check that tensorflow and "
            "tf2onnx are the versions pyproject.toml names (pip install -e .[export])"
        )
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"tf2onnx produced an invalid ONNX model: {exc}") from exc


def convert(graph_def: tf.compat.v1.GraphDef) -> onnx.ModelProto:
    """The ONNX model: input `image` [batch, 224, 224, 3] in [0, 1], outputs OUTPUTS."""
    wrapper = _wrapper_graphdef(graph_def)
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
    _rename_batch_dims(model)
    return model


def _output_dims(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    inferred = onnx.shape_inference.infer_shapes(model)
    return {
        value.name: [
            dim.dim_value if dim.HasField("dim_value") else None
            for dim in value.type.tensor_type.shape.dim
        ]
        for value in inferred.graph.output
    }


def layer_infos(model: onnx.ModelProto) -> tuple[LayerInfo, ...]:
    """The activation layers with channels and HxW, read from the model's output shapes."""
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


def attach_metadata(model: onnx.ModelProto, info: ModelInfo) -> None:
    """Store `info` as JSON under METADATA_KEY, and its weights note as the doc string."""
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    model.metadata_props.add(key=METADATA_KEY, value=info.to_json())
    model.doc_string = info.weights_note


def read_metadata(model: onnx.ModelProto) -> ModelInfo:
    """The ModelInfo stored by `attach_metadata`."""
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return ModelInfo.from_json(prop.value)
    raise ModelFormatError(f"the model has no {METADATA_KEY!r} metadata")
