"""The model card stored in an exported ONNX file: what the runtime knows about a network.

`scripts/export.py` writes it as JSON under the metadata key ``semdict_onnx``; the runtime
reads every network fact (input name and size, value range, layers, channel counts,
labels, default spritemaps, whether the weights are a random replica) from here instead
of hard-coding GoogLeNet.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ._checks import is_integer
from .errors import ImageError, ModelFormatError, UnknownLayerError

METADATA_KEY = "semdict_onnx"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class InputInfo:
    """The image input: NHWC float32 RGB in `value_range`; the graph rescales to `network_range`.

    `height` and `width` are the default (trained) size. A `variable_size` model also takes any
    height and width of at least `min_side`; `stride` is the network's total stride, input
    pixels per position of its coarsest layer, so sizes that are multiples of it tile into
    whole grid cells. Files written before variable sizes existed are fixed-size.
    """

    name: str
    height: int
    width: int
    value_range: tuple[float, float] = (0.0, 1.0)
    network_range: tuple[float, float] = (0.0, 1.0)
    variable_size: bool = False
    min_side: int = 1
    stride: int = 1

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
            raise ImageError(
                f"this model takes {self.describe_sizes()}, not {height}x{width}: its file was "
                "exported with a fixed input size. Re-export it with this version's "
                "`python scripts/export.py` for other sizes, or leave size=None"
            )
        if min(size) < self.min_side:
            raise ImageError(
                f"{height}x{width} is too small: this model takes {self.describe_sizes()}; "
                f"ask for a size whose sides are at least {self.min_side}"
            )
        return size


@dataclass(frozen=True)
class LayerInfo:
    """One exported activation layer: the ONNX output of the same name, shaped [N, H, W, C].

    `height` and `width` are at the input's default size.
    """

    name: str
    channels: int
    height: int
    width: int


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
        """Parse the ONNX metadata written by `to_json`."""
        try:
            raw = json.loads(text)
            if raw.get("schema") != SCHEMA_VERSION:
                raise ModelFormatError(
                    f"model metadata schema {raw.get('schema')!r} is not {SCHEMA_VERSION}; "
                    "re-export the model with this version's scripts/export.py"
                )
            inp = raw["input"]
            return cls(
                network=raw["network"],
                input=InputInfo(
                    name=inp["name"],
                    height=int(inp["height"]),
                    width=int(inp["width"]),
                    value_range=tuple(inp["value_range"]),
                    network_range=tuple(inp["network_range"]),
                    variable_size=bool(inp.get("variable_size", False)),
                    min_side=int(inp.get("min_side", 1)),
                    stride=int(inp.get("stride", 1)),
                ),
                layers=tuple(LayerInfo(**layer) for layer in raw["layers"]),
                source_sha256=raw["source_sha256"],
                replica=bool(raw["replica"]),
                class_output=raw.get("class_output"),
                num_classes=raw.get("num_classes"),
                labels=tuple(raw["labels"]) if raw.get("labels") else None,
                spritemaps={
                    k: SpritemapInfo(**v) for k, v in (raw.get("spritemaps") or {}).items()
                },
            )
        except ModelFormatError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelFormatError(
                f"the model's {METADATA_KEY!r} metadata is malformed ({exc}); "
                "re-export it with `python scripts/export.py`"
            ) from exc
