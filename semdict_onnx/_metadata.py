"""The model card stored in a prepared ONNX file: what the runtime knows about a network.

`scripts/export.py` and `prepare_model` (semdict_onnx/_prepare.py) write it as JSON under the
metadata key ``semdict_onnx``; the runtime reads every network fact (input name and size,
value range and preprocessing, layers with their source tensors, channel counts, strides and
receptive fields, labels, default spritemaps, whether the weights are a random replica) from
here instead of hard-coding a network.

Schema 2 added the preprocessing, the input's layout and, per layer, its source tensor, layout,
stride and receptive field; files written with schema 1 still load (every new field has a
default that says what those files are: NHWC layers that are their own source tensors).
Reading a card checks every field (_json_fields.py), since a model file may come from anyone;
the classes and their reader stay in one module (a little over 400 lines) because the reader
builds exactly these classes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ._checks import is_integer
from ._defaults import DEFAULT_LAYER
from ._json_fields import Fields, parse_json_object
from ._limits import check_input_pixels
from .errors import ImageError, ModelFormatError, PrepareError, UnknownLayerError

METADATA_KEY = "semdict_onnx"
SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
CHANNEL_ORDERS = ("RGB", "BGR")
LAYOUTS = ("NCHW", "NHWC")
# Layer layouts: a feature map in either order, or a token sequence [N, tokens, C].
LAYER_LAYOUTS = (*LAYOUTS, "tokens")
# Where a layer's receptive field comes from: the graph (walked), its token's patch, or a crop
# side given by hand where the walker cannot see through an op.
FIELD_SOURCES = ("graph", "patch", "given")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
_EMPTY = Fields({}, "", ModelFormatError)
_REDO = "re-export it with `python scripts/export.py`, or prepare it again"


@dataclass(frozen=True)
class Preprocessing:
    """What a network expects of its image, from RGB in [0, 1] (what the runtime feeds).

    In this order: scale to `value_range` (x * (high - low) + low), put the channels in
    `channel_order`, subtract `mean` and divide by `std` per channel (both in the network's
    channel order and in `value_range` units; None: 0 and 1). torchvision is value range
    (0, 1) with ImageNet mean and std; Caffe (VGG, Keras ResNet50) is (0, 255), BGR, the BGR
    mean; Keras "tf" mode (MobileNet, Inception v3) is (-1, 1).
    """

    value_range: tuple[float, float] = (0.0, 1.0)
    channel_order: str = "RGB"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        low, high = _numbers(self.value_range, "value_range", 2)
        if not high > low:
            raise PrepareError(f"value_range must rise (low, high), not {self.value_range!r}")
        order = str(self.channel_order).upper()
        if order not in CHANNEL_ORDERS:
            raise PrepareError(
                f"channel_order must be one of {', '.join(CHANNEL_ORDERS)}, not "
                f"{self.channel_order!r}"
            )
        mean = None if self.mean is None else _numbers(self.mean, "mean", 3)
        std = None if self.std is None else _numbers(self.std, "std", 3)
        if std is not None and not all(value > 0 for value in std):
            raise PrepareError(f"std must be positive per channel, not {self.std!r}")
        object.__setattr__(self, "value_range", (low, high))
        object.__setattr__(self, "channel_order", order)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def preset(cls, name: str) -> Preprocessing:
        """A named preprocessing: one of PRESETS (torchvision, caffe, tf, unit, bytes)."""
        found = PRESETS.get(str(name).lower())
        if found is None:
            raise PrepareError(
                f"unknown preprocessing {name!r}; use one of {', '.join(PRESETS)}, or give "
                "value_range, channel_order, mean and std"
            )
        return found

    def with_overrides(self, **changes: Any) -> Preprocessing:
        """This preprocessing with the given fields (those not None) replaced, checked."""
        given = {key: value for key, value in changes.items() if value is not None}
        return replace(self, **given) if given else self

    def network_range(self) -> tuple[float, float]:
        """The lowest and highest value the network's input can get over all channels."""
        low, high = self.value_range
        mean = self.mean or (0.0, 0.0, 0.0)
        std = self.std or (1.0, 1.0, 1.0)
        lows = [(low - m) / s for m, s in zip(mean, std, strict=True)]
        highs = [(high - m) / s for m, s in zip(mean, std, strict=True)]
        return float(min(lows)), float(max(highs))

    def apply(self, images: Any) -> Any:
        """NHWC RGB images in [0, 1] as this network wants them (float32, NHWC): a reference
        for tests and users checking a prepared file against their own pipeline."""
        import numpy as np

        low, high = self.value_range
        out = np.asarray(images, np.float32) * np.float32(high - low) + np.float32(low)
        if self.channel_order == "BGR":
            out = out[..., ::-1]
        if self.mean is not None:
            out = out - np.asarray(self.mean, np.float32)
        if self.std is not None:
            out = out / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(out, np.float32)

    def describe(self) -> str:
        """The preprocessing in words, for the model's repr and the docs."""
        low, high = self.value_range
        words = ["RGB [0, 1]" if (low, high) == (0, 1) else f"RGB [0, 1] -> [{low:g}, {high:g}]"]
        if self.channel_order == "BGR":
            words.append("as BGR")
        if self.mean is not None:
            words.append("minus mean (" + ", ".join(f"{v:g}" for v in self.mean) + ")")
        if self.std is not None:
            words.append("over std (" + ", ".join(f"{v:g}" for v in self.std) + ")")
        return ", ".join(words)


