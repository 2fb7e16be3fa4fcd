"""Argument types and arguments that several `semdict` subcommands share."""

from __future__ import annotations

import argparse

from .._defaults import DEFAULT_BATCH_SIZE
from .._paths import local_path

MODEL_HELP = "exported ONNX model (default: scripts/export.py's)"


def positive_int(text: str) -> int:
    """An argparse type: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def input_size(text: str) -> int | tuple[int, int]:
    """An argparse type: a shorter side (`224`) or a height and width (`224x320`)."""
    try:
        sides = tuple(positive_int(part) for part in text.lower().split("x"))
    except argparse.ArgumentTypeError:
        sides = ()
    if len(sides) in (1, 2):
        return sides[0] if len(sides) == 1 else sides
    raise argparse.ArgumentTypeError(
        f"must be a positive integer (the shorter side, keeping the aspect ratio) or "
        f"HEIGHTxWIDTH such as 224x320, not {text!r}"
    )


def add_image_folder_arguments(parser: argparse.ArgumentParser, layer_help: str) -> None:
    """--layer, --images and --model: a layer of a model, run over a folder of images."""
    parser.add_argument("--layer", required=True, help=layer_help)
    parser.add_argument(
        "--images", required=True, help="folder of images (searched recursively) or one image"
    )
    parser.add_argument("--model", type=local_path, help=MODEL_HELP)


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """--batch-size and --no-progress, for subcommands that run many images."""
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
