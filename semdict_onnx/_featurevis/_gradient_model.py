"""The gradient model: one ONNX graph computing a layer's objective and its image gradient.

`build_gradient_model` keeps only the forward nodes a layer needs (_subgraph.prune), adds
the objective (per batch item, `weights . mean over positions of the layer`: Lucid's channel
objective for a one-hot weight row, a neuron group or a basis direction otherwise) and the
backward pass
(_backward.py with the rules of _vjp.py). Its inputs are the model's own image input, any
batch size and (for a model that takes several) any image size, in the model's value range,
and `objective_weights` [N, channels]; its outputs are `objective` [N] and `image_gradient`
(d objective / d image, shaped like the image). `GradientSession` runs it on the execution
provider the model runs on, with IO binding: on CUDA the weights stay on the device.
"""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from copy import deepcopy

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from .. import _providers as providers
from .._metadata import ModelInfo
from .._model import Model
from .._parallel import usable_cores
from .._subgraph import prune
from ..errors import GradientRuleError, ModelFormatError, RenderError
from ._backward import Backward, Emitter
from ._channel_window import channel_windows
from ._vjp import RULES

WEIGHTS = "objective_weights"
OBJECTIVE = "objective"
IMAGE_GRADIENT = "image_gradient"
# The opset the gradient's ops are written for (ScatterElements with reduction "add" needs 16).
MIN_OPSET = 17
# Batch size of the probe run that measures every tensor's shape: 2, so that a broadcast
# along the batch axis (size 1) cannot be mistaken for the batch itself.
PROBE_BATCH = 2


def _default_opset(model: onnx.ModelProto) -> int:
    """The model's opset of the default ONNX domain."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ModelFormatError("the model imports no opset of the default ONNX domain")


def _with_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model itself at opset MIN_OPSET or later (converted by onnx's version converter)."""
    if _default_opset(model) >= MIN_OPSET:
        return model
    from onnx import version_converter

    try:
        return version_converter.convert_version(model, MIN_OPSET)
    except Exception as exc:  # the converter raises plain RuntimeErrors and friends
        raise ModelFormatError(
            f"the model is at opset {_default_opset(model)} and onnx cannot convert it to "
            f"opset {MIN_OPSET}, which the gradient needs ({exc}); re-export it at opset "
            f"{MIN_OPSET} or later"
        ) from exc


def _constants(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> dict[str, np.ndarray]:
    """The values of the initializers and Constant nodes among `nodes`."""
    values = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    for node in nodes:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _probe(
    model: onnx.ModelProto, nodes: list[onnx.NodeProto], info: ModelInfo
) -> tuple[dict[str, tuple[int, ...]], set[str]]:
    """Every tensor's shape in one run at the default size, and which tensors are float."""
    graph = model.graph
    image = next(value for value in graph.input if value.name == info.input.name)
    names = [name for node in nodes for name in node.output if name]
    used = {name for node in nodes for name in node.input}
    probe = helper.make_graph(
        nodes,
        "probe",
        [image],
        [helper.make_empty_tensor_value_info(name) for name in names],
        [tensor for tensor in graph.initializer if tensor.name in used],
    )
    proto = helper.make_model(probe, opset_imports=model.opset_import, ir_version=model.ir_version)
    batch = image.type.tensor_type.shape.dim[0]
    count = batch.dim_value if batch.HasField("dim_value") else PROBE_BATCH
    low, high = info.input.value_range
    pixels = np.full((count, *info.input.default_size, 3), (low + high) / 2, np.float32)
    options = providers.session_options()
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=[providers.CPU])
    values = session.run(names, {info.input.name: pixels})
    shapes = {name: tuple(value.shape) for name, value in zip(names, values, strict=True)}
    shapes[info.input.name] = pixels.shape
    floats = {name for name, value in zip(names, values, strict=True) if value.dtype == np.float32}
    return shapes, floats | {info.input.name}


