"""The export's command line, one parser under three names.

`semdict export` and `python -m semdict_onnx.export` for an installed package, and
`python scripts/export.py` from a clone:

    semdict export                      # download InceptionV1.pb, export it
    semdict export --graphdef FILE.pb   # a local GraphDef; never touches the network
    semdict export --replica            # random-weight replica, no network needed

Only the pipeline imports TensorFlow, when an export starts, so --help and usage errors
answer at once, and where the `export` extra is missing the command says what to install.
The output file and the data folder are checked for writing before the export starts; how a
failure or Ctrl-C ends the command (one line, exit 1 or 130) is semdict_onnx/_cli/outcome.py's.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from semdict_onnx import _paths as paths
from semdict_onnx._atomic import check_output_file, check_output_folder
from semdict_onnx._cli.outcome import run_command
from semdict_onnx.errors import DownloadError, SemdictError

from ._download import normalize_sha256, sha256_of
from ._errors import FixedSizeWarning, GraphDefNotFoundError
from ._googlenet import GRAPHDEF_URL, LABELS_NAME, LABELS_URL
from ._pipeline import export_graphdef, fetch_graphdef

COMMAND = "export"
REPLICA_NAME = "InceptionV1-replica.pb"
DESCRIPTION = "Export Lucid's GoogLeNet (InceptionV1) GraphDef to ONNX for semdict_onnx."
EPILOG = "Nothing is written unless the export matches TensorFlow. See docs/export.md."


def _sha256(text: str) -> str:
    """An argparse type: a SHA-256 as 64 hex digits (any case, surrounding spaces ignored)."""
    try:
        return normalize_sha256(text)
    except DownloadError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The export's options on `parser`, which then runs the export with `run`."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--graphdef", metavar="PATH", help="a local GraphDef .pb; never touches the network"
    )
    source.add_argument(
        "--replica",
        action="store_true",
        help="export a replica with RANDOM weights (no network; for tests and offline setups)",
    )
    parser.add_argument(
        "--output", metavar="PATH", help="where to write the model (default: the runtime's)"
    )
    parser.add_argument(
        "--sha256",
        type=_sha256,
        metavar="HEX",
        help="required SHA-256 of the source GraphDef (pins it)",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help=f"the data folder for downloads and the default model (default: ${paths.HOME_ENV}, "
        "else $XDG_CACHE_HOME/semdict_onnx, else ~/.cache/semdict_onnx)",
    )
    parser.add_argument(
        "--labels",
        metavar="PATH_OR_URL",
        help=f"class names, one per line (default: {LABELS_NAME} from the modelzoo when "
        "downloading, or beside --graphdef); 'none' for no labels",
    )
    parser.add_argument(
        "--url", default=GRAPHDEF_URL, help="where to download the GraphDef (default: %(default)s)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no download progress bar")
    parser.set_defaults(run=run, prog=parser.prog)
    return parser


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `export` to the `semdict` command's subparsers."""
    parser = subparsers.add_parser(
        COMMAND,
        help="export GoogLeNet to ONNX (needs the export extra: TensorFlow, tf2onnx)",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    return add_arguments(parser)


def _default_labels(args: argparse.Namespace, graphdef_path: Path) -> str | None:
    """--labels, else the modelzoo labels for a download, else a labels file beside --graphdef."""
    if args.labels is not None:
        return None if args.labels.lower() == "none" else args.labels
    if args.graphdef is None:
        return LABELS_URL
    beside = graphdef_path.parent / LABELS_NAME
    if beside.is_file():
        return str(beside)
    print(f"note: no {LABELS_NAME} beside {graphdef_path}; the model will have no class names")
    return None


def _source_graphdef(args: argparse.Namespace, cache_dir: Path) -> Path:
    """The GraphDef to export: --graphdef, a fresh replica, or the (cached) download."""
    if args.replica:
        from ._replica import write_replica

        path = write_replica(cache_dir / REPLICA_NAME)
        print(f"built {path} (replica GraphDef, random weights)")
        return path
    if args.graphdef is not None:
        path = paths.local_path(args.graphdef)
        if path.is_dir():
            inside = path / paths.GRAPHDEF_NAME
            hint = f" such as {inside}" if inside.is_file() else ""
            raise GraphDefNotFoundError(
                f"--graphdef {path} is a folder; pass the GraphDef file itself{hint}"
            )
        if not path.is_file():
            raise GraphDefNotFoundError(
                f"--graphdef {path}: no such file; check the path, or leave out --graphdef "
                "to download Lucid's InceptionV1.pb"
            )
        return path
    return fetch_graphdef(args.url, cache_dir, args.sha256, progress=not args.no_progress)


def _check_pin(path: Path, sha256: str | None) -> str:
    """The file's SHA-256, after checking it against the pinned one if given."""
    actual = sha256_of(path)
    if sha256 and actual != sha256:
        raise DownloadError(
            f"{path} has SHA-256 {actual}, not the pinned {sha256}; use the right file or "
            "pin its hash"
        )
    return actual


def _one_line_warnings(show: Callable[..., None]) -> Callable[..., None]:
    """A `warnings.showwarning` that prints the export's own warnings as one line on stderr
    (`warning: ...`) and hands every other warning to `show`."""

    def one_line(message: Warning | str, category: type[Warning], *args: object, **kw: object):
        if issubclass(category, FixedSizeWarning):
            print(f"warning: {message}", file=sys.stderr, flush=True)
        else:
            show(message, category, *args, **kw)

    return one_line


def run(args: argparse.Namespace) -> int:
    """Run the export the parsed `args` describe; 0 on success, 1 with a message on failure."""
    cache_dir = paths.data_dir(args.cache_dir and paths.local_path(args.cache_dir))
    output = paths.local_path(args.output) if args.output else paths.default_model_path(cache_dir)
    try:
        check_output_file(output, "--output")  # before minutes of work, not after
        if args.replica or args.graphdef is None:
            check_output_folder(cache_dir, "the data folder (--cache-dir)")
        graphdef_path = _source_graphdef(args, cache_dir)
        digest = _check_pin(graphdef_path, args.sha256)
        print(f"source graph sha256: {digest}")
        if not args.sha256 and not args.replica:
            print(f"  (pin it: {args.prog} --sha256 {digest} ...)")
        with warnings.catch_warnings():
            warnings.simplefilter("always", FixedSizeWarning)
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            result = export_graphdef(
                graphdef_path,
                output,
                labels=_default_labels(args, graphdef_path),
                cache_dir=cache_dir,
                progress=not args.no_progress,
            )
    except SemdictError as exc:
        print(f"export failed: {exc}. No model was written to {output}.", file=sys.stderr)
        return 1
    info = result.info
    size_mb = os.path.getsize(result.path) / 1e6
    print(f"wrote {result.path} ({size_mb:.1f} MB) in {result.seconds:.1f} s")
    shapes = (
        f"{layer.name} {layer.height}x{layer.width}x{layer.channels}" for layer in info.layers
    )
    print(f"layers (HxWxC at {info.input.height}x{info.input.width}): " + ", ".join(shapes))
    print(f"input: {info.input.describe_sizes()}")
    labels = len(info.labels) if info.labels else "none"
    print(f"labels: {labels}; spritemaps: {len(info.spritemaps)}")
    print(info.weights_note)
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The export as a command of its own (`prog` names it in help and hints)."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG)
    args = add_arguments(parser).parse_args(argv)
    return run_command(args, parser.prog)
