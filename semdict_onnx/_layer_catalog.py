"""Which tensors of an ONNX vision network can serve as a dictionary layer: `list_layers`.

It works on a raw ONNX file with nothing added. Shapes come from ONNX shape inference at a
concrete input size (the graph's own size where it is fixed, else the size asked for, else
224 x 224); the receptive-field walk (semdict_onnx/_graph_walker.py) says which axes of a
tensor are rows and columns, so the channel axis is found from the graph, not from the
input's layout (tf2onnx runs NCHW convolutions inside NHWC-input graphs). A candidate is:

- a feature map: a rank-4 tensor whose rows and columns the walk follows, in either layout,
  with more than one position and more than one channel; or a rank-4 tensor the walk cannot
  see through whose grid is one the network's walked maps have (its field is then unknown:
  a crop size is given by hand);
- a token sequence [N, tokens, C] downstream of a patch-embedding feature map of h x w
  positions, with tokens = h * w plus at most MAX_EXTRA_TOKENS extra tokens (class token,
  registers) in front, unless it is the patch map itself flattened to [N, C, h * w] (how
  patch embeddings look before their transpose). A token's field is its patch; attention
  sees the whole image.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import onnx

from ._graph_walker import GraphWalker, Grid, Opaque
from ._onnx_graph import (
    Shape,
    concrete_input,
    dims_of,
    image_input,
    inferred_facts,
    input_layout,
    load_onnx,
    probe_shapes,
)
from ._receptive_field import ReceptiveField, field_from_axes, format_pair
from .errors import PrepareError

DEFAULT_SIZE = 224
MAX_EXTRA_TOKENS = 16
_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)


@dataclass(frozen=True)
class LayerCandidate:
    """One tensor that can serve as a dictionary layer, as `list_layers` finds it.

    `shape` is at the catalog's input size with batch 1; `layout` is "NCHW", "NHWC" or
    "tokens"; `grid` is (rows, cols) of positions; `field` is its receptive field (None where
    the walk cannot see through an op: `note` names it). A token layer drops its first
    `extra_tokens` tokens and takes its grid and field from the feature map `grid_tensor`
    (laid out as `grid_layout`).
    """

    name: str
    op: str
    shape: tuple[int, ...]
    layout: str
    channels: int
    grid: tuple[int, int]
    field: ReceptiveField | None
    extra_tokens: int = 0
    grid_tensor: str | None = None
    grid_layout: str | None = None
    note: str = ""

    @property
    def stride(self) -> tuple[float, float] | None:
        """Input pixels between neighbouring positions (None where the field is unknown)."""
        return None if self.field is None else self.field.jump


@dataclass
class Catalog:
    """A graph's image input, its layout and size, and its candidate layers in network order."""

    model: onnx.ModelProto
    input: onnx.ValueInfoProto
    layout: str
    size: tuple[int, int]
    fixed_size: bool
    shapes: dict[str, Shape]
    types: dict[str, int]
    walker: GraphWalker
    candidates: dict[str, LayerCandidate] = field(default_factory=dict)
    # Walked feature maps (name -> layout, grid), and each tensor's latest one upstream.
    walked: dict[str, tuple[str, Grid]] = field(default_factory=dict)
    patch_of: dict[str, str] = field(default_factory=dict)

    @property
    def tensors(self) -> list[str]:
        """Every tensor the graph's nodes compute, in network order."""
        return [out for node in self.model.graph.node for out in node.output if out]


def list_layers(
    path: str | os.PathLike[str] | onnx.ModelProto,
    input_size: int | tuple[int, int] | None = None,
    layout: str | None = None,
    input_name: str | None = None,
) -> list[LayerCandidate]:
    """The tensors of an ONNX vision network that can serve as dictionary layers, in order.

    `input_size` (an int or (height, width)) sets the size shapes are computed at where the
    graph leaves it open (default 224). `layout` ("NCHW" or "NHWC") is needed only where the
    graph does not say; one it contradicts is an error. `input_name` picks the image input
    of a graph with several.
    """
    return list(catalog(load_onnx(path), input_size, layout, input_name).candidates.values())