def build_gradient_model(
    source: onnx.ModelProto, info: ModelInfo, layer: str, redirect_relu: bool = False
) -> onnx.ModelProto:
    """The gradient model of `layer` (an [N, H, W, C] output named in the model card).

    `redirect_relu`: Lucid's redirected ReLU gradient instead of the true one (_vjp.py).
    """
    layer_info = info.layer(layer)
    model = prune(_with_opset(source), [layer])  # only the nodes the layer needs
    graph = model.graph
    image_name = info.input.name
    image = next((value for value in graph.input if value.name == image_name), None)
    if image is None or image.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise ModelFormatError(
            f"the model has no float32 input {image_name!r}, which its model card names"
        )
    nodes = [deepcopy(node) for node in graph.node]
    taken = {name for node in nodes for name in (*node.input, *node.output, node.name)}
    taken |= {tensor.name for tensor in graph.initializer}
    nodes, added = channel_windows(nodes, _constants(graph, nodes), taken, _default_opset(model))
    graph.initializer.extend(added)
    constants = _constants(graph, nodes)
    shapes, floats = _probe(model, nodes, info)
    target = f"layer {layer!r}"
    if len(shapes.get(layer, ())) != 4:
        raise GradientRuleError(
            f"{target} is not an [N, H, W, C] tensor: at the default size it is {shapes.get(layer)}"
        )
    taken = {name for node in nodes for name in (*node.input, *node.output)}
    clashes = taken & {WEIGHTS, OBJECTIVE, IMAGE_GRADIENT}
    if clashes:
        raise ModelFormatError(
            f"the model already has tensors named {sorted(clashes)}, which the gradient model "
            "needs for its own inputs and outputs; rename them in the model"
        )
    opset = _default_opset(model)
    backward = Backward(nodes, constants, shapes, floats, opset, RULES, target, redirect_relu)
    # objective = sum_c weights[n, c] * mean_{h, w} layer[n, h, w, c]; its gradient w.r.t. the
    # layer is weights / (H * W) at every position.
    objective = Emitter(opset, taken, "objective")
    mean = objective.reduce("ReduceMean", layer, [1, 2], keepdims=False)
    weighted = objective.op("Mul", mean, WEIGHTS)
    objective.nodes.append(
        helper.make_node("ReduceSum", [weighted, objective.ints([1])], [OBJECTIVE], keepdims=0)
    )
    positions = objective.as_float(
        objective.reduce("ReduceProd", objective.shape(layer, 1, 3), [0], keepdims=False)
    )
    per_position = objective.op(
        "Unsqueeze", objective.op("Div", WEIGHTS, positions), objective.ints([1, 2])
    )
    seed = objective.op("Expand", per_position, objective.shape(layer))
    gradient = backward.gradient({layer: seed}, image_name)
    backward.nodes.append(helper.make_node("Identity", [gradient], [IMAGE_GRADIENT]))
    used = {name for node in nodes for name in node.input}
    batch = image.type.tensor_type.shape.dim[0]
    batch_dim = batch.dim_value if batch.HasField("dim_value") else (batch.dim_param or "batch")
    result = helper.make_graph(
        [*nodes, *objective.nodes, *backward.nodes],
        f"gradient of {layer}",
        [
            image,
            helper.make_tensor_value_info(
                WEIGHTS, onnx.TensorProto.FLOAT, [batch_dim, layer_info.channels]
            ),
        ],
        [
            helper.make_tensor_value_info(OBJECTIVE, onnx.TensorProto.FLOAT, [batch_dim]),
            helper.make_value_info(IMAGE_GRADIENT, deepcopy(image.type)),
        ],
        [tensor for tensor in graph.initializer if tensor.name in used]
        + objective.initializers
        + backward.initializers,
    )
    return helper.make_model(result, opset_imports=model.opset_import, ir_version=model.ir_version)


