"""`semdict layers MODEL.onnx`: the tensors of a raw ONNX network that can be dictionary layers.

    semdict layers MODEL.onnx [--size S|HxW] [--layout NCHW|NHWC] [--input-name NAME]

Prints `layers_table(list_layers(...))`: one row per feature map or token sequence in network
order, with its op, shape, layout, channels, grid, stride and receptive field, then how to
prepare the network with the names found. A thin layer over `list_layers`.
"""

from __future__ import annotations

import argparse

from .._layer_catalog import layers_table, list_layers
from .._metadata import LAYOUTS
from .._model_card import card_of
from .._onnx_graph import load_onnx
from .args import input_size

NAME = "layers"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `layers` to the `semdict` command's subparsers and return its parser."""
    parser = subparsers.add_parser(
        NAME,
        help="list the tensors of your own ONNX network that can be dictionary layers",
        description="List the feature maps and token sequences of an ONNX vision network (a "
        "raw export: torchvision, timm, tf2onnx, a ViT), in network order, with the names "
        "`semdict prepare --layer` takes.",
    )
    parser.add_argument("model", metavar="MODEL.onnx", help="the ONNX network")
    add_input_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """--size, --layout and --input-name: what the graph may leave open about its input."""
    parser.add_argument(
        "--size",
        "--input-size",
        dest="input_size",
        type=input_size,
        metavar="S|HxW",
        help="the input size shapes are computed at, for a graph whose height and width are "
        "open (default 224); a fixed graph keeps its own",
    )
    parser.add_argument(
        "--layout",
        type=str.upper,
        choices=LAYOUTS,
        help="the input's layout, where the graph does not say",
    )
    parser.add_argument("--input-name", help="the image input of a graph with several inputs")


def run(args: argparse.Namespace) -> int:
    """Print the table of candidate layers; 1 when the network has none."""
    model = load_onnx(args.model)
    candidates = list_layers(model, args.input_size, args.layout, args.input_name)
    card = card_of(model)
    if not candidates:
        print(f"{args.model}: no tensor is a feature map or a token sequence of the image")
        return 1
    print(layers_table(candidates))
    print(f"\n{len(candidates)} tensors can be layers.")
    if card is not None:
        print(
            f"note: {args.model} is already prepared (its layers: {', '.join(card.layer_names)});"
            " load it as it is with `--model`"
        )
    else:
        print(
            f"Prepare: semdict prepare {args.model} --layer SHORT=TENSOR [--layer ...] "
            "--preprocessing PRESET --out PREPARED.onnx"
        )
    return 0