def catalog(
    model: onnx.ModelProto,
    input_size: int | tuple[int, int] | None = None,
    layout: str | None = None,
    input_name: str | None = None,
) -> Catalog:
    """The candidate layers of `model`, with the facts about its input they were found with."""
    value = image_input(model.graph, input_name)
    found_layout = input_layout(model.graph, value, layout)
    size, fixed = _probe_size(value, found_layout, input_size)
    dims = concrete_input(found_layout, size)
    shapes, types = inferred_facts(model, value.name, dims)
    spatial_axes = (2, 3) if found_layout == "NCHW" else (1, 2)
    walker = GraphWalker(model.graph, value.name, size, spatial_axes, lambda: shapes)
    result = Catalog(model, value, found_layout, size, fixed, shapes, types, walker)
    open_shapes = [
        name
        for name in result.tensors
        if types.get(name, onnx.TensorProto.FLOAT) in _FLOAT_TYPES
        and (shapes.get(name) is None or None in shapes[name])
        and len(shapes.get(name) or (0, 0, 0)) in (3, 4)
    ]
    shapes.update(probe_shapes(model, value.name, dims, open_shapes))
    _find_candidates(result)
    return result


def _probe_size(
    value: onnx.ValueInfoProto, layout: str, asked: int | tuple[int, int] | None
) -> tuple[tuple[int, int], bool]:
    """The (height, width) to compute shapes at, and whether the graph fixes it."""
    dims = dims_of(value)
    height, width = (dims[2], dims[3]) if layout == "NCHW" else (dims[1], dims[2])
    fixed = isinstance(height, int) and isinstance(width, int)
    wanted = None
    if asked is not None:
        wanted = (asked, asked) if isinstance(asked, int) else tuple(asked)
        if len(wanted) != 2 or not all(isinstance(v, int) and v > 0 for v in wanted):
            raise PrepareError(
                f"input_size (--size) must be an int or (height, width), not {asked!r}"
            )
    if fixed:
        if wanted is not None and wanted != (height, width):
            raise PrepareError(
                f"input_size={asked!r} does not fit the graph: its input {value.name!r} is "
                f"fixed at {height}x{width}; leave input_size (--size) out"
            )
        return (height, width), True
    return wanted or (DEFAULT_SIZE, DEFAULT_SIZE), False


def _find_candidates(result: Catalog) -> None:
    """Fill `result.candidates`: feature maps and token sequences, in network order."""
    walker, shapes, walked = result.walker, result.shapes, result.walked
    producer_op = {out: node.op_type for node in result.model.graph.node for out in node.output}
    for name in result.tensors:
        shape = shapes.get(name)
        if not _is_float_tensor(result, name, shape) or len(shape) != 4:
            continue
        found = walker.spatial(name)
        if isinstance(found, Grid) and sorted(found.axes) in ([1, 2], [2, 3]):
            lengths = tuple(found.axes[i].length for i in sorted(found.axes))
            if lengths == tuple(shape[i] for i in sorted(found.axes)):
                walked[name] = ("NCHW" if 3 in found.axes else "NHWC", found)
    grids = {tuple(grid.axes[i].length for i in sorted(grid.axes)) for _, grid in walked.values()}
    patch_of = result.patch_of = _nearest_walked_ancestor(result, walked)
    for name in result.tensors:
        shape = shapes.get(name)
        if not _is_float_tensor(result, name, shape):
            continue
        op = producer_op[name]
        if name in walked:
            layout, grid = walked[name]
            candidate = _feature_map(name, op, shape, layout, grid, result.size)
        elif len(shape) == 4:
            candidate = _opaque_map(name, op, shape, grids, walker.spatial(name))
        elif len(shape) == 3:
            patch = patch_of.get(name)
            patch_shape = shapes.get(patch, ()) if patch else ()
            candidate = _tokens(name, op, shape, patch, walked, result.size, patch_shape)
        else:
            candidate = None
        if candidate is not None and candidate.channels > 1 and math.prod(candidate.grid) > 1:
            result.candidates[name] = candidate


def _is_float_tensor(result: Catalog, name: str, shape: Shape | None) -> bool:
    """Whether `name` is a float tensor of known shape and rank 3 or 4 with batch 1."""
    if shape is None or None in shape or len(shape) not in (3, 4) or shape[0] != 1:
        return False
    return result.types.get(name, onnx.TensorProto.FLOAT) in _FLOAT_TYPES


def _feature_map(
    name: str, op: str, shape: Shape, layout: str, grid: Grid, size: tuple[int, int]
) -> LayerCandidate:
    """A walked rank-4 map: its channel axis is the one that is neither rows nor columns."""
    channel_axis = 1 if layout == "NCHW" else 3
    field_ = field_from_axes(name, grid.axes, size)
    return LayerCandidate(name, op, shape, layout, shape[channel_axis], field_.grid, field_)