class GradientSession:
    """A layer's gradient model on ONNX Runtime, on the execution provider its model runs on.

    Call `set_weights` once per batch of objectives, then call it with images: it returns
    the objective [N] and its gradient with respect to the images. On the CPU a batch runs as
    one one-thread run per core at once (as parallel.py runs the model's batches), each on
    its share of the images (`share`, which _optimization.py also calls from its own
    threads); a single image uses every core through ONNX Runtime's own pool.
    """

    def __init__(self, model: Model, layer: str, redirect_relu: bool = False) -> None:
        graph = model.source  # the file, or the bytes of a raw network prepared in memory
        source = onnx.load_from_string(graph) if isinstance(graph, bytes) else onnx.load(graph)
        proto = build_gradient_model(source, model.info, layer, redirect_relu)
        self._proto = proto.SerializeToString()
        # The same providers and provider options (CUDA device, TF32) as the model's session.
        self._template = model._session  # noqa: SLF001 - the package's own session, read only
        self._session = providers.session_like(self._proto, self._template)
        self.layer = layer
        self.channels = model.info.layer(layer).channels
        self.provider = self._session.get_providers()[0]
        options = self._session.get_provider_options().get(self.provider, {})
        on_cuda = self.provider == providers.CUDA
        self._device = ("cuda", int(options.get("device_id", 0))) if on_cuda else ("cpu", 0)
        self._input = model.info.input.name
        self._binding = self._session.io_binding()
        self._weights: np.ndarray | None = None
        self._weights_bound: ort.OrtValue | None = None
        cores = usable_cores()
        self._cores = cores if self.provider == providers.CPU and cores > 1 else 1
        self._twin: ort.InferenceSession | None = None
        self._twin_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def set_weights(self, weights: np.ndarray) -> None:
        """The objectives' weights [N, channels] for the calls that follow (kept on the device).

        Setting the same array object again costs nothing.
        """
        if weights is self._weights:
            return
        self._weights = weights
        values = np.ascontiguousarray(weights, dtype=np.float32)
        self._weights_bound = ort.OrtValue.ortvalue_from_numpy(values, *self._device)
        self._binding.bind_ortvalue_input(WEIGHTS, self._weights_bound)

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The objective [N] of `images` [N, H, W, 3] (model range) and its image gradient."""
        if self._weights is None or len(self._weights) != len(images):
            raise RenderError("set_weights with one row per image before computing gradients")
        images = np.ascontiguousarray(images, np.float32)
        if self._cores > 1 and len(images) > 1:
            return self._per_core(images)
        self._binding.bind_cpu_input(self._input, images)
        for name in (OBJECTIVE, IMAGE_GRADIENT):
            self._binding.bind_output(name, *self._device)
        self._session.run_with_iobinding(self._binding)
        objective, gradient = self._binding.copy_outputs_to_cpu()
        return objective, gradient

    @property
    def cores(self) -> int:
        """How many one-thread runs a batch is split into (1: one run on ONNX Runtime's pool)."""
        return self._cores

    def share(self, images: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One one-thread run (CPU) on a share of a batch: the objective and image gradient of
        `images` with their own rows of objective weights. Several may run at once."""
        if self._twin is None:
            with self._twin_lock:
                if self._twin is None:
                    self._twin = providers.session_like(
                        self._proto, self._template, intra_op_threads=1
                    )
        images = np.ascontiguousarray(images, np.float32)
        weights = np.ascontiguousarray(weights, np.float32)
        objective = np.empty(len(images), np.float32)
        gradient = np.empty_like(images)
        binding = self._twin.io_binding()
        binding.bind_cpu_input(self._input, images)
        binding.bind_cpu_input(WEIGHTS, weights)
        for name, out in ((OBJECTIVE, objective), (IMAGE_GRADIENT, gradient)):
            binding.bind_output(name, "cpu", 0, np.float32, out.shape, out.ctypes.data)
        self._twin.run_with_iobinding(binding)
        return objective, gradient

    def _per_core(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One one-thread run per core, each on a contiguous share of the batch."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._cores, thread_name_prefix="semdict-featurevis")
        weights = np.ascontiguousarray(self._weights, np.float32)
        bounds = np.linspace(0, len(images), min(self._cores, len(images)) + 1).astype(int)
        parts = list(
            self._pool.map(
                lambda start, stop: self.share(images[start:stop], weights[start:stop]),
                bounds[:-1],
                bounds[1:],
            )
        )
        objectives, gradients = zip(*parts, strict=True)
        return np.concatenate(objectives), np.concatenate(gradients)


_SESSIONS: weakref.WeakKeyDictionary[Model, dict[tuple[str, bool], GradientSession]] = (
    weakref.WeakKeyDictionary()
)


def gradient_session(model: Model, layer: str, redirect_relu: bool = False) -> GradientSession:
    """The gradient session of `layer` on `model`, built once per model, layer and kind."""
    per_model = _SESSIONS.setdefault(model, {})
    key = (layer, redirect_relu)
    if key not in per_model:
        per_model[key] = GradientSession(model, layer, redirect_relu)
    return per_model[key]
