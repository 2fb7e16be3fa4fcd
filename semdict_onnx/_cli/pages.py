"""`semdict pages IMAGE... --out DIR` (also plain `semdict IMAGE...`): a page per image.

Writes `DIR/<image name>-<layer>.html` per image, or one gallery page, optionally with each
dictionary's top-k tables beside it. Page names keep the image name's letters in any script
(`猫.jpg` -> `猫-mixed4d.html`) and replace only what is unsafe in a file name; two images of
one name get `-2`, `-3`, ..., compared as a case-insensitive file system would, so no page
of a run overwrites another. --out is made and checked for writing before any image is read.
An image that fails (unreadable, or its page cannot be written) is named on stderr at the end
and the others still get their pages (exit status 1); Ctrl-C keeps the pages finished so far.
A thin layer over `semantic_dict`, `SemanticDict.save` and `Gallery`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from .._atomic import check_output_folder, write_text_atomic
from .._bases import NEURONS, NMF_METHOD, Basis
from .._defaults import DEFAULT_GROUPS, DEFAULT_LAYER, DEFAULT_TOP_K
from .._images import source_name
from .._model import load_model
from .._paths import local_path
from .._pipeline import semantic_dict
from .._progress import progress_bar
from .._ranking import check_top_k
from .._results import SCALES, Gallery, SemanticDict
from .._spritemap import Spritemap
from ..errors import OptionError, SemdictError
from .args import MODEL_HELP, input_size, positive_int
from .outcome import Interrupted, describe_os_error

NAME = "pages"
# Room for "-2.html" and more within the 255 bytes most file systems allow in a name.
MAX_NAME_BYTES = 200


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `pages` (the default subcommand) to the `semdict` command's subparsers."""
    parser = subparsers.add_parser(
        NAME,
        help="write a semantic dictionary page per image (the default: `semdict IMAGE...`)",
        description="Write a standalone semantic dictionary page (HTML) for each image.",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files or http(s) URLs")
    parser.add_argument(
        "--out", required=True, type=local_path, help="folder to write the pages to"
    )
    parser.add_argument(
        "--layer",
        help=f"layer (default: {DEFAULT_LAYER} where the model has it, else the last layer "
        "its card lists)",
    )
    parser.add_argument("--model", type=local_path, help=MODEL_HELP)
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


def _is_safe(char: str) -> bool:
    """Letters, marks and digits of any script, and . _ - (never a separator or control)."""
    return char in "._-" or unicodedata.category(char)[0] in "LMN"


def safe_file_stem(text: str) -> str:
    """`text` as a file name stem: NFC, each run of unsafe characters one `_`, no leading or
    trailing dots, dashes or underscores, at most MAX_NAME_BYTES of UTF-8."""
    text = unicodedata.normalize("NFC", text)
    runs = itertools.groupby(text, _is_safe)
    stem = "".join("".join(chars) if safe else "_" for safe, chars in runs).strip("._-")
    encoded = stem.encode("utf-8")[:MAX_NAME_BYTES]
    return encoded.decode("utf-8", errors="ignore").rstrip("._-")


def page_name(image: str, layer: str, taken: set[str]) -> str:
    """A safe file name for an image's page, <image stem>-<layer>.html, unused in `taken`.

    `taken` holds the names given so far, case-folded, since a case-insensitive file system
    (macOS, Windows) would store Cat-x.html and cat-x.html as one file.
    """
    parts = (safe_file_stem(Path(source_name(image)).stem), safe_file_stem(layer))
    base = safe_file_stem("-".join(part for part in parts if part)) or "image"
    name, number = f"{base}.html", 1
    while name.casefold() in taken:
        number += 1
        name = f"{base}-{number}.html"
    taken.add(name.casefold())
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
    args.layer = args.layer or model.info.default_layer
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
    check_output_folder(args.out, "--out")  # before any image is read
    options = {"basis": bases, "n_groups": args.groups, "scale": args.scale, "size": args.size}
    written: list[Path] = []
    done: list[SemanticDict] = []
    failed: list[str] = []
    taken: set[str] = {args.gallery.casefold()} if args.gallery else set()
    desc = f"semdict {args.layer}"
    try:
        with progress_bar(args.images, unit="image", desc=desc, disable=args.no_progress) as bar:
            for image in bar:
                try:
                    result = semantic_dict(
                        image, args.layer, model, args.top_k, spritemaps, **options
                    )
                    page = args.out / page_name(image, args.layer, taken)
                    if not args.gallery:
                        written.append(result.save(page))
                    written += _write_tables(result, page, args.tables)
                    done.append(result)
                except SemdictError as exc:
                    failed.append(f"{image}: {exc}")
                except OSError as exc:
                    failed.append(f"{image}: {describe_os_error(exc)}")
        if args.gallery and done:
            title = f"{args.layer}: {len(done)} images"
            written.append(Gallery(done, title).save(args.out / args.gallery))
    except KeyboardInterrupt:
        raise Interrupted(written) from None
    for path in written:
        print(f"wrote {path}")
    for failure in failed:
        print(f"semdict: error: {failure}", file=sys.stderr)
    what = "dictionaries in one gallery" if args.gallery else "pages"
    print(f"{len(done)} of {len(args.images)} {what} written to {args.out}")
    if model.is_replica:
        print(f"note: {model.info.weights_note}")
    return 1 if failed else 0
