"""The `semdict` command: dictionary pages for images, and subcommands such as `spritemap`.

    semdict IMAGE... --out DIR [--layer mixed4d] [--model PATH] [--top-k 4] [--spritemap PATH]
                     [--basis neurons|nmf|BASIS.npz]... [--groups 6] [--scale image|raw|dataset]
                     [--gallery NAME.html] [--tables json|npz] [--size 224|HEIGHTxWIDTH]
    semdict spritemap --layer mixed4d --images DIR --out PATH [--basis BASIS.npz]
    semdict basis --layer mixed4d --images DIR --components 6 --out BASIS.npz

Each subcommand is a module function that adds its parser (setting `run`) to the subparsers;
`semdict IMAGE...` is short for `semdict pages IMAGE...`. A thin layer over the public API.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from . import basis_cli, spritemap_cli
from ._atomic import write_text_atomic
from ._bases import NEURONS, NMF_METHOD, Basis
from ._defaults import DEFAULT_GROUPS, DEFAULT_LAYER, DEFAULT_TOP_K
from ._images import source_name
from ._pipeline import semantic_dict
from ._ranking import check_top_k
from ._results import SCALES, Gallery, SemanticDict
from ._spritemap import Spritemap
from .errors import OptionError, SemdictError

PAGES = "pages"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _positive(text: str) -> int:
    """An argparse type: a positive integer."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return int(text)


def _input_size(text: str) -> int | tuple[int, int]:
    """An argparse type: a shorter side (`224`) or a height and width (`224x320`)."""
    parts = text.lower().split("x")
    if len(parts) in (1, 2) and all(part.isdigit() and int(part) >= 1 for part in parts):
        sides = tuple(int(part) for part in parts)
        return sides[0] if len(sides) == 1 else sides
    raise argparse.ArgumentTypeError(
        f"must be a positive integer (the shorter side, keeping the aspect ratio) or "
        f"HEIGHTxWIDTH such as 224x320, not {text!r}"
    )


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
        action="append",
        help="a saved spritemap (grid image or its .json manifest, e.g. from `semdict "
        "spritemap`), of the neurons or of a --basis file; repeat for several; default: the "
        "model's public one (else channel numbers) and, for other bases, the image's own patches",
    )
    parser.add_argument(
        "--basis",
        action="append",
        metavar="neurons|nmf|BASIS.npz",
        help="basis of the dictionary: the neurons (default), nmf (groups fitted on each image) "
        "or a basis file (from `semdict basis`); repeat for a switch between several",
    )
    parser.add_argument(
        "--groups",
        type=_positive,
        default=DEFAULT_GROUPS,
        help="NMF groups per image (--basis nmf)",
    )
    parser.add_argument(
        "--scale",
        choices=SCALES,
        default="image",
        help="bars relative to the image's largest value (default), raw values on one scale, "
        "or each direction's typical maximum in its spritemap's dataset",
    )
    parser.add_argument(
        "--gallery", metavar="NAME.html", help="write one gallery page of all images in --out"
    )
    parser.add_argument(
        "--tables",
        choices=("json", "npz"),
        help="also write each dictionary's top-k tables beside its page (to_dict or save_npz)",
    )
    parser.add_argument(
        "--size",
        type=_input_size,
        metavar="S|HxW",
        help="input size: S keeps each image's aspect ratio with shorter side S (the grid then "
        "follows it, e.g. a wide photo gets more columns), HxW is exact; default: the model's "
        "own (224x224 for GoogLeNet), stretching the image",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_pages)
    return parser


SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], argparse.ArgumentParser], ...] = (
    add_pages_parser,
    spritemap_cli.add_parser,
    basis_cli.add_parser,
)


def page_name(image: str, layer: str, taken: set[str]) -> str:
    """A safe, unused file name for an image's page: <image stem>-<layer>.html."""
    stem = Path(source_name(image)).stem
    base = _UNSAFE_NAME.sub("_", f"{stem}-{layer}").strip("._-") or "image"
    name, number = f"{base}.html", 1
    while name in taken:
        number += 1
        name = f"{base}-{number}.html"
    taken.add(name)
    return name


def _bases(names: Sequence[str] | None, layer: str, channels: int) -> list[str | Basis]:
    """The --basis values: "neurons", "nmf", or the basis files they name, checked."""
    bases: list[str | Basis] = []
    for name in names or [NEURONS]:
        if name in (NEURONS, NMF_METHOD):
            bases.append(name)
        else:
            bases.append(Basis.load(name, layer, channels))
    return bases


def _write_tables(result: SemanticDict, page: Path, kind: str | None) -> list[Path]:
    """The top-k tables beside a page, as JSON or NPZ, when asked for."""
    if kind == "json":
        text = json.dumps(result.to_dict()) + "\n"
        return [write_text_atomic(page.with_suffix(".json"), text)]
    if kind == "npz":
        return [result.save_npz(page.with_suffix(".npz"))]
    return []


def run_pages(args: argparse.Namespace) -> int:
    """Write one page per image (or one gallery); 0 when all were written, 1 when any failed."""
    from ._model import load_model

    try:
        model = load_model(args.model)
        channels = model.info.layer(args.layer).channels
        check_top_k(args.top_k, channels, args.layer)
        spritemaps = [Spritemap.load(path) for path in args.spritemap or []]
        for spritemap in spritemaps:
            if spritemap.basis == NEURONS:
                spritemap.validate_for(args.layer, channels)
        bases = _bases(args.basis, args.layer, channels)
        model.input_size_for(model.input_size, args.size)  # a size this model cannot take
        if args.gallery and Path(args.gallery).name != args.gallery:
            raise OptionError(f"--gallery {args.gallery!r} must be a file name, not a path")
    except SemdictError as exc:
        print(f"semdict: error: {exc}", file=sys.stderr)
        return 1
    options = {"basis": bases, "n_groups": args.groups, "scale": args.scale, "size": args.size}
    written: list[Path] = []
    done: list[SemanticDict] = []
    failed: list[str] = []
    taken: set[str] = set()
    bar = tqdm(args.images, unit="image", desc=f"semdict {args.layer}", disable=args.no_progress)
    for image in bar:
        try:
            result = semantic_dict(image, args.layer, model, args.top_k, spritemaps, **options)
            page = args.out / page_name(image, args.layer, taken)
            if not args.gallery:
                written.append(result.save(page))
            written += _write_tables(result, page, args.tables)
            done.append(result)
        except SemdictError as exc:
            failed.append(f"{image}: {exc}")
    bar.close()
    if args.gallery and done:
        title = f"{args.layer}: {len(done)} images"
        written.append(Gallery(done, title).save(args.out / args.gallery))
    for path in written:
        print(f"wrote {path}")
    for failure in failed:
        print(f"semdict: error: {failure}", file=sys.stderr)
    what = "dictionaries in one gallery" if args.gallery else "pages"
    print(f"{len(done)} of {len(args.images)} {what} written to {args.out}")
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