def _numbers(values: object, what: str, count: int) -> tuple[float, ...]:
    """`values` as `count` finite floats, else a PrepareError saying what was wrong."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        try:
            values = list(values)  # numpy arrays and other iterables
        except TypeError:
            raise PrepareError(f"{what} must be {count} numbers, not {values!r}") from None
    if len(values) != count:
        per = "one per colour channel" if count == 3 else "(low, high)"
        raise PrepareError(f"{what} must be {count} numbers ({per}), not {len(values)}: {values!r}")
    try:
        floats = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise PrepareError(f"{what} must be {count} numbers, not {values!r}") from None
    if not all(math.isfinite(v) for v in floats):
        raise PrepareError(f"{what} must be finite numbers, not {values!r}")
    return floats


PRESETS = {
    "unit": Preprocessing(),
    "bytes": Preprocessing(value_range=(0.0, 255.0)),
    "tf": Preprocessing(value_range=(-1.0, 1.0)),
    "torchvision": Preprocessing(mean=IMAGENET_MEAN, std=IMAGENET_STD),
    "caffe": Preprocessing(value_range=(0.0, 255.0), channel_order="BGR", mean=CAFFE_BGR_MEAN),
}


@dataclass(frozen=True)
class InputInfo:
    """The image input: NHWC float32 RGB in `value_range`; the graph rescales to `network_range`.

    `height` and `width` are the default (trained) size. A `variable_size` model also takes any
    height and width of at least `min_side`; `stride` is the network's total stride, input
    pixels per position of its coarsest layer, so sizes that are multiples of it tile into
    whole grid cells. Files written before variable sizes existed are fixed-size. `layout` is
    the network's own input layout (a prepared NCHW network gets a transpose in its graph);
    `preprocessing`, where given, is what that graph does between this input and the network
    (None: the GoogLeNet export, whose graph maps `value_range` to `network_range` itself).
    """

    name: str
    height: int
    width: int
    value_range: tuple[float, float] = (0.0, 1.0)
    network_range: tuple[float, float] = (0.0, 1.0)
    variable_size: bool = False
    min_side: int = 1
    stride: int = 1
    layout: str = "NHWC"
    preprocessing: Preprocessing | None = None

    @property
    def default_size(self) -> tuple[int, int]:
        """The (height, width) images are resized to when no size is asked for."""
        return self.height, self.width

    def describe_sizes(self) -> str:
        """What sizes this input takes, in words."""
        if not self.variable_size:
            return f"only {self.height}x{self.width} images"
        return (
            f"any height and width of at least {self.min_side} pixels (default "
            f"{self.height}x{self.width}; multiples of {self.stride} tile into whole grid cells)"
        )

    def check_size(self, height: int, width: int) -> tuple[int, int]:
        """Return (height, width) if this input takes that size, else say what it takes."""
        size = (height, width)
        if not all(is_integer(v) for v in size):
            raise ImageError(f"an input size is two integers (height, width), not {size!r}")
        size = (int(height), int(width))
        if size == self.default_size:
            return size
        if not self.variable_size:
            hint = (
                "its network's graph has a fixed input size, so every image is resized to it: "
                "leave size=None"
                if self.preprocessing is not None
                else "its file was exported with a fixed input size. Re-export it with this "
                "version's `python scripts/export.py` for other sizes if an older version wrote "
                "it (a graph whose class head the export cannot make size-independent stays "
                "fixed: see docs/export.md), or leave size=None"
            )
            raise ImageError(
                f"this model takes {self.describe_sizes()}, not {height}x{width}: {hint}"
            )
        if min(size) < self.min_side:
            raise ImageError(
                f"{height}x{width} is too small: this model takes {self.describe_sizes()}; "
                f"ask for a size whose sides are at least {self.min_side}"
            )
        check_input_pixels(*size, ImageError)
        return size


@dataclass(frozen=True)
class FieldInfo:
    """A layer's receptive field at the input's default size, per axis as (rows, cols).

    `size` is the field's side in input pixels, `jump` the layer's stride (input pixels
    between neighbouring positions), `start` the centre of position 0. `source` says where it
    comes from: "graph" (walked through the graph; recomputed at other input sizes), "patch"
    (a token's patch: the field of the patch-embedding feature map `grid_tensor`, recomputed
    at other sizes) or "given" (a crop side given by hand where the graph cannot be walked;
    positions are taken to tile the input evenly).
    """

    size: tuple[float, float]
    jump: tuple[float, float]
    start: tuple[float, float]
    source: str = "graph"
    grid_tensor: str | None = None


@dataclass(frozen=True)
class LayerInfo:
    """One activation layer: the ONNX output of the same name, shaped [N, H, W, C].

    `height` and `width` are at the input's default size. `tensor` is the network's own tensor
    the layer shows (None: the output itself), laid out as `layout` (NCHW and token layers are
    transposed and reshaped to [N, H, W, C] inside the graph); a token layer's first
    `extra_tokens` tokens (class token, registers) are dropped. `field`, where known, is its
    receptive field (files from before schema 2 have none: the graph is walked).
    """

    name: str
    channels: int
    height: int
    width: int
    tensor: str | None = None
    layout: str = "NHWC"
    extra_tokens: int = 0
    field: FieldInfo | None = None

    @property
    def source_tensor(self) -> str:
        """The network's tensor this layer shows."""
        return self.tensor or self.name


