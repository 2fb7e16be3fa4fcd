"""The `semdict` command: dictionary pages for images, and subcommands such as `spritemap`.

    semdict IMAGE... --out DIR [--layer mixed4d] [--model PATH] [--top-k 4] [--spritemap PATH]
    semdict spritemap --layer mixed4d --images DIR --out PATH

Each subcommand is a module function that adds its parser (setting `run`) to the subparsers;
`semdict IMAGE...` is short for `semdict pages IMAGE...`. A thin layer over the public API.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tqdm import tqdm

from . import spritemap_cli
from .errors import SemdictError
from .semantic_dict import DEFAULT_LAYER, DEFAULT_TOP_K, check_top_k, semantic_dict
from .spritemap import Spritemap

PAGES = "pages"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _positive(text: str) -> int:
    """An argparse type: a positive integer."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return int(text)


def add_pages_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `pages` (the default subcommand) to the `semdict` command's subparsers."""
    parser = subparsers.add_parser(
        PAGES,
        help="write a semantic dictionary page per image (the default: `semdict IMAGE...`)",
        description="Write a standalone semantic dictionary page (HTML) for each image.",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files or http(s) URLs")
    parser.add_argument("--out", required=True, type=Path, help="folder to write the pages to")
    parser.add_argument("--layer", default=DEFAULT_LAYER, help=f"layer (default {DEFAULT_LAYER})")
    parser.add_argument("--model", help="exported ONNX model (default: scripts/export.py's)")
    parser.add_argument(
        "--top-k", type=_positive, default=DEFAULT_TOP_K, help="channels per position"
    )
    parser.add_argument(
        "--spritemap",
        help="a saved spritemap (grid image or its .json manifest, e.g. from `semdict "
        "spritemap`); default: the model's public one, else channel numbers",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_pages)
    return parser


SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], argparse.ArgumentParser], ...] = (
    add_pages_parser,
    spritemap_cli.add_parser,
)


def page_name(image: str, layer: str, taken: set[str]) -> str:
    """A safe, unused file name for an image's page: <image stem>-<layer>.html."""
    if image.lower().startswith(("http://", "https://")):
        stem = Path(unquote(urlsplit(image).path)).stem
    else:
        stem = Path(image).stem
    base = _UNSAFE_NAME.sub("_", f"{stem}-{layer}").strip("._-") or "image"
    name, number = f"{base}.html", 1
    while name in taken:
        number += 1
        name = f"{base}-{number}.html"
    taken.add(name)
    return name


def run_pages(args: argparse.Namespace) -> int:
    """Write one page per image; 0 when all were written, 1 when any failed (each is named)."""
    from .model import load_model

    try:
        model = load_model(args.model)
        check_top_k(args.top_k, model.info.layer(args.layer).channels, args.layer)
        spritemap = Spritemap.load(args.spritemap) if args.spritemap else None
        if spritemap is not None:
            spritemap.validate_for(args.layer, model.layers[args.layer])
    except SemdictError as exc:
        print(f"semdict: error: {exc}", file=sys.stderr)
        return 1
    written: list[Path] = []
    failed: list[str] = []
    taken: set[str] = set()
    bar = tqdm(args.images, unit="image", desc=f"semdict {args.layer}", disable=args.no_progress)
    for image in bar:
        try:
            result = semantic_dict(image, args.layer, model, args.top_k, spritemap)
            written.append(result.save(args.out / page_name(image, args.layer, taken)))
        except SemdictError as exc:
            failed.append(f"{image}: {exc}")
    bar.close()
    for path in written:
        print(f"wrote {path}")
    for failure in failed:
        print(f"semdict: error: {failure}", file=sys.stderr)
    print(f"{len(written)} of {len(args.images)} pages written to {args.out}")
    if model.is_replica:
        print(f"note: {model.info.weights_note}")
    return 1 if failed else 0


def build_parser() -> tuple[argparse.ArgumentParser, set[str]]:
    """The `semdict` parser with every subcommand, and the subcommands' names."""
    parser = argparse.ArgumentParser(
        prog="semdict",
        description="Semantic dictionaries of a vision network's activations, on ONNX Runtime.",
        epilog="`semdict IMAGE... --out DIR` is short for `semdict pages IMAGE... --out DIR`.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser, set(subparsers.choices)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `semdict` command line; returns the exit status."""
    parser, commands = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] not in commands and arguments[0] not in ("-h", "--help"):
        arguments.insert(0, PAGES)
    args = parser.parse_args(arguments)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
