"""`semdict basis`: fit a dictionary of NMF directions over a folder of images.

    semdict basis --layer mixed4d --images DIR --out BASIS.npz [--components 6] [--model PATH]
                  [--passes 1] [--batch-size N] [--seed 0] [--no-progress]

A thin layer over `fit_basis` and `Basis.save`; the file it writes is what `semdict IMAGE...
--basis BASIS.npz` and `semdict spritemap --basis BASIS.npz` read. --out is checked for writing
before any image is read.
"""

from __future__ import annotations

import argparse
import warnings

from .._atomic import check_output_file
from .._defaults import DEFAULT_GROUPS
from .._nmf import NMF_SEED, fit_basis
from .._paths import local_path
from ..errors import OptionError
from .args import add_batch_arguments, add_image_folder_arguments, positive_int

DESCRIPTION = (
    "Fit a dictionary of directions of a layer's activation space over many images (NMF of "
    "every position of every image, in batches), and save it as a small .npz file that names "
    "its layer and channel count."
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `basis` to the `semdict` command's subparsers and return its parser."""
    parser = subparsers.add_parser(
        "basis", help="fit a basis (NMF directions) over your own images", description=DESCRIPTION
    )
    add_image_folder_arguments(parser, "layer to factorize, e.g. mixed4d")
    parser.add_argument("--out", required=True, help="basis file to write (.npz)")
    parser.add_argument(
        "--components", type=positive_int, default=DEFAULT_GROUPS, help="directions to fit"
    )
    parser.add_argument("--passes", type=positive_int, default=1, help="passes over the images")
    parser.add_argument("--seed", type=int, default=NMF_SEED, help="random seed of the fit")
    add_batch_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Fit and save the basis and say what was written; 0 on success."""
    out = local_path(args.out)
    if out.suffix.lower() != ".npz":
        raise OptionError(f"--out {str(out)!r} must end in .npz")
    check_output_file(out, "--out")  # before minutes of work, not after
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        basis = fit_basis(
            args.images,
            args.layer,
            args.components,
            model=args.model,
            batch_size=args.batch_size,
            progress=not args.no_progress,
            passes=args.passes,
            seed=args.seed,
        )
    basis.save(out)
    print(f"wrote {out}: {basis.describe()} ({basis.channels} channels)")
    for warning in caught:
        print(f"note: {warning.message}")
    return 0
