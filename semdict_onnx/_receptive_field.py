"""Receptive fields of a model's layers, read from its ONNX graph, and boxes of layer positions.

For every layer this walks back from the layer's output through the graph to the image input
(semdict_onnx/_graph_walker.py: kernels with their strides, dilations and pads, and the
element-wise, normalization, padding, concatenation, resize and reshape ops between them) to
find per spatial axis: the receptive field size in model-input pixels, the jump (distance in
input pixels between neighbouring positions) and the centre of position 0. A token layer's
field is its patch (the patch-embedding feature map named in the model card; attention sees
the whole image), and a layer the walk cannot see through has a crop size given by hand in
the card. Nothing here knows a particular network. Coordinates are continuous: input pixel i
covers [i, i + 1).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import onnx
from google.protobuf.message import DecodeError

from ._graph_walker import Axis, GraphWalker, Opaque, tidy
from ._metadata import METADATA_KEY, FieldInfo, LayerInfo, ModelInfo
from ._model_card import card_of
from ._onnx_graph import inferred_shapes
from .errors import ModelFormatError


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
    size: tuple[float, float]
    jump: tuple[float, float]
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

    def field_info(self, source: str = "graph", grid_tensor: str | None = None) -> FieldInfo:
        """This field as the model card stores it (`source` as in FieldInfo)."""
        return FieldInfo(self.size, self.jump, self.start, source, grid_tensor)


def receptive_fields(
    model: Any,
    layers: Iterable[str] | None = None,
    input_size: tuple[int, int] | None = None,
) -> dict[str, ReceptiveField]:
    """Receptive fields of `layers` (default: all) of a Model, prepared ONNX file or ModelProto.

    `input_size` is (height, width) of the model input; default: the size in the model card.
    """
    key = tuple(layers) if layers is not None else None
    if isinstance(model, onnx.ModelProto):
        return _fields(model, key, input_size)
    source = getattr(model, "source", None)
    if isinstance(source, bytes):  # a Model prepared in memory from a raw file
        found = _IN_MEMORY.setdefault(model, {})
        if (key, input_size) not in found:
            found[key, input_size] = _fields(onnx.load_from_string(source), key, input_size)
        return dict(found[key, input_size])
    path = Path(getattr(model, "path", model))
    return dict(_fields_of_file(str(path), path.stat().st_mtime_ns, key, input_size))


# Fields of Models prepared in memory, per model, kept as long as the model is.
_IN_MEMORY: weakref.WeakKeyDictionary[Any, dict[tuple, dict[str, ReceptiveField]]] = (
    weakref.WeakKeyDictionary()
)


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
    chosen = [info.layer(name) for name in names]

    def shapes() -> dict[str, tuple[int | None, ...]]:
        return inferred_shapes(proto, info.input.name, [1, height, width, 3])

    walker = GraphWalker(proto.graph, info.input.name, (height, width), (1, 2), shapes)
    return {layer.name: _field_of(walker, layer, (height, width)) for layer in chosen}


def _field_of(walker: GraphWalker, layer: LayerInfo, size: tuple[int, int]) -> ReceptiveField:
    """One layer's field at input `size`: walked, its token's patch, or given in the card."""
    card = layer.field
    if card is not None and card.source == "given":
        grid = tuple(max(1, round(side / jump)) for side, jump in zip(size, card.jump, strict=True))
        return ReceptiveField(layer.name, card.size, card.jump, card.start, size, grid)
    tensor = card.grid_tensor if card is not None and card.source == "patch" else layer.name
    found = walker.spatial(tensor)
    if isinstance(found, Opaque):
        raise ModelFormatError(
            f"cannot compute the receptive field of layer {layer.name!r}: it depends on "
            f"{found.reason}; prepare the model again giving this layer a crop size "
            f"(prepare_model(..., crop_sizes={{{layer.name!r}: PIXELS}}))"
        )
    axes = found.axes
    if tensor != layer.name:  # the patch grid, in either layout
        rows, cols = (axes[i] for i in sorted(axes))
    elif set(axes) == {1, 2}:
        rows, cols = axes[1], axes[2]
    else:
        raise ModelFormatError(
            f"layer {layer.name!r} does not keep rows and columns on axes 1 and 2 (NHWC); "
            "prepare or export the model again"
        )
    return ReceptiveField(
        layer=layer.name,
        size=(rows.size, cols.size),
        jump=(rows.jump, cols.jump),
        start=(rows.start, cols.start),
        input_size=size,
        grid=(rows.length, cols.length),
    )


def graph_fields(
    proto: onnx.ModelProto, input_name: str, size: tuple[int, int], tensors: Iterable[str]
) -> dict[str, ReceptiveField | None]:
    """The fields of NHWC `tensors` of a graph whose input `input_name` is NHWC, walked at
    input `size`; None for a tensor the walk cannot see through to rows and columns."""

    def shapes() -> dict[str, tuple[int | None, ...]]:
        return inferred_shapes(proto, input_name, [1, *size, 3])

    walker = GraphWalker(proto.graph, input_name, size, (1, 2), shapes)
    result: dict[str, ReceptiveField | None] = {}
    for name in tensors:
        found = walker.spatial(name)
        keeps_rows_and_cols = not isinstance(found, Opaque) and set(found.axes) == {1, 2}
        result[name] = field_from_axes(name, found.axes, size) if keeps_rows_and_cols else None
    return result


def field_from_axes(name: str, axes: dict[int, Axis], size: tuple[int, int]) -> ReceptiveField:
    """The ReceptiveField of a tensor whose two spatial axes the walk found, in axis order."""
    rows, cols = (axes[i] for i in sorted(axes))
    return ReceptiveField(
        name,
        (rows.size, cols.size),
        (rows.jump, cols.jump),
        (rows.start, cols.start),
        size,
        (rows.length, cols.length),
    )


def given_field(
    name: str, crop: int, size: tuple[int, int], grid: tuple[int, int]
) -> ReceptiveField:
    """A crop side given by hand for a layer whose positions tile the input evenly."""
    jump = tuple(tidy(side / cells) for side, cells in zip(size, grid, strict=True))
    start = tuple(tidy(step / 2) for step in jump)
    return ReceptiveField(name, (crop, crop), jump, start, size, grid)


def _model_info(proto: onnx.ModelProto) -> ModelInfo:
    """The model card stored in the ONNX metadata."""
    info = card_of(proto)
    if info is None:
        raise ModelFormatError(
            f"the ONNX model has no {METADATA_KEY!r} metadata; export it with `semdict export` "
            "or prepare it with prepare_model"
        )
    return info


def layer_fields_table(fields: dict[str, ReceptiveField]) -> str:
    """A Markdown table of receptive fields, one row per layer, for docs and the CLI."""
    lines = [
        "| layer | grid (rows x cols) | field size (px) | jump (px) | centre of position 0 (px) |",
        "|---|---|---|---|---|",
    ]
    for name, field in fields.items():
        lines.append(
            f"| {name} | {field.grid[0]} x {field.grid[1]} | {format_pair(field.size)} | "
            f"{format_pair(field.jump)} | {format_pair(field.start)} |"
        )
    return "\n".join(lines)


def format_pair(values: tuple[float, float]) -> str:
    """One number when rows and columns agree, else 'rows x cols'."""
    return f"{values[0]:g}" if values[0] == values[1] else f"{values[0]:g} x {values[1]:g}"