def _opaque_map(
    name: str, op: str, shape: Shape, grids: set[tuple[int, ...]], found: object
) -> LayerCandidate | None:
    """A rank-4 tensor the walk cannot see through, listed where its grid is a known one."""
    if not isinstance(found, Opaque):
        return None
    fits = [
        layout
        for layout, (r, c) in (("NCHW", (2, 3)), ("NHWC", (1, 2)))
        if (shape[r], shape[c]) in grids
    ]
    if len(fits) != 1:
        return None
    layout = fits[0]
    rows, cols, channels = (shape[2], shape[3], shape[1]) if layout == "NCHW" else shape[1:]
    note = f"receptive field unknown: it depends on {found.reason}; give a crop size"
    return LayerCandidate(name, op, shape, layout, channels, (rows, cols), None, note=note)


def _tokens(
    name: str,
    op: str,
    shape: Shape,
    patch: str | None,
    walked: dict[str, tuple[str, Grid]],
    size: tuple[int, int],
    patch_shape: Shape = (),
    extra: int | None = None,
) -> LayerCandidate | None:
    """A token sequence [1, tokens, C] whose tokens are a patch grid plus `extra` leading
    tokens (None: inferred, at most MAX_EXTRA_TOKENS)."""
    if patch is None or len(shape) != 3:
        return None
    grid_layout, grid = walked[patch]
    channels = patch_shape[1 if grid_layout == "NCHW" else 3]
    rows, cols = (grid.axes[i].length for i in sorted(grid.axes))
    if extra is None:
        extra = shape[1] - rows * cols
        if not 0 <= extra <= MAX_EXTRA_TOKENS or (shape[2], shape[1]) == (rows * cols, channels):
            return None  # not tokens, or the patch map flattened to [N, C, h * w]
    elif shape[1] - extra != rows * cols:
        return None
    note = "token layer: its field is its patch (attention sees the whole image)"
    return LayerCandidate(
        name,
        op,
        shape,
        "tokens",
        shape[2],
        (rows, cols),
        field_from_axes(patch, grid.axes, size),
        extra_tokens=extra,
        grid_tensor=patch,
        grid_layout=grid_layout,
        note=note,
    )


def token_layer(result: Catalog, name: str, extra: int) -> LayerCandidate | None:
    """`name` read as a token sequence with `extra` leading extra tokens, if its tokens are
    then exactly the grid of the feature map it is computed from (None: they are not)."""
    shape = result.shapes.get(name)
    if not _is_float_tensor(result, name, shape):
        return None
    producer = next((n.op_type for n in result.model.graph.node if name in n.output), "?")
    patch = result.patch_of.get(name)
    patch_shape = result.shapes.get(patch, ()) if patch else ()
    return _tokens(name, producer, shape, patch, result.walked, result.size, patch_shape, extra)


def _nearest_walked_ancestor(
    result: Catalog, walked: dict[str, tuple[str, Grid]]
) -> dict[str, str]:
    """For every tensor, the latest walked feature map it is computed from (if any)."""
    order = {name: index for index, name in enumerate(result.tensors)}
    nearest: dict[str, str] = {}
    for node in result.model.graph.node:
        sources = [nearest[i] for i in node.input if i in nearest]
        best = max(sources, key=order.__getitem__, default=None)
        for out in node.output:
            if out in walked:
                nearest[out] = out
            elif best is not None:
                nearest[out] = best
    return nearest


def layers_table(candidates: Sequence[LayerCandidate]) -> str:
    """The candidates as a plain-text table for a terminal, one row per tensor in the order
    given: name, op, shape (batch 1), layout, channels, grid, stride and field size in input
    pixels ("?" where the graph cannot be walked), and a note."""
    header = ("tensor", "op", "shape", "layout", "channels", "grid", "stride", "field", "note")
    rows = [header]
    for c in candidates:
        field_ = c.field
        rows.append(
            (
                c.name,
                c.op,
                "x".join(map(str, c.shape)),
                c.layout if not c.extra_tokens else f"tokens (+{c.extra_tokens})",
                str(c.channels),
                f"{c.grid[0]}x{c.grid[1]}",
                "?" if field_ is None else format_pair(field_.jump),
                "?" if field_ is None else format_pair(field_.size),
                c.note,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)
