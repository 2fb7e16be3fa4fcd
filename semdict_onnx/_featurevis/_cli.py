"""The `semdict render` subcommand: a spritemap of feature visualizations, resumable.

    semdict render --layer mixed4d --out PATH [--model PATH] [--channels 0-15,40]
                   [--basis BASIS.npz] [--size 128] [--steps 256] [--seed 0]
                   [--learning-rate 0.05] [--no-transforms] [--sprite-size N] [--per-row N]
                   [--batch-size N] [--checkpoint PATH.npz] [--no-progress]

Progress is saved after every batch in a checkpoint beside the output (PATH's name with
`.render.npz`, or --checkpoint): run the same command again after an interruption and it
goes on from there. The checkpoint is removed once the grid and its manifest are written.
`add_parser` adds the subcommand to the `semdict` command's subparsers; `main` runs it alone.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .._bases import Basis
from .._cli.args import MODEL_HELP, positive_int
from .._spritemap import IMAGE_FORMATS, manifest_path_for
from .._spritemap_files import check_save_target
from ..errors import OptionError, SemdictError
from ._settings import DEFAULT_LEARNING_RATE, DEFAULT_SIZE, DEFAULT_STEPS

DESCRIPTION = (
    "Render a spritemap of a layer's channels (or of a basis's directions) as feature "
    "visualizations: for each, a picture optimized to excite it, with Lucid's recipe on ONNX "
    "Runtime. Writes the grid image and a JSON manifest beside it; resumable."
)
INTERRUPTED = 130


def _rate(text: str) -> float:
    """An argparse type: a positive number."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
    return value


def channel_list(text: str) -> list[int]:
    """An argparse type: channels as `3`, `0-15` or `0-7,12,40-41` (ranges inclusive)."""
    channels: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise argparse.ArgumentTypeError(
                f"channels are numbers and ranges such as 0-15,40, not {text!r}"
            )
        channels += range(int(first), int(last if dash else first) + 1)
    return channels


def checkpoint_for(out: Path) -> Path:
    """The default checkpoint of a render written to `out`: beside it, `<stem>.render.npz`."""
    return out.with_name(f"{out.stem}.render.npz")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `render` to the `semdict` command's subparsers and return its parser."""
    parser = subparsers.add_parser(
        "render", help="render feature visualizations of a layer", description=DESCRIPTION
    )
    parser.add_argument("--layer", required=True, help="layer to picture, e.g. mixed4d")
    parser.add_argument(
        "--out", required=True, help="grid image to write (.jpg, .jpeg or .png); manifest: .json"
    )
    parser.add_argument("--model", help=MODEL_HELP)
    parser.add_argument(
        "--channels", type=channel_list, help="which to render, e.g. 0-15,40 (default: all)"
    )
    parser.add_argument(
        "--basis", metavar="BASIS.npz", help="one sprite per direction of this basis file"
    )
    parser.add_argument("--size", type=positive_int, default=DEFAULT_SIZE, help="picture side, px")
    parser.add_argument("--steps", type=positive_int, default=DEFAULT_STEPS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning-rate", type=_rate, default=DEFAULT_LEARNING_RATE)
    parser.add_argument(
        "--no-transforms", action="store_true", help="no random pad/jitter/scale/rotate"
    )
    parser.add_argument("--sprite-size", type=positive_int, help="sprite side (default: --size)")
    parser.add_argument("--per-row", type=positive_int, help="sprites per row (default: square)")
    parser.add_argument(
        "--batch-size", type=positive_int, help="pictures at once (default: 8 CPU, 64 CUDA)"
    )
    parser.add_argument(
        "--checkpoint", help="where progress is saved (default: beside --out, .render.npz)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Render, save and report; 0 on success, 130 when interrupted (errors are raised)."""
    out = Path(args.out).expanduser()
    checkpoint = Path(args.checkpoint).expanduser() if args.checkpoint else checkpoint_for(out)
    if out.suffix.lower() not in IMAGE_FORMATS:
        raise OptionError(
            f"--out {str(out)!r} must end in {', '.join(IMAGE_FORMATS)} (the grid image)"
        )
    check_save_target(out, "--out")  # writable, and no foreign NAME.json: before the render
    from ._render import render_spritemap  # the gradient machinery loads only for a render

    basis = Basis.load(args.basis, layer=args.layer) if args.basis else None
    try:
        spritemap = render_spritemap(
            args.layer,
            args.model,
            args.channels,
            basis=basis,
            size=args.size,
            steps=args.steps,
            seed=args.seed,
            learning_rate=args.learning_rate,
            transforms=not args.no_transforms,
            sprite_size=args.sprite_size,
            per_row=args.per_row,
            batch_size=args.batch_size,
            checkpoint=checkpoint,
            progress=not args.no_progress,
        )
        spritemap.save(out)
    except KeyboardInterrupt:
        kept = (
            f"the finished batches are kept in {checkpoint}"
            if checkpoint.exists()
            else "no batch had finished"
        )
        print(
            f"semdict render: interrupted; {kept}. Run the same command again to go on.",
            file=sys.stderr,
        )
        return INTERRUPTED
    checkpoint.unlink(missing_ok=True)
    manifest = spritemap.manifest or {}
    print(
        f"wrote {out} and {manifest_path_for(out)}: {len(manifest['rendered'])} of "
        f"{spritemap.channels} {manifest.get('basis', 'neurons')} sprites of layer "
        f"{spritemap.layer} rendered"
    )
    if manifest.get("model", {}).get("replica"):
        print("note: rendered on a REPLICA model (random weights); its pictures mean nothing")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run `render` on its own (as `semdict render` does): `main(["--layer", ...])`."""
    parser = argparse.ArgumentParser(prog="semdict")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["render", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.run(args)
    except SemdictError as exc:
        print(f"semdict render: error: {exc}", file=sys.stderr)
        return 1
