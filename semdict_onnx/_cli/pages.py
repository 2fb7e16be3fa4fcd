"""`semdict pages IMAGE... --out DIR` (also plain `semdict IMAGE...`): a page per image.

Writes `DIR/<image name>-<layer>.html` per image (names made safe and unique), or one gallery
page, optionally with each dictionary's top-k tables beside it. A bad image is named on
stderr and the others still get their pages (exit status 1). A thin layer over
`semantic_dict`, `SemanticDict.save` and `Gallery`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from .._atomic import write_text_atomic
from .._bases import NEURONS, NMF_METHOD, Basis
from .._defaults import DEFAULT_GROUPS, DEFAULT_LAYER, DEFAULT_TOP_K
from .._images import source_name
from .._model import load_model
from .._pipeline import semantic_dict
from .._progress import progress_bar
from .._ranking import check_top_k
from .._results import SCALES, Gallery, SemanticDict
from .._spritemap import Spritemap
from ..errors import OptionError, SemdictError
from .args import MODEL_HELP, input_size, positive_int

NAME = "pages"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `pages` (the default subcommand) to the `semdict` command's subparsers."""
    parser = subparsers.add_parser(
        NAME,
        help="write a semantic dictionary page per image (the default: `semdict IMAGE...`)",
        description="Write a standalone semantic dictionary page (HTML) for each image.",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files or http(s) URLs")
    parser.add_argument("--out", required=True, type=Path, help="folder to write the pages to")
    parser.add_argument("--layer", default=DEFAULT_LAYER, help=f"layer (default {DEFAULT_LAYER})")
    parser.add_argument("--model", help=MODEL_HELP)
    parser.add_argument(
        "--top-k", type=positive_int, default=DEFAULT_TOP_K, help="channels per position"
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
        type=positive_int,
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
        type=input_size,
        metavar="S|HxW",
        help="input size: S keeps each image's aspect ratio with shorter side S (the grid then "
        "follows it, e.g. a wide photo gets more columns), HxW is exact; default: the aspect "
        "ratio kept at the model's shorter side (224 for GoogLeNet), or a fixed-size model's "
        "own size",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)
    return parser


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


def run(args: argparse.Namespace) -> int:
    """Write one page per image (or one gallery); 0 when all were written, 1 when any failed.

    A model, layer or option that cannot be used raises before any image is read.
    """
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
    options = {"basis": bases, "n_groups": args.groups, "scale": args.scale, "size": args.size}
    written: list[Path] = []
    done: list[SemanticDict] = []
    failed: list[str] = []
    taken: set[str] = set()
    bar = progress_bar(
        args.images, unit="image", desc=f"semdict {args.layer}", disable=args.no_progress
    )
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
