"""Bring your own model: `prepare_model` turns any ONNX vision network into one the runtime reads.

It reads the raw graph (semdict_onnx/_layer_catalog.py), checks every option against it, edits
the graph (semdict_onnx/_graph_rewrite.py: a preprocessing prologue taking NHWC RGB in [0, 1],
NHWC outputs for the chosen layers, an optional softmax), runs the result once under ONNX
Runtime to read the layers' shapes (and once more at another size to learn whether other
sizes work), and writes it atomically with its model card (semdict_onnx/metadata.py). Any
error stops it before anything is written. `prepared_model` does the same in memory.

It is somewhat over 400 lines because each option gets its own check with its own message;
splitting the checks from the steps they guard would scatter one flow over two files.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from ._atomic import write_bytes_atomic
from ._graph_rewrite import LayerOutput, add_prologue, set_outputs
from ._layer_catalog import Catalog, LayerCandidate, catalog, token_layer
from ._metadata import InputInfo, LayerInfo, ModelInfo, Preprocessing
from ._model_card import card_of, read_labels, write_card
from ._onnx_graph import load_onnx
from ._receptive_field import ReceptiveField, given_field
from ._subgraph import prune
from .errors import ModelFormatError, PrepareError, UnknownLayerError

INPUT_NAME = "image"
PROBABILITIES = "probabilities"
# Generic graph names exporters write, never a network's name.
_GENERIC_GRAPH_NAMES = {"", "main_graph", "torch_jit", "torch-jit-export", "tf2onnx", "graph"}


@dataclass(frozen=True)
class PrepareOptions:
    """Everything `prepare_model` takes besides the source, the output and the layers."""

    preprocessing: str | Preprocessing | None = None
    value_range: tuple[float, float] | None = None
    channel_order: str | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    layout: str | None = None
    input_name: str | None = None
    input_size: int | tuple[int, int] | None = None
    class_output: str | None = None
    logits: bool = False
    labels: Sequence[str] | str | os.PathLike[str] | None = None
    extra_tokens: int | Mapping[str, int] | None = None
    crop_sizes: Mapping[str, int] | None = None
    network: str | None = None


def prepare_model(
    source: str | os.PathLike[str] | onnx.ModelProto,
    output: str | os.PathLike[str],
    layers: Sequence[str] | Mapping[str, str],
    *,
    preprocessing: str | Preprocessing | None = None,
    value_range: tuple[float, float] | None = None,
    channel_order: str | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    layout: str | None = None,
    input_name: str | None = None,
    input_size: int | tuple[int, int] | None = None,
    class_output: str | None = None,
    logits: bool = False,
    labels: Sequence[str] | str | os.PathLike[str] | None = None,
    extra_tokens: int | Mapping[str, int] | None = None,
    crop_sizes: Mapping[str, int] | None = None,
    network: str | None = None,
) -> ModelInfo:
    """Write `output`: the ONNX network `source` with `layers` as outputs and its model card.

    `layers` are tensor names (see `list_layers`), or a mapping {short name: tensor name}.
    `preprocessing` is a preset ("torchvision", "caffe", "tf", "unit", "bytes") or a
    Preprocessing; `value_range`, `channel_order`, `mean` and `std` set or override its fields.
    `layout` ("NCHW"/"NHWC") is needed only where the graph does not say; `input_size` is the
    trained (height, width) of a graph that leaves it open (default 224; a fixed graph's own
    size otherwise). `class_output` names a [N, classes] tensor; `logits=True` adds a softmax;
    `labels` is a list or a text file of one class name per line. `extra_tokens` sets how many
    leading tokens token layers drop (inferred otherwise); `crop_sizes` {layer: pixels} gives
    crops where the receptive field cannot be computed. Returns the model card written.
    """
    options = PrepareOptions(
        preprocessing, value_range, channel_order, mean, std, layout, input_name, input_size,
        class_output, logits, labels, extra_tokens, crop_sizes, network,
    )  # fmt: skip
    if isinstance(source, (str, os.PathLike)) and _same_file(source, output):
        raise PrepareError(
            f"the output {str(output)!r} is the source file itself; write the prepared network "
            "to a new file (the raw one is what list_layers and prepare_model read)"
        )
    model, info = prepared_model(source, layers, options)
    write_bytes_atomic(output, model.SerializeToString())
    return info


def _same_file(source: str | os.PathLike[str], output: str | os.PathLike[str]) -> bool:
    """Whether `output` names the file `source` (an existing one)."""
    first, second = Path(source).expanduser(), Path(output).expanduser()
    try:
        return first.exists() and second.exists() and os.path.samefile(first, second)
    except OSError:
        return False


def prepared_model(
    source: str | os.PathLike[str] | onnx.ModelProto,
    layers: Sequence[str] | Mapping[str, str],
    options: PrepareOptions | None = None,
) -> tuple[onnx.ModelProto, ModelInfo]:
    """The prepared network and its card, in memory (what `prepare_model` writes)."""
    options = options or PrepareOptions()
    model = load_onnx(source)
    if card_of(model) is not None:
        where = f"{str(source)!r}" if isinstance(source, (str, os.PathLike)) else "this model"
        raise PrepareError(
            f"{where} is already prepared (it carries a semdict_onnx model card): load it with "
            "load_model(path) and no options; prepare the raw network it came from to change "
            "its layers or preprocessing"
        )
    digest = _source_sha256(source, model)
    network = options.network or _network_name(source, model)
    preprocessing = _preprocessing(options)
    found = catalog(model, options.input_size, options.layout, options.input_name)
    chosen = _chosen_layers(found, layers, options.extra_tokens)
    fields = _fields(found, chosen, options.crop_sizes)
    class_tensor, classes = _class_output(found, options)
    labels = None
    if options.labels is not None:
        labels = read_labels(options.labels, classes, options.class_output)
    class_name = _class_name(found, chosen, class_tensor, options.logits)
    new_input = _fresh_name(found, INPUT_NAME, [c.name for c in chosen])
    source_input, types = found.input, dict(found.types)
    size = found.size
    add_prologue(
        model.graph, source_input, new_input, found.layout, size if found.fixed_size else None,
        preprocessing,
    )  # fmt: skip
    set_outputs(model.graph, chosen, class_tensor, class_name, options.logits, types)
    model = _pruned(model)
    stride = max(max(round(j) for j in f.jump) for f in _walked_fields(found))
    variable = not found.fixed_size and _takes_other_sizes(model, new_input, size, stride)
    if not found.fixed_size and not variable:
        _fix_input_size(model.graph, new_input, size)
    shapes = _output_shapes(model, new_input, size)
    info = ModelInfo(
        network=network,
        input=InputInfo(
            name=new_input,
            height=size[0],
            width=size[1],
            value_range=(0.0, 1.0),
            network_range=preprocessing.network_range(),
            variable_size=variable,
            min_side=stride if variable else 1,
            stride=stride,
            layout=found.layout,
            preprocessing=preprocessing,
        ),
        layers=tuple(_layer_info(layer, fields[layer.name], shapes) for layer in chosen),
        source_sha256=digest,
        replica=False,
        class_output=class_name,
        num_classes=classes,
        labels=labels,
    )
    write_card(model, info)
    return model, info


def _pruned(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` cut down to what its outputs need (no stale value infos: ORT infers shapes)."""
    pruned = prune(model, [value.name for value in model.graph.output])
    del pruned.graph.value_info[:]
    pruned.ir_version = model.ir_version
    pruned.graph.name = model.graph.name  # the Extractor names it "Extracted from {...}"
    return pruned


