"""`semdict prepare MODEL.onnx --layer [SHORT=]TENSOR ... --out FILE`: prepare your own network.

    semdict prepare MODEL.onnx --layer [SHORT=]TENSOR... --out PREPARED.onnx
                    [--preprocessing torchvision|caffe|tf|unit|bytes] [--mean R,G,B] [--std R,G,B]
                    [--value-range LOW,HIGH] [--channel-order RGB|BGR] [--layout NCHW|NHWC]
                    [--input-name NAME] [--input-size S|HxW] [--class-output TENSOR] [--logits]
                    [--labels FILE] [--extra-tokens N|LAYER=N]... [--crop-size LAYER=PX]...
                    [--network NAME]

A thin layer over `prepare_model`: it writes the prepared file atomically, or nothing at all
when an option does not fit the graph, and says what it wrote.
"""

from __future__ import annotations

import argparse

from .._metadata import CHANNEL_ORDERS, PRESETS, ModelInfo
from .._prepare import prepare_model
from ..errors import OptionError
from .layers import add_input_arguments

NAME = "prepare"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `prepare` to the `semdict` command's subparsers and return its parser."""
    parser = subparsers.add_parser(
        NAME,
        help="prepare your own ONNX network: its layers as outputs, its preprocessing, its card",
        description="Write a copy of an ONNX vision network that semdict reads: the chosen "
        "layers as [N, H, W, C] outputs, its preprocessing in the graph (it then takes RGB in "
        "[0, 1]), and the model card. Find tensor names with `semdict layers MODEL.onnx`.",
    )
    parser.add_argument("model", metavar="MODEL.onnx", help="the raw ONNX network")
    parser.add_argument(
        "--layer",
        action="append",
        required=True,
        metavar="[SHORT=]TENSOR",
        help="a tensor to show, optionally under a short name (split at the first '='); repeat",
    )
    parser.add_argument("--out", required=True, help="the prepared ONNX file to write")
    parser.add_argument(
        "--preprocessing",
        type=str.lower,
        choices=list(PRESETS),
        help="what the network was trained on (default unit: RGB in [0, 1]); the options below "
        "override its fields",
    )
    parser.add_argument("--mean", type=numbers, metavar="R,G,B", help="per-channel mean")
    parser.add_argument("--std", type=numbers, metavar="R,G,B", help="per-channel std")
    parser.add_argument("--value-range", type=numbers, metavar="LOW,HIGH", help="input range")
    parser.add_argument("--channel-order", type=str.upper, choices=CHANNEL_ORDERS)
    add_input_arguments(parser)
    parser.add_argument("--class-output", metavar="TENSOR", help="the [N, classes] tensor")
    parser.add_argument(
        "--logits", action="store_true", help="the class output is logits: add a softmax"
    )
    parser.add_argument("--labels", metavar="FILE", help="class names, one per line")
    parser.add_argument(
        "--extra-tokens",
        action="append",
        metavar="N|LAYER=N",
        help="leading tokens (class token, registers) token layers drop; default: inferred",
    )
    parser.add_argument(
        "--crop-size",
        action="append",
        metavar="LAYER=PX",
        help="a crop side for a layer whose receptive field the graph does not give; repeat",
    )
    parser.add_argument("--network", help="the name pages show (default: the graph's or file's)")
    parser.set_defaults(run=run)
    return parser


def numbers(text: str) -> tuple[float, ...]:
    """An argparse type: comma-separated numbers (their count is prepare_model's to check)."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be numbers separated by commas, such as 0.485,0.456,0.406, not {text!r}"
        ) from None


def _pairs(values: list[str] | None, option: str, what: str) -> dict[str, str]:
    """KEY=VALUE arguments as a mapping, each key once."""
    found: dict[str, str] = {}
    for text in values or []:
        key, sep, value = text.partition("=")
        if not sep or not key or not value:
            raise OptionError(f"{option} {text!r} must be {what}")
        if key in found:
            raise OptionError(f"{option} names {key!r} twice")
        found[key] = value
    return found


def _count(text: str, option: str) -> int:
    """A non-negative integer from a KEY=VALUE argument."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise OptionError(f"{option} takes whole numbers of pixels or tokens, not {text!r}")
    return value


def _layers(values: list[str]) -> dict[str, str]:
    """--layer [SHORT=]TENSOR arguments as {short name: tensor}, in the order given."""
    layers: dict[str, str] = {}
    for text in values:
        short, sep, tensor = text.partition("=")
        if not sep:
            short = tensor = text
        if not short or not tensor:
            raise OptionError(f"--layer {text!r} must be TENSOR or SHORT=TENSOR")
        if short in layers:
            raise OptionError(f"--layer names {short!r} twice")
        layers[short] = tensor
    return layers


def _extra_tokens(values: list[str] | None) -> int | dict[str, int] | None:
    """--extra-tokens: one count for every token layer, or LAYER=N per layer."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return _count(values[0], "--extra-tokens")
    pairs = _pairs(values, "--extra-tokens", "N (for every token layer) or LAYER=N")
    return {layer: _count(value, "--extra-tokens") for layer, value in pairs.items()}


def describe(info: ModelInfo) -> str:
    """What a prepared card says, in a few lines for the terminal."""
    given = info.input
    sizes = "any size" if given.variable_size else "fixed size"
    how = given.preprocessing.describe() if given.preprocessing else "in the graph"
    lines = [
        f"network {info.network!r}: input {given.height}x{given.width} ({sizes}), "
        f"{given.layout} inside, {how}"
    ]
    for layer in info.layers:
        stride = f", stride {layer.field.jump[0]:g}" if layer.field else ""
        lines.append(
            f"  layer {layer.name}: {layer.channels} channels, {layer.height}x{layer.width}"
            f"{stride} ({layer.layout} {layer.source_tensor})"
        )
    if info.class_output:
        labels = "with labels" if info.labels else "no labels"
        lines.append(f"  class output {info.class_output}: {info.num_classes} classes, {labels}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Prepare the network and say what was written; 0 on success."""
    crops = _pairs(args.crop_size, "--crop-size", "LAYER=PIXELS")
    info = prepare_model(
        args.model,
        args.out,
        _layers(args.layer),
        preprocessing=args.preprocessing,
        value_range=args.value_range,
        channel_order=args.channel_order,
        mean=args.mean,
        std=args.std,
        layout=args.layout,
        input_name=args.input_name,
        input_size=args.input_size,
        class_output=args.class_output,
        logits=args.logits,
        labels=args.labels,
        extra_tokens=_extra_tokens(args.extra_tokens),
        crop_sizes={layer: _count(px, "--crop-size") for layer, px in crops.items()},
        network=args.network,
    )
    print(f"wrote {args.out}\n{describe(info)}")
    first = info.layers[0].name
    print(f"use it: semdict IMAGE... --model {args.out} --layer {first} --out pages/")
    return 0
