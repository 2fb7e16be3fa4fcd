"""`semdict spritemap`: build a dataset-example spritemap from a folder of images.

    semdict spritemap --layer mixed4d --images DIR --out PATH [--model PATH]
                      [--sprite-size N] [--per-row N] [--examples-per-channel N]
                      [--crop-size N] [--batch-size N] [--basis BASIS.npz] [--no-progress]

A thin layer over `build_spritemap` and `Spritemap.save`. The grid's size limits (JPEG's side
limit too), the output's folder and an existing NAME.json are checked before any image is read.
"""

from __future__ import annotations

import argparse
import warnings

from .._bases import Basis
from .._dataset_examples import DEFAULT_SPRITE_SIZE, build_spritemap, grid_layout
from .._limits import check_grid
from .._model import load_model
from .._paths import local_path
from .._spritemap_files import IMAGE_FORMATS, check_save_target, manifest_path_for
from ..errors import OptionError
from .args import add_batch_arguments, add_image_folder_arguments, positive_int

DESCRIPTION = (
    "Build a spritemap of a layer's channels from dataset examples: for each channel, the "
    "patch of your images that excites it most (no GPU optimization, inference only). Writes "
    "the grid image and a JSON manifest beside it."
)


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
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Build and save the spritemap and say what was written; 0 on success."""
    out = local_path(args.out)
    if out.suffix.lower() not in IMAGE_FORMATS:
        raise OptionError(
            f"--out {str(out)!r} must end in {', '.join(IMAGE_FORMATS)} (the grid image)"
        )
    model = load_model(args.model)
    channels = model.info.layer(args.layer).channels
    basis = Basis.load(args.basis, layer=args.layer) if args.basis else None
    sprites = basis.k if basis is not None else channels
    per_row, rows = grid_layout(sprites, args.sprite_size, args.per_row)
    size = args.sprite_size
    image_format = IMAGE_FORMATS[out.suffix.lower()]
    check_grid(per_row * size, rows * size, image_format, "the spritemap grid", OptionError)
    check_save_target(out, "--out")  # before minutes of work, not after
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the skipped files are printed below
        spritemap = build_spritemap(
            args.images,
            args.layer,
            model,
            sprite_size=args.sprite_size,
            per_row=args.per_row,
            examples_per_channel=args.examples_per_channel,
            batch_size=args.batch_size,
            progress=not args.no_progress,
            crop_size=args.crop_size,
            basis=basis,
        )
    spritemap.save(out)
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
    return 0
