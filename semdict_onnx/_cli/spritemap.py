"""`semdict spritemap`: build a dataset-example spritemap from a folder of images.

    semdict spritemap --layer mixed4d --images DIR_OR_URI --out PATH [--model PATH]
                      [--sprite-size N] [--per-row N] [--examples-per-channel N]
                      [--crop-size N] [--batch-size N] [--basis BASIS.npz] [--no-progress]
                      [--engine local|ray] [--address ADDR] [--workers N]
                      [--cpus-per-worker N] [--gpus-per-worker G] [--block-size N]
                      [--checkpoint DIR_OR_URI]
                      [--basis-out BASIS.npz [--components K] [--sample-size N]]

A thin layer over `build_spritemap` and `Spritemap.save`; with --basis-out, over
`scan_dataset`, `spritemap_from_examples` and `fit_basis`, so that one pass over the images
gives the spritemap, its statistics and a fitted basis.
The grid's size limits (JPEG's side limit too), the output's folder and an existing
NAME.json are checked before any image is read.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

from .._bases import Basis
from .._dataset_examples import (
    DEFAULT_SPRITE_SIZE,
    build_spritemap,
    grid_layout,
    spritemap_from_examples,
)
from .._dataset_scan import DEFAULT_BLOCK_SIZE, scan_dataset
from .._defaults import DEFAULT_GROUPS
from .._engines import LOCAL, RAY, RayEngine
from .._limits import check_grid
from .._model import load_model
from .._nmf import fit_basis
from .._paths import local_path
from .._spritemap import Spritemap
from .._spritemap_files import IMAGE_FORMATS, check_save_target, manifest_path_for
from ..errors import OptionError
from .args import add_batch_arguments, add_image_folder_arguments, positive_int

DESCRIPTION = (
    "Build a spritemap of a layer's channels from dataset examples: for each channel, the "
    "patch of your images that excites it most (no GPU optimization, inference only). Writes "
    "the grid image and a JSON manifest beside it, with each channel's statistics over the "
    "images. --engine ray runs the scan on a Ray cluster, with the same result."
)
DEFAULT_SAMPLE_SIZE = 20_000
RAY_ONLY = ("address", "workers", "cpus_per_worker", "gpus_per_worker")


def non_negative_float(text: str) -> float:
    """An argparse type: a number of at least 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of at least 0, not {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `spritemap` to the `semdict` command's subparsers and return its parser."""
    parser = subparsers.add_parser(
        "spritemap", help="build a spritemap from your own images", description=DESCRIPTION
    )
    add_image_folder_arguments(parser, "layer to picture, e.g. mixed4d")
    parser.add_argument(
        "--out", required=True, help="grid image to write (.jpg, .jpeg or .png); manifest: .json"
    )
    parser.add_argument(
        "--sprite-size", type=positive_int, default=DEFAULT_SPRITE_SIZE, help="sprite side in px"
    )
    parser.add_argument("--per-row", type=positive_int, help="sprites per row (default: square)")
    parser.add_argument(
        "--examples-per-channel", type=positive_int, default=1, help="patches per sprite (mosaic)"
    )
    parser.add_argument(
        "--crop-size",
        type=positive_int,
        help="crop side in input pixels (default: receptive field, at most half the input)",
    )
    parser.add_argument(
        "--basis",
        metavar="BASIS.npz",
        help="one sprite per direction of this basis file (from `semdict basis`), not per channel",
    )
    add_batch_arguments(parser)
    _add_scan_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def _add_scan_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the scan runs, its blocks and checkpoint, and the one-pass basis."""
    scan = parser.add_argument_group("scan (docs/dataset-scale.md)")
    scan.add_argument("--engine", choices=(LOCAL, RAY), default=LOCAL, help="where to run")
    scan.add_argument("--address", help="Ray cluster to join, e.g. auto (default: a local one)")
    scan.add_argument("--workers", type=positive_int, help="Ray actors (default: fill the CPUs)")
    scan.add_argument("--cpus-per-worker", type=positive_int, help="CPUs per actor (1)")
    scan.add_argument(
        "--gpus-per-worker", type=non_negative_float, help="GPUs per actor (0: CPU; 0.5 shares)"
    )
    scan.add_argument(
        "--block-size",
        type=positive_int,
        default=DEFAULT_BLOCK_SIZE,
        help="images per partial state (the unit of work, retry and checkpoint)",
    )
    scan.add_argument(
        "--checkpoint", metavar="DIR_OR_URI", help="save progress here; run again to resume"
    )
    scan.add_argument(
        "--basis-out",
        metavar="BASIS.npz",
        help="also fit NMF directions on a uniform sample of activation vectors of this pass",
    )
    scan.add_argument(
        "--components", type=positive_int, default=DEFAULT_GROUPS, help="directions to fit"
    )
    scan.add_argument(
        "--sample-size",
        type=positive_int,
        default=DEFAULT_SAMPLE_SIZE,
        help="activation vectors sampled for --basis-out",
    )


def _engine(args: argparse.Namespace) -> str | RayEngine:
    """The engine the arguments ask for; Ray's options without --engine ray are an error."""
    given = {name: getattr(args, name) for name in RAY_ONLY if getattr(args, name) is not None}
    if args.engine == LOCAL:
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise OptionError(f"{flags} only apply to --engine ray")
        return LOCAL
    return RayEngine(**given)


def run(args: argparse.Namespace) -> int:
    """Build and save the spritemap (and basis) and say what was written; 0 on success."""
    out = local_path(args.out)
    if out.suffix.lower() not in IMAGE_FORMATS:
        raise OptionError(
            f"--out {str(out)!r} must end in {', '.join(IMAGE_FORMATS)} (the grid image)"
        )
    if args.basis_out and Path(args.basis_out).suffix.lower() != ".npz":
        raise OptionError(f"--basis-out {args.basis_out!r} must end in .npz")
    model = load_model(args.model)
    channels = model.info.layer(args.layer).channels
    basis = Basis.load(args.basis, layer=args.layer) if args.basis else None
    sprites = basis.k if basis is not None else channels
    per_row, rows = grid_layout(sprites, args.sprite_size, args.per_row)
    size = args.sprite_size
    image_format = IMAGE_FORMATS[out.suffix.lower()]
    check_grid(per_row * size, rows * size, image_format, "the spritemap grid", OptionError)
    check_save_target(out, "--out")  # before minutes of work, not after
    common: dict[str, Any] = {
        "examples_per_channel": args.examples_per_channel,
        "batch_size": args.batch_size,
        "progress": not args.no_progress,
        "basis": basis,
        "engine": _engine(args),
        "block_size": args.block_size,
        "checkpoint": args.checkpoint,
    }
    pictures = {"sprite_size": args.sprite_size, "per_row": args.per_row}
    pictures["crop_size"] = args.crop_size
    fitted = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the skipped files are printed below
        if args.basis_out:
            state = scan_dataset(
                args.images, args.layer, model, sample_size=args.sample_size, **common
            )
            spritemap = spritemap_from_examples(
                state, model, basis=basis, images=args.images, **pictures
            )
            fitted = fit_basis(state.sample, args.layer, args.components, progress=False)
            fitted.save(args.basis_out)
        else:
            spritemap = build_spritemap(args.images, args.layer, model, **pictures, **common)
    spritemap.save(out)
    _report(args, out, spritemap)
    if fitted is not None:
        print(
            f"wrote {args.basis_out}: {fitted.describe()}, fitted on {len(state.sample)} "
            "activation vectors sampled uniformly from their positions"
        )
    return 0


def _report(args: argparse.Namespace, out: Path, spritemap: Spritemap) -> None:
    """Print what was written, what was skipped, and whether the model is a replica."""
    manifest = spritemap.manifest or {}
    dead = manifest.get("dead_channels", [])
    print(
        f"wrote {out} and {manifest_path_for(out)}: {spritemap.channels} sprites of layer "
        f"{spritemap.layer} ({len(dead)} dead) from {manifest.get('images_seen')} images"
        + (f", one per direction of {args.basis}" if args.basis else "")
    )
    if manifest.get("skipped_count"):
        names = ", ".join(item["source"] for item in manifest["skipped"])
        print(f"skipped {manifest['skipped_count']} files that could not be read: {names}")
    if manifest.get("model", {}).get("replica"):
        print("note: built on a REPLICA model (random weights); its sprites mean nothing")
