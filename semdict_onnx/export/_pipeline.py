"""One export, from a GraphDef on disk to a checked ONNX model: the steps in order.

Load, convert (tf2onnx), rewrite for speed, describe (the model card, labels, spritemaps),
check against TensorFlow at two sizes, write atomically. A graph whose class head cannot be
made to take any input size is exported as a fixed-size (224x224) model, with a
FixedSizeWarning saying so, and checked at that size only. Getting the source graph and its
labels (download, cache) is here too; the command line is in _cli. The TensorFlow-side modules
are imported inside `export_graphdef`, so that importing this module stays instant.
"""

from __future__ import annotations

import time
import urllib.parse
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from semdict_onnx import _paths as paths
from semdict_onnx._atomic import write_bytes_atomic
from semdict_onnx._metadata import InputInfo, LayerInfo, ModelInfo
from semdict_onnx._model_card import read_labels as read_card_labels
from semdict_onnx._model_card import write_card
from semdict_onnx.errors import DownloadError, PrepareError

from ._download import cached_download, sha256_of
from ._errors import ConversionError, FixedSizeWarning, LabelsError
from ._googlenet import (
    CLASS_OUTPUT,
    INPUT_NAME,
    INPUT_SIZE,
    LABELS_NAME,
    MODELZOO,
    NETWORK,
    NETWORK_RANGE,
    OUTPUTS,
    REPLICA_NETWORK,
    VALUE_RANGE,
    spritemaps,
)

if TYPE_CHECKING:
    import onnx

    from ._parity import LayerParity