@dataclass(frozen=True)
class SpritemapInfo:
    """A public spritemap of a layer's channel visualizations, loaded by the browser by URL."""

    url: str
    per_row: int
    sprite_size: int


@dataclass(frozen=True)
class ModelInfo:
    """Everything the runtime needs to know about an exported network."""

    network: str
    input: InputInfo
    layers: tuple[LayerInfo, ...]
    source_sha256: str
    replica: bool
    class_output: str | None = None
    num_classes: int | None = None
    labels: tuple[str, ...] | None = None
    spritemaps: dict[str, SpritemapInfo] = field(default_factory=dict)

    @property
    def layer_names(self) -> list[str]:
        """The activation layers in network order."""
        return [layer.name for layer in self.layers]

    @property
    def default_layer(self) -> str:
        """The layer shown when none is named: GoogLeNet's mixed4d where the model has it (as in
        Lucid's notebook), else the last layer the card lists (in the order
        prepare_model was given them)."""
        names = self.layer_names
        return DEFAULT_LAYER if DEFAULT_LAYER in names else names[-1]

    def layer(self, name: str) -> LayerInfo:
        """The layer called `name`, or an error listing the valid names."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise UnknownLayerError(
            f"unknown layer {name!r}; this model has: {', '.join(self.layer_names)}"
        )

    @property
    def weights_note(self) -> str:
        """A sentence on where the weights come from, shown wherever results are shown."""
        if self.replica:
            return (
                "REPLICA MODEL: random weights with the real network's structure; "
                "its activations and classes mean nothing."
            )
        return f"{self.network}, source graph sha256 {self.source_sha256[:12]}."

    def to_json(self) -> str:
        """Serialize for the ONNX metadata."""
        payload = {"schema": SCHEMA_VERSION, **asdict(self)}
        return json.dumps(payload, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelInfo:
        """Parse the ONNX metadata written by `to_json` (this schema or an older one).

        Every field is checked (types, ranges, labels against classes, the default input size
        against the limit), so a malformed or hostile card is one ModelFormatError.
        """
        where = f"the model's {METADATA_KEY!r} metadata"
        try:
            raw = Fields(
                parse_json_object(text, "it", ModelFormatError), "the card", ModelFormatError
            )
        except ModelFormatError as exc:
            raise ModelFormatError(f"{where} is malformed: {exc}; {_REDO}") from exc
        if raw.raw.get("schema") not in READABLE_SCHEMAS:
            raise ModelFormatError(
                f"model metadata schema {_shown_schema(raw.raw.get('schema'))} is not one this "
                f"version reads ({', '.join(map(str, READABLE_SCHEMAS))}); re-export the model "
                "with this version's scripts/export.py, or prepare it again with prepare_model"
            )
        try:
            return _card_from(raw)
        except (ModelFormatError, PrepareError, ImageError) as exc:
            raise ModelFormatError(f"{where} is malformed: {exc}; {_REDO}") from exc


def _shown_schema(value: object) -> str:
    """A schema value for a message, cut short."""
    text = repr(value)
    return text if len(text) <= 20 else text[:17] + "..."


def _card_from(raw: Fields) -> ModelInfo:
    """The ModelInfo of a card's checked fields, consistent in itself."""
    layers = tuple(raw.each("layers", _layer_from))
    names = [layer.name for layer in layers]
    if not layers or len(set(names)) != len(names):
        raise ModelFormatError(f"it must list layers, each once, not {names}")
    info = ModelInfo(
        network=raw.text("network"),
        input=_input_from(raw.child("input")),
        layers=layers,
        source_sha256=raw.text("source_sha256"),
        replica=raw.flag("replica"),
        class_output=raw.text("class_output", None),
        num_classes=raw.integer("num_classes", None),
        labels=raw.texts("labels", None) or None,
        spritemaps={
            str(name): _spritemap_from(Fields(value, f"spritemaps.{name}", ModelFormatError))
            for name, value in (raw.child("spritemaps", None) or _EMPTY).raw.items()
        },
    )
    if info.labels and info.num_classes and len(info.labels) != info.num_classes:
        raise ModelFormatError(
            f"it has {len(info.labels)} labels for {info.num_classes} classes; a model has one "
            "label per class"
        )
    check_input_pixels(*info.input.default_size, ModelFormatError)
    return info