def _source_sha256(source: object, model: onnx.ModelProto) -> str:
    """The SHA-256 of the source file (or of the given ModelProto's bytes)."""
    if isinstance(source, onnx.ModelProto):
        return hashlib.sha256(model.SerializeToString()).hexdigest()
    digest = hashlib.sha256()
    with open(Path(source).expanduser(), "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _preprocessing(options: PrepareOptions) -> Preprocessing:
    """The preset (or given Preprocessing, default: unit range) with the given overrides."""
    base = options.preprocessing
    if base is None:
        base = Preprocessing()
    elif isinstance(base, str):
        base = Preprocessing.preset(base)
    elif not isinstance(base, Preprocessing):
        raise PrepareError(f"preprocessing must be a preset name or a Preprocessing, not {base!r}")
    return base.with_overrides(
        value_range=options.value_range,
        channel_order=options.channel_order,
        mean=options.mean,
        std=options.std,
    )


def _chosen_layers(
    found: Catalog, layers: Sequence[str] | Mapping[str, str], extra: int | Mapping[str, int] | None
) -> list[LayerOutput]:
    """The layers asked for, each checked against the graph: (short name, candidate)."""
    if isinstance(layers, str):
        layers = [layers]
    pairs = list(layers.items()) if isinstance(layers, Mapping) else [(t, t) for t in layers]
    if not pairs:
        raise PrepareError("no layers given: pass tensor names from list_layers(path)")
    chosen, seen = [], set()
    for short, tensor in pairs:
        if not isinstance(short, str) or not short or not isinstance(tensor, str):
            raise PrepareError(f"layer names are non-empty strings, not {short!r}: {tensor!r}")
        if short in seen:
            raise PrepareError(f"the layer name {short!r} is given twice")
        seen.add(short)
        candidate = _candidate(found, short, tensor, extra)
        if short != tensor and short in found.shapes:
            raise PrepareError(
                f"the short name {short!r} is already a tensor of the graph; choose another"
            )
        chosen.append(LayerOutput(short, candidate))
    return chosen


def _candidate(
    found: Catalog, short: str, tensor: str, extra: int | Mapping[str, int] | None
) -> LayerCandidate:
    """The candidate for `tensor`, or a clear error: unknown, not a feature map, bad tokens."""
    wanted = extra.get(short, extra.get(tensor)) if isinstance(extra, Mapping) else extra
    if tensor not in found.shapes or tensor == found.input.name:
        close = difflib.get_close_matches(tensor, list(found.candidates), n=5, cutoff=0.5)
        close = close or difflib.get_close_matches(tensor, found.tensors, n=5, cutoff=0.5)
        hint = f"close names: {', '.join(close)}" if close else "no tensor has a close name"
        raise UnknownLayerError(
            f"the graph has no tensor {tensor!r} ({hint}); list_layers(path) or "
            "`semdict layers MODEL.onnx` lists the tensors that can be layers"
        )
    candidate = found.candidates.get(tensor)
    if wanted is not None:
        if not isinstance(wanted, int) or wanted < 0:
            raise PrepareError(
                f"extra_tokens (--extra-tokens) must be a non-negative int, not {wanted!r}"
            )
        if candidate is None or candidate.layout == "tokens":
            as_tokens = token_layer(found, tensor, wanted)
            if as_tokens is None:
                raise PrepareError(
                    f"{tensor!r} is shaped {found.shapes[tensor]}: with {wanted} extra tokens "
                    "its tokens are not the patch grid of the feature map it comes from "
                    f"({_token_hint(found, tensor)})"
                )
            return as_tokens
    if candidate is None:
        raise PrepareError(
            f"{tensor!r} is shaped {found.shapes[tensor]}, which is not a feature map "
            "([N, C, H, W] or [N, H, W, C] whose rows and columns the graph keeps, more than "
            "one position and channel) nor a token sequence [N, tokens, C]; list_layers(path) "
            "lists the tensors that are"
        )
    return candidate


def _token_hint(found: Catalog, tensor: str) -> str:
    """What the token count would have to be, from the patch grid upstream of `tensor`."""
    patch = found.patch_of.get(tensor)
    if patch is None:
        return "no patch-embedding feature map is upstream of it"
    _, grid = found.walked[patch]
    rows, cols = (grid.axes[i].length for i in sorted(grid.axes))
    return f"{patch!r} has {rows}x{cols} = {rows * cols} positions"


def _fields(
    found: Catalog, chosen: list[LayerOutput], crops: Mapping[str, int] | None
) -> dict[str, tuple[ReceptiveField, str]]:
    """Each layer's field at the default size and where it comes from."""
    crops = dict(crops or {})
    unknown = set(crops) - {layer.name for layer in chosen}
    if unknown:
        raise PrepareError(
            f"crop_sizes names {', '.join(sorted(unknown))}, which are not among the layers "
            f"({', '.join(layer.name for layer in chosen)})"
        )
    result, missing = {}, []
    for layer in chosen:
        candidate = layer.candidate
        crop = crops.get(layer.name)
        if crop is not None:
            if not isinstance(crop, int) or isinstance(crop, bool) or crop < 1:
                raise PrepareError(
                    f"crop size of {layer.name!r} must be a positive int, not {crop!r}"
                )
            result[layer.name] = (
                given_field(layer.name, crop, found.size, candidate.grid),
                "given",
            )
        elif candidate.field is None:
            missing.append(f"{layer.name!r} ({candidate.note})")
        else:
            source = "patch" if candidate.layout == "tokens" else "graph"
            result[layer.name] = (candidate.field, source)
    if missing:
        raise PrepareError(
            "the receptive field of these layers cannot be computed from the graph: "
            f"{'; '.join(missing)}. Pass crop_sizes={{layer: PIXELS}} (--crop-size LAYER=PX) "
            "for them"
        )
    return result


def _class_output(found: Catalog, options: PrepareOptions) -> tuple[str | None, int | None]:
    """The class tensor and its number of classes, checked to be [N, classes]."""
    name = options.class_output
    if name is None:
        if options.logits or options.labels is not None:
            raise PrepareError(
                "logits and labels need class_output=TENSOR (--class-output), the [N, classes] "
                "output"
            )
        return None, None
    shape = found.shapes.get(name)
    if shape is None:
        close = difflib.get_close_matches(name, found.tensors, n=5, cutoff=0.5)
        raise UnknownLayerError(
            f"the graph has no tensor {name!r} for the class output"
            + (f"; close names: {', '.join(close)}" if close else "")
        )
    if len(shape) != 2 or shape[1] is None or shape[1] < 2:
        raise PrepareError(
            f"class_output {name!r} is shaped {shape}, not [N, classes]; name the tensor of "
            "logits or probabilities"
        )
    return name, int(shape[1])


def _class_name(
    found: Catalog, chosen: list[LayerOutput], tensor: str | None, softmax: bool
) -> str | None:
    """The class output's name in the prepared graph."""
    if tensor is None:
        return None
    if not softmax:
        if tensor in {layer.name for layer in chosen}:
            raise PrepareError(f"{tensor!r} is both a layer name and the class output")
        return tensor
    return _fresh_name(found, PROBABILITIES, [layer.name for layer in chosen])


def _fresh_name(found: Catalog, wanted: str, taken: list[str]) -> str:
    """`wanted`, or `wanted_2`, ... : a name neither the graph nor the layers use."""
    used = set(found.shapes) | set(taken) | {found.input.name}
    name, number = wanted, 1
    while name in used:
        number += 1
        name = f"{wanted}_{number}"
    return name


def _walked_fields(found: Catalog) -> list[ReceptiveField]:
    """The fields of every walked feature map of the network (for its total stride)."""
    fields = [c.field for c in found.candidates.values() if c.field is not None]
    return fields or [ReceptiveField("input", (1, 1), (1, 1), (0.5, 0.5), found.size, found.size)]


def _session(model: onnx.ModelProto):
    """A CPU ONNX Runtime session of `model`, quiet."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _probe(model: onnx.ModelProto, input_name: str, size: tuple[int, int]) -> dict[str, tuple]:
    """The output shapes of one run on two random images of `size`."""
    session = _session(model)
    batch = np.random.default_rng(0).random((2, *size, 3), dtype=np.float32)
    names = [out.name for out in session.get_outputs()]
    return {n: v.shape for n, v in zip(names, session.run(names, {input_name: batch}), strict=True)}


def _takes_other_sizes(
    model: onnx.ModelProto, input_name: str, size: tuple[int, int], stride: int
) -> bool:
    """Whether a graph with open height and width really runs at another size."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

    other = (size[0] + stride, size[1] + 2 * stride)
    try:
        _probe(model, input_name, other)
    except (ort_errors.Fail, ort_errors.InvalidArgument, ort_errors.RuntimeException):
        return False
    return True


def _fix_input_size(graph: onnx.GraphProto, name: str, size: tuple[int, int]) -> None:
    """Give the input a fixed height and width (a graph that runs at one size only)."""
    value = next(v for v in graph.input if v.name == name)
    dims = value.type.tensor_type.shape.dim
    dims[1].Clear()
    dims[1].dim_value = size[0]
    dims[2].Clear()
    dims[2].dim_value = size[1]


def _output_shapes(model: onnx.ModelProto, input_name: str, size: tuple[int, int]) -> dict:
    """The prepared graph's output shapes at `size`, or why it does not run."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

    onnx.checker.check_model(model)
    try:
        return _probe(model, input_name, size)
    except (ort_errors.Fail, ort_errors.InvalidArgument, ort_errors.InvalidGraph,
            ort_errors.RuntimeException, ort_errors.NotImplemented) as exc:  # fmt: skip
        raise ModelFormatError(
            f"the prepared graph does not run under ONNX Runtime ({str(exc).splitlines()[0]})"
        ) from exc


def _layer_info(
    layer: LayerOutput, field_and_source: tuple[ReceptiveField, str], shapes: dict
) -> LayerInfo:
    """The card's entry for one layer, its size read from the prepared graph's own output."""
    field_, source = field_and_source
    candidate = layer.candidate
    shape = shapes[layer.name]
    if tuple(shape[1:]) != (*candidate.grid, candidate.channels):
        raise ModelFormatError(
            f"layer {layer.name!r} came out shaped {shape[1:]}, not the expected "
            f"{(*candidate.grid, candidate.channels)}; please report this graph"
        )
    return LayerInfo(
        name=layer.name,
        channels=candidate.channels,
        height=candidate.grid[0],
        width=candidate.grid[1],
        tensor=candidate.name if candidate.name != layer.name else None,
        layout=candidate.layout,
        extra_tokens=candidate.extra_tokens,
        field=field_.field_info(source, candidate.grid_tensor if source == "patch" else None),
    )


def _network_name(source: object, model: onnx.ModelProto) -> str:
    """The network's name: the graph's own where it is not an exporter's default, else the
    file's stem."""
    if model.graph.name and model.graph.name.lower() not in _GENERIC_GRAPH_NAMES:
        return model.graph.name
    if isinstance(source, (str, os.PathLike)):
        return Path(source).stem
    return "network"
