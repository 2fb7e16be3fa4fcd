"""The `semdict` command: dictionary pages for images, and subcommands such as `spritemap`.

    semdict IMAGE... --out DIR [--layer mixed4d] [--model PATH] [--top-k 4] [--spritemap PATH]
                     [--basis neurons|nmf|BASIS.npz]... [--groups 6] [--scale image|raw|dataset]
                     [--gallery NAME.html] [--tables json|npz] [--size 224|HEIGHTxWIDTH]
    semdict spritemap --layer mixed4d --images DIR --out PATH [--basis BASIS.npz]
    semdict basis --layer mixed4d --images DIR --components 6 --out BASIS.npz
    semdict render --layer mixed4d --out PATH [--channels 0-31] [--basis BASIS.npz]
    semdict layers MODEL.onnx [--size HxW] [--layout NCHW|NHWC]
    semdict prepare MODEL.onnx --layer [SHORT=]TENSOR... --out PREPARED.onnx [--preprocessing ...]
    semdict export [--replica | --graphdef PATH] [--output PATH]   (needs the export extra)

Each subcommand is a module whose `add_parser(subparsers)` adds its parser and sets the
`run(args) -> int` it calls; a new subcommand is one more entry in SUBCOMMANDS. Every run
goes through `outcome.run_command`: a SemdictError or any other OSError is one line on stderr
and exit status 1, Ctrl-C one line and 130, never a traceback (argparse's own errors: 2).
`semdict IMAGE...` is short for `semdict pages IMAGE...`: when the first argument names no
subcommand, the default subcommand's parser reads the arguments. A thin layer over the
public API; `python -m semdict_onnx` runs it too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .._featurevis import _cli as featurevis
from ..export import _cli as export
from . import basis, layers, pages, prepare, spritemap
from .outcome import run_command

SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], argparse.ArgumentParser], ...] = (
    pages.add_parser,
    spritemap.add_parser,
    basis.add_parser,
    featurevis.add_parser,
    layers.add_parser,
    prepare.add_parser,
    export.add_parser,
)
DEFAULT_COMMAND = pages.NAME


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The `semdict` parser with every subcommand, and the subcommands' parsers by name."""
    parser = argparse.ArgumentParser(
        prog="semdict",
        description="Semantic dictionaries of a vision network's activations, on ONNX Runtime.",
        epilog=f"`semdict IMAGE... --out DIR` is short for `semdict {DEFAULT_COMMAND} IMAGE... "
        "--out DIR`.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser, dict(subparsers.choices)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `semdict` command line; returns the exit status."""
    parser, commands = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    names_command = not arguments or arguments[0] in (*commands, "-h", "--help")
    args = (parser if names_command else commands[DEFAULT_COMMAND]).parse_args(arguments)
    command = getattr(args, "command", None) or DEFAULT_COMMAND
    return run_command(args, "semdict" if command == DEFAULT_COMMAND else f"semdict {command}")


if __name__ == "__main__":
    sys.exit(main())