def _input_from(raw: Fields) -> InputInfo:
    """The InputInfo in a card's JSON; keys newer than the file default to what it had."""
    preprocessing = raw.child("preprocessing", None)
    return InputInfo(
        name=raw.text("name"),
        height=raw.integer("height"),
        width=raw.integer("width"),
        value_range=raw.numbers("value_range", 2),
        network_range=raw.numbers("network_range", 2),
        variable_size=raw.flag("variable_size", False),
        min_side=raw.integer("min_side", 1),
        stride=raw.integer("stride", 1),
        layout=raw.choice("layout", LAYOUTS, "NHWC"),
        preprocessing=None
        if preprocessing is None
        else Preprocessing(
            value_range=preprocessing.numbers("value_range", 2),
            channel_order=preprocessing.choice("channel_order", CHANNEL_ORDERS),
            mean=preprocessing.numbers("mean", 3, None),
            std=preprocessing.numbers("std", 3, None),
        ),
    )


def _layer_from(raw: Fields) -> LayerInfo:
    """The LayerInfo in a card's JSON (schema 1 layers have name, channels, height, width)."""
    found = raw.child("field", None)
    return LayerInfo(
        name=raw.text("name"),
        channels=raw.integer("channels"),
        height=raw.integer("height"),
        width=raw.integer("width"),
        tensor=raw.text("tensor", None),
        layout=raw.choice("layout", LAYER_LAYOUTS, "NHWC"),
        extra_tokens=raw.integer("extra_tokens", 0, low=0),
        field=None
        if found is None
        else FieldInfo(
            size=found.numbers("size", 2),
            jump=found.numbers("jump", 2),
            start=found.numbers("start", 2),
            source=found.choice("source", FIELD_SOURCES, "graph"),
            grid_tensor=found.text("grid_tensor", None),
        ),
    )


def _spritemap_from(raw: Fields) -> SpritemapInfo:
    """A public spritemap's URL and layout in a card's JSON."""
    return SpritemapInfo(
        url=raw.text("url"), per_row=raw.integer("per_row"), sprite_size=raw.integer("sprite_size")
    )
