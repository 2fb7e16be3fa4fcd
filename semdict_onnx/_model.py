"""The runtime model: a prepared ONNX network, its model card, its provider, its activations.

`load_model()` opens a file written by the GoogLeNet export or `prepare_model`, checks that it
keeps the contract (the input and every layer named in its model card exist as graph inputs
and outputs) and picks the execution provider (_providers.py). Given a raw network (a file
with no card) and prepare options, it prepares it in memory (_prepare.py) and keeps the
prepared bytes, from which the runner makes its pruned and one-thread sessions and the
receptive fields are read (docs/own-models.md measures what that costs). Every network fact
(input size, layout, preprocessing, layer names, channel counts, the class output) comes from
the model card (_metadata.py), never from this module. `Model.activations` loads images in
batches (_images.py; at the default size, or another where the file allows it) and hands
each to a `SessionRunner` (_runner.py), which owns how the session runs it: with the
speedups, or plainly; or, with `precision="bf16"`, to an `OpenVINORunner`
(_openvino_runner.py). `default_model()` is the default file, loaded once per process.
A little over 400 lines: most of it is Model's one-line documented properties, and
load_model's checks of a file belong beside the class they make.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from . import _providers as providers_module
from ._card_shapes import check_card_shapes
from ._checks import positive_int
from ._defaults import DEFAULT_BATCH_SIZE
from ._images import ImageSource, InputSize, check_input_size, input_size_for, iter_batches
from ._metadata import METADATA_KEY, ModelInfo
from ._openvino_runner import (
    BF16,
    FLOAT32,
    INSTALL_HINT,
    OpenVINORunner,
    bf16_problem,
    check_precision,
    openvino_installed,
    precision_note,
)
from ._paths import default_model_path
from ._runner import SessionRunner, speedups_wanted
from .errors import (
    ModelFormatError,
    ModelNotFoundError,
    OptionError,
    ProviderError,
    ProviderWarning,
    UnknownLayerError,
)

_EXPORT_HINT = (
    "create it with `python scripts/export.py` (downloads Lucid's GoogLeNet once), or "
    "`python scripts/export.py --replica` on a machine without network (random weights, "
    "for testing), or pass load_model(path=...)"
)


class Model:
    """An exported network on ONNX Runtime; safe to call from several threads at once.

    How its session runs batches (with the speedups, or plainly) is _runner.py's concern.
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        info: ModelInfo,
        path: Path,
        *,
        speedups: bool = True,
        prepared: bytes | None = None,
        precision: str = FLOAT32,
        precision_note: str | None = None,
        threads: int | None = None,
    ) -> None:
        self._session = session
        self._info = info
        self._path = path
        self._prepared = prepared
        low, high = info.input.value_range
        self._input_scale = (float(low), float(high) - float(low))
        self._precision = precision
        self._precision_note = precision_note
        self._lock = threading.Lock()
        self._float32_runner: SessionRunner | None = None
        self._runner: SessionRunner | OpenVINORunner = (
            OpenVINORunner(self.source)
            if precision == BF16
            else SessionRunner(
                session, self.source, info.input.name, speedups=speedups, threads=threads
            )
        )

    @property
    def info(self) -> ModelInfo:
        """The model card from the file's metadata."""
        return self._info

    @property
    def path(self) -> Path:
        """The ONNX file this model was loaded from."""
        return self._path

    @property
    def prepared_in_memory(self) -> bool:
        """True when `path` is a raw network that `load_model` prepared in memory."""
        return self._prepared is not None

    @property
    def source(self) -> Path | bytes:
        """What the session was made from: the file, or the prepared network's bytes."""
        return self._path if self._prepared is None else self._prepared

    @property
    def provider(self) -> str:
        """The execution provider ONNX Runtime really runs this model on (or OpenVINO's CPU)."""
        return "OpenVINO CPU" if self._precision == BF16 else self._session.get_providers()[0]

    @property
    def speedups(self) -> bool:
        """Whether batches run with the speedups (pruned sessions, per-core runs; _runner.py)."""
        return self._runner.speedups

    @property
    def precision(self) -> str:
        """'float32', or 'bf16' where load_model(..., precision="bf16") could run it."""
        return self._precision

    @property
    def precision_note(self) -> str | None:
        """What pages made from this model say about its arithmetic; None for plain float32."""
        return self._precision_note

    @property
    def is_replica(self) -> bool:
        """True when the weights are random (a replica built by `scripts/export.py --replica`)."""
        return self._info.replica

    @property
    def layers(self) -> dict[str, int]:
        """Activation layer names and their channel counts, in network order."""
        return {layer.name: layer.channels for layer in self._info.layers}

    @property
    def labels(self) -> tuple[str, ...] | None:
        """Class names of the class output, or None when the file does not know them."""
        return self._info.labels

    @property
    def input_size(self) -> tuple[int, int]:
        """The default (height, width) images are resized to (`size=None`)."""
        return self._info.input.default_size

    def input_size_for(
        self, image_size: tuple[int, int], size: InputSize = None
    ) -> tuple[int, int]:
        """The (height, width) one image of (height, width) `image_size` goes in at for `size`.

        None, the default for one image (a dictionary's): the image's aspect ratio with the
        default size's shorter side (224 for GoogLeNet) where the model takes any size, and the
        model's fixed size (the image resized to it) where it takes only one. An int S: the
        aspect ratio with the shorter side S (the longer rounded to a multiple of the network's
        stride); (height, width): that. An error says which sizes this model takes when it
        cannot take an int's or a pair's result.
        """
        info = self._info.input
        if size is None:
            if not info.variable_size:
                return info.default_size
            size = min(info.default_size)
        wanted = input_size_for(image_size, size, info.default_size, info.stride)
        return info.check_size(*wanted)

    def __repr__(self) -> str:
        layers = ", ".join(f"{name}({channels})" for name, channels in self.layers.items())
        height, width = self.input_size
        weights = (
            "REPLICA: random weights, activations mean nothing"
            if self.is_replica
            else f"source sha256 {self._info.source_sha256[:12]}"
        )
        origin = "prepared in memory from" if self.prepared_in_memory else "from"
        return (
            f"<Model {self._info.network} {origin} {str(self._path)!r} on {self.provider}; "
            f"input {height}x{width} {self._info.input.layout}, {_preprocessing_words(self)}; "
            f"layers {layers}; "
            f"class output {self._info.class_output}; {weights}"
            f"{'; bfloat16' if self._precision == BF16 else ''}"
            f"{'' if self.speedups or self._precision == BF16 else '; speedups off'}>"
        )

    def _output_names(self, layers: str | Sequence[str] | None) -> list[str]:
        """The ONNX outputs to compute for `layers` (None: every activation layer)."""
        if layers is None:
            return self._info.layer_names
        requested = [layers] if isinstance(layers, str) else list(layers)
        valid = self._info.layer_names + [self._info.class_output] * bool(self._info.class_output)
        if not requested:
            raise UnknownLayerError(
                f"no layers asked for; pass layers=None for all, or some of: {', '.join(valid)}"
            )
        for name in requested:
            if name not in valid:
                raise UnknownLayerError(
                    f"unknown layer {name!r}; this model has: {', '.join(valid)}"
                )
        return list(dict.fromkeys(requested))

    def activations(
        self,
        images: ImageSource | Sequence[ImageSource],
        layers: str | Sequence[str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        size: InputSize = None,
    ) -> dict[str, np.ndarray]:
        """Float32 activations [N, H, W, C] per layer (class output: [N, classes]) of images.

        One array per layer holds one grid size, so `size` is one size for every image: None,
        the model's default size (224x224 for GoogLeNet; images of any shape stretched to it);
        an exact (height, width); or a shorter side S keeping each image's aspect ratio, where
        every image must then come out at one size (images of one aspect ratio, or one image
        per call, as `semantic_dict` does).
        """
        return self._activations_on(self._runner, images, layers, batch_size, size)

    def float32_activations(
        self,
        images: ImageSource | Sequence[ImageSource],
        layers: str | Sequence[str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        size: InputSize = None,
    ) -> dict[str, np.ndarray]:
        """As `activations`, in float32 on ONNX Runtime whatever this model's precision.

        For comparing a bfloat16 model's results with float32's; the same as `activations`
        for a float32 model.
        """
        if self._precision == FLOAT32:
            return self.activations(images, layers, batch_size, size)
        with self._lock:
            if self._float32_runner is None:
                self._float32_runner = SessionRunner(
                    self._session, self.source, self._info.input.name, speedups=True
                )
        return self._activations_on(self._float32_runner, images, layers, batch_size, size)

    def _activations_on(
        self,
        runner: SessionRunner | OpenVINORunner,
        images: ImageSource | Sequence[ImageSource],
        layers: str | Sequence[str] | None,
        batch_size: int,
        size: InputSize,
    ) -> dict[str, np.ndarray]:
        """`activations`, computed by `runner`."""
        names = self._output_names(layers)
        size = check_input_size(size)
        offset, span = self._input_scale
        chunks: dict[str, list[np.ndarray]] = {name: [] for name in names}
        if isinstance(size, int):

            def fit(height: int, width: int) -> tuple[int, int]:
                return self.input_size_for((height, width), size)

            batches = iter_batches(images, fit, batch_size)
        else:  # one size for every image, checked before any is read
            fixed = self._info.input.check_size(*(size or self.input_size))
            batches = iter_batches(images, fixed, batch_size)
        for batch in batches:
            if (offset, span) != (0.0, 1.0):
                batch = batch * np.float32(span) + np.float32(offset)
            for name, value in zip(names, runner.run(names, batch), strict=True):
                chunks[name].append(value)
        return {
            name: np.ascontiguousarray(
                parts[0] if len(parts) == 1 else np.concatenate(parts), dtype=np.float32
            )
            for name, parts in chunks.items()
        }


def _preprocessing_words(model: Model) -> str:
    """The input's preprocessing in words, for the repr."""
    given = model.info.input
    if given.preprocessing is not None:
        return given.preprocessing.describe()
    low, high = given.network_range
    return f"RGB [0, 1] -> [{low:g}, {high:g}]"


def _read_info(session: ort.InferenceSession, path: Path) -> ModelInfo:
    """The model card in the session's metadata, checked against the graph's inputs/outputs."""
    metadata = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in metadata:
        raise ModelFormatError(
            f"{path} is an ONNX model without {METADATA_KEY!r} metadata: a raw network, not yet "
            f"prepared. List the layers it offers with `semdict layers {path}` (or "
            "list_layers(path)), then load it with load_model(path, layers={SHORT: TENSOR}, "
            "preprocessing=...) (prepared in memory at each load), or prepare it once with "
            "prepare_model(path, OUT, layers, ...) or `semdict prepare`; for GoogLeNet, "
            "`semdict export` writes a prepared file"
        )
    try:
        info = ModelInfo.from_json(metadata[METADATA_KEY])
    except ModelFormatError as exc:
        raise ModelFormatError(f"{path}: {exc}") from exc
    inputs = {node.name: node for node in session.get_inputs()}
    outputs = {node.name: node for node in session.get_outputs()}
    graph_input = inputs.get(info.input.name)
    if graph_input is None or len(graph_input.shape) != 4 or graph_input.type != "tensor(float)":
        raise ModelFormatError(
            f"{path}: its metadata names a float32 NHWC image input {info.input.name!r} but the "
            f"graph's inputs are {[(n.name, n.type, n.shape) for n in inputs.values()]}; "
            "re-export it with `python scripts/export.py`"
        )
    if info.input.variable_size and any(isinstance(d, int) for d in graph_input.shape[1:3]):
        raise ModelFormatError(
            f"{path}: its metadata says the input takes {info.input.describe_sizes()}, but the "
            f"graph's input {info.input.name!r} is fixed at {graph_input.shape}; re-export it "
            "with `python scripts/export.py`"
        )
    wanted = info.layer_names + ([info.class_output] if info.class_output else [])
    missing = [name for name in wanted if name not in outputs]
    if missing:
        raise ModelFormatError(
            f"{path}: its metadata lists {', '.join(missing)} but the graph has no such "
            f"output (it has {', '.join(outputs)}); re-export it with `python scripts/export.py`"
        )
    check_card_shapes(info, graph_input.shape, {n: outputs[n].shape for n in wanted}, path)
    return info


def load_model(
    path: str | os.PathLike[str] | None = None,
    providers: Sequence[providers_module.ProviderSpec] | None = None,
    *,
    speedups: bool | None = None,
    precision: str = FLOAT32,
    layers: Sequence[str] | dict[str, str] | None = None,
    threads: int | None = None,
    **prepare_options: Any,
) -> Model:
    """Open a prepared ONNX model (default: the file `semdict export` writes).

    A raw network (an ONNX file without a model card) is prepared in memory when `layers` and
    the options of `prepare_model` are given (`preprocessing`, `mean`, `std`, `value_range`,
    `channel_order`, `layout`, `input_name`, `input_size`, `class_output`, `logits`, `labels`,
    `extra_tokens`, `crop_sizes`, `network`); preparing once with `prepare_model` saves doing
    it at every load. `speedups=False` runs every batch as one plain run of the session,
    without the pruned sessions and per-core runs (for debugging and comparing); None: on
    unless the environment sets SEMDICT_ONNX_SPEEDUPS=0.
    `precision="bf16"` runs it in bfloat16 through OpenVINO on a processor with AVX-512 BF16
    or AMX (the `bf16` extra), faster but with top channels that can differ from float32's;
    elsewhere it warns and runs float32. `threads` caps the CPU cores a run uses (default:
    every core this process may run on), as for a Ray actor given one of a machine's cores.
    """
    wanted = speedups_wanted(speedups)
    if threads is not None:
        positive_int(threads, "threads")
    precision, note = _precision_here(check_precision(precision), providers)
    if precision == BF16:
        providers = [providers_module.CPU]  # the session only reads and checks the file
    model_path = Path(path).expanduser() if path is not None else default_model_path()
    if not model_path.exists():
        raise ModelNotFoundError(f"no exported model at {model_path}; {_EXPORT_HINT}")
    if not model_path.is_file():
        raise ModelFormatError(f"{model_path} is a folder, not an ONNX model file")
    prepared = None
    if layers is not None or prepare_options:
        prepared = _prepared_bytes(model_path, layers, prepare_options)
    try:
        session = providers_module.create_session(
            model_path if prepared is None else prepared, providers, threads or 0
        )
    except providers_module.LOAD_ERRORS as exc:
        raise ModelFormatError(
            f"{model_path} is not an ONNX model ONNX Runtime {ort.__version__} can load "
            f"({str(exc).splitlines()[0]}); if it was cut short or made by another version, "
            f"re-export it: {_EXPORT_HINT}"
        ) from exc
    info = _read_info(session, model_path)
    return Model(
        session,
        info,
        model_path,
        speedups=wanted,
        prepared=prepared,
        precision=precision,
        precision_note=note,
        threads=threads,
    )


def _prepared_bytes(
    path: Path, layers: Sequence[str] | dict[str, str] | None, options: dict[str, Any]
) -> bytes:
    """The raw network at `path` prepared with `layers` and prepare_model's `options`."""
    from ._prepare import PrepareOptions, prepared_model

    known = [option.name for option in fields(PrepareOptions)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise OptionError(
            f"load_model takes no option {', '.join(unknown)}; besides path, providers and "
            f"speedups it takes layers and prepare_model's options: {', '.join(known)}"
        )
    if layers is None:
        raise OptionError(
            f"{', '.join(sorted(options))} given without layers: to prepare a raw network in "
            "memory, name its layers too (load_model(path, layers={SHORT: TENSOR}, ...); "
            f"`semdict layers {path}` lists them)"
        )
    model, _ = prepared_model(path, layers, PrepareOptions(**options))
    return model.SerializeToString()


def _precision_here(
    precision: str, providers: Sequence[providers_module.ProviderSpec] | None
) -> tuple[str, str | None]:
    """The precision that will run and the note pages carry: bf16 where it can, else float32."""
    if precision == FLOAT32:
        return FLOAT32, None
    if providers is not None:
        raise OptionError(
            "precision='bf16' runs on the CPU through OpenVINO; leave providers out, or ask "
            "for float32 to run on the providers given"
        )
    if not openvino_installed():
        raise ProviderError(
            f"precision='bf16' needs OpenVINO, which is not installed: {INSTALL_HINT}"
        )
    problem = bf16_problem()
    if problem is None:
        return BF16, precision_note()
    note = f"bfloat16 was asked for, but {problem}: activations computed in float32."
    warnings.warn(note, ProviderWarning, stacklevel=3)
    return FLOAT32, note


def as_model(model: Model | str | os.PathLike[str] | None) -> Model:
    """`model` itself, or the model loaded from a path (None: the default file)."""
    return model if isinstance(model, Model) else load_model(model)


@functools.lru_cache(maxsize=1)
def default_model() -> Model:
    """The model at the default path, loaded once per process (for `model=None`)."""
    return load_model()