PARITY_IMAGES = 3
# The other input size the export checks: wider than tall, so swapped axes would show.
OTHER_SIZE = (224, 320)
OTHER_SIZE_IMAGES = 2
REPLICA_WARNING = (
    "REPLICA: this model has the real network's structure but RANDOM weights; "
    "its activations and classes mean nothing."
)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and measured."""

    path: Path
    info: ModelInfo
    parity: list[LayerParity]
    other_size_parity: list[LayerParity]
    seconds: float


def fetch_graphdef(
    url: str, cache_dir: Path, sha256: str | None = None, progress: bool = True
) -> Path:
    """The GraphDef from `url` in `cache_dir`, downloaded unless a verified copy is there."""
    dest = cache_dir / paths.GRAPHDEF_NAME
    try:
        path, reused = cached_download(url, dest, sha256=sha256, progress=progress)
    except DownloadError as exc:
        raise DownloadError(
            f"{exc}. Without network, download {url} elsewhere and run the export with "
            "`--graphdef PATH`, or use --replica for a random-weight stand-in"
        ) from exc
    print(f"{'using cached' if reused else 'downloaded'} {path}")
    return path


def _is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme in ("http", "https")


def read_labels(
    source: str | None, cache_dir: Path, classes: int, progress: bool = True
) -> tuple[str, ...] | None:
    """The class names from a path or http(s) URL (cached), checked to number `classes`."""
    if source is None:
        return None
    if _is_url(source):
        try:
            path, _ = cached_download(source, cache_dir / LABELS_NAME, progress=progress)
        except DownloadError as exc:
            raise DownloadError(
                f"{exc}; or pass --labels PATH with a local copy, or --labels none"
            ) from exc
    else:
        path = paths.local_path(source)
    try:
        return read_card_labels(path, classes, CLASS_OUTPUT)
    except PrepareError as exc:
        raise LabelsError(f"{exc}; pass --labels with {LABELS_NAME} from {MODELZOO}") from exc


def export_graphdef(
    graphdef_path: Path,
    output: Path,
    labels: str | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> ExportResult:
    """Convert, describe, check and atomically write the ONNX model of `graphdef_path`.

    `labels` is a path or URL of the class names (ignored for a replica). Nothing is
    written unless ONNX Runtime matches TensorFlow on every exported layer, at the default
    size (against the untouched source graph) and at OTHER_SIZE (against the source made
    size-independent, as converted). A graph whose class head is not Lucid's becomes a
    fixed-size model (FixedSizeWarning), checked at the default size only.
    """
    from ._convert import (
        class_head_problem,
        convert,
        layer_infos,
        load_graphdef,
        num_classes,
        variable_size_graphdef,
    )
    from ._optimize import optimize
    from ._parity import check_parity, format_parity, parity_images
    from ._replica import is_replica

    start = time.perf_counter()
    graph_def = load_graphdef(graphdef_path)
    replica = is_replica(graph_def)
    if replica:
        print(REPLICA_WARNING)
    problem = class_head_problem(graph_def)
    if problem is not None:
        warnings.warn(FixedSizeWarning(fixed_size_warning(problem)), stacklevel=2)
    print(f"converting {graphdef_path} with tf2onnx ...")
    model = convert(graph_def, variable_size=problem is None)
    for rewrite in optimize(model):
        print(f"  faster graph: {rewrite}")
    classes = num_classes(model)
    layers = with_fields(model, layer_infos(model))
    info = ModelInfo(
        network=REPLICA_NETWORK if replica else NETWORK,
        input=input_info(layers, variable_size=problem is None),
        layers=layers,
        source_sha256=sha256_of(graphdef_path),
        replica=replica,
        class_output=CLASS_OUTPUT,
        num_classes=classes,
        labels=None
        if replica
        else read_labels(labels, cache_dir or graphdef_path.parent, classes, progress),
        spritemaps={} if replica else spritemaps(),
    )
    write_card(model, info)
    data = model.SerializeToString()
    size = f"{INPUT_SIZE}x{INPUT_SIZE}"
    print(f"checking ONNX Runtime against TensorFlow on {PARITY_IMAGES} images at {size} ...")
    parity = check_parity(graph_def, data, parity_images(PARITY_IMAGES), list(OUTPUTS))
    print(format_parity(parity))
    resized: list[LayerParity] = []
    if problem is None:
        height, width = OTHER_SIZE
        print(f"... and at {height}x{width} on {OTHER_SIZE_IMAGES} images")
        images = parity_images(OTHER_SIZE_IMAGES, seed=1, height=height, width=width)
        resized = check_parity(variable_size_graphdef(graph_def), data, images, list(OUTPUTS))
        print(format_parity(resized))
    write_bytes_atomic(output, data)
    return ExportResult(output, info, parity, resized, time.perf_counter() - start)


def with_fields(model: onnx.ModelProto, layers: tuple[LayerInfo, ...]) -> tuple[LayerInfo, ...]:
    """`layers` with their receptive fields at the default size, walked through the graph as
    prepare_model walks them (left None for a layer the walk cannot see through)."""
    from semdict_onnx._receptive_field import graph_fields

    names = [layer.name for layer in layers]
    found = graph_fields(model, INPUT_NAME, (INPUT_SIZE, INPUT_SIZE), names)
    return tuple(
        replace(layer, field=None if field is None else field.field_info())
        for layer, field in ((layer, found[layer.name]) for layer in layers)
    )


def fixed_size_warning(problem: str) -> str:
    """What a user is told when the export falls back to a fixed-size model."""
    return (
        f"{problem}, so this graph cannot be made to take other input sizes; exporting a "
        f"FIXED-SIZE model instead: it takes only {INPUT_SIZE}x{INPUT_SIZE} images (the size "
        "the network was trained at), and every image is resized to that"
    )


def input_info(layers: tuple[LayerInfo, ...], variable_size: bool = True) -> InputInfo:
    """The image input: 224x224 by default, any size whose sides reach the total stride
    (`variable_size`), else 224x224 only."""
    coarsest = min(min(layer.height, layer.width) for layer in layers)
    stride = INPUT_SIZE // coarsest
    if stride * coarsest != INPUT_SIZE:
        raise ConversionError(
            f"the coarsest layer is {coarsest} positions across at {INPUT_SIZE} pixels, not a "
            "whole stride; the graph does not look like Lucid's InceptionV1"
        )
    return InputInfo(
        INPUT_NAME,
        INPUT_SIZE,
        INPUT_SIZE,
        VALUE_RANGE,
        NETWORK_RANGE,
        variable_size=variable_size,
        min_side=stride,
        stride=stride,
    )
