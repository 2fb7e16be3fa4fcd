"""Export Lucid's GoogLeNet (InceptionV1) from its TensorFlow GraphDef to one ONNX model.

    python scripts/export.py                      # download InceptionV1.pb, export it
    python scripts/export.py --graphdef FILE.pb   # a local GraphDef; never touches the network
    python scripts/export.py --replica            # random-weight replica, no network needed

The model is checked against TensorFlow before it is written; on any failure nothing is
written and the exit status is 1. See docs/export.md. The TensorFlow-side modules
(convert, parity, replica) are imported where they are needed, so that --help, usage
errors and download failures answer without the seconds TensorFlow takes to load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from googlenet import (
    CLASS_OUTPUT,
    GRAPHDEF_URL,
    INPUT_NAME,
    INPUT_SIZE,
    LABELS_NAME,
    LABELS_URL,
    MODELZOO,
    NETWORK,
    NETWORK_RANGE,
    OUTPUTS,
    REPLICA_NETWORK,
    VALUE_RANGE,
    spritemaps,
)

from semdict_onnx import _paths as paths
from semdict_onnx._atomic import write_bytes_atomic
from semdict_onnx._metadata import InputInfo, LayerInfo, ModelInfo
from semdict_onnx.download import cached_download, normalize_sha256, sha256_of
from semdict_onnx.errors import DownloadError, SemdictError

REPLICA_NAME = "InceptionV1-replica.pb"
PARITY_IMAGES = 3
# The other input size the export checks: wider than tall, so swapped axes would show.
OTHER_SIZE = (224, 320)
OTHER_SIZE_IMAGES = 2
REPLICA_WARNING = (
    "REPLICA: this model has the real network's structure but RANDOM weights; "
    "its activations and classes mean nothing."
)


if TYPE_CHECKING:
    from parity import LayerParity


class LabelsError(SemdictError):
    """A class-labels file that is missing or does not fit the model."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and measured."""

    path: Path
    info: ModelInfo
    parity: list[LayerParity]
    other_size_parity: list[LayerParity]
    seconds: float


def fetch_graphdef(
    url: str, cache_dir: Path, sha256: str | None = None, progress: bool = True
) -> Path:
    """The GraphDef from `url` in `cache_dir`, downloaded unless a verified copy is there."""
    dest = cache_dir / paths.GRAPHDEF_NAME
    try:
        path, reused = cached_download(url, dest, sha256=sha256, progress=progress)
    except DownloadError as exc:
        raise DownloadError(
            f"{exc}. Without network, download {url} elsewhere and run "
            "`python scripts/export.py --graphdef PATH`, or use --replica for a "
            "random-weight stand-in"
        ) from exc
    print(f"{'using cached' if reused else 'downloaded'} {path}")
    return path


def _is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme in ("http", "https")


def read_labels(
    source: str | None, cache_dir: Path, classes: int, progress: bool = True
) -> tuple[str, ...] | None:
    """The class names from a path or http(s) URL (cached), checked to number `classes`."""
    if source is None:
        return None
    if _is_url(source):
        try:
            path, _ = cached_download(source, cache_dir / LABELS_NAME, progress=progress)
        except DownloadError as exc:
            raise DownloadError(
                f"{exc}; or pass --labels PATH with a local copy, or --labels none"
            ) from exc
    else:
        path = Path(source.removeprefix("file://")).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsError(
            f"cannot read the labels file {path} ({exc}); pass --labels with a UTF-8 text "
            "file of one class name per line"
        ) from exc
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) != classes:
        raise LabelsError(
            f"the labels file {path} has {len(lines)} lines but the model has {classes} "
            f"classes; pass --labels with {LABELS_NAME} from {MODELZOO}"
        )
    return tuple(lines)


def export_graphdef(
    graphdef_path: Path,
    output: Path,
    labels: str | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> ExportResult:
    """Convert, describe, check and atomically write the ONNX model of `graphdef_path`.

    `labels` is a path or URL of the class names (ignored for a replica). Nothing is
    written unless ONNX Runtime matches TensorFlow on every exported layer, at the default
    size (against the untouched source graph) and at OTHER_SIZE (against the source made
    size-independent, as converted).
    """
    from convert import (
        attach_metadata,
        convert,
        layer_infos,
        load_graphdef,
        num_classes,
        variable_size_graphdef,
    )
    from optimize import optimize
    from parity import check_parity, format_parity, parity_images
    from replica import is_replica

    start = time.perf_counter()
    graph_def = load_graphdef(graphdef_path)
    replica = is_replica(graph_def)
    if replica:
        print(REPLICA_WARNING)
    print(f"converting {graphdef_path} with tf2onnx ...")
    model = convert(graph_def)
    for rewrite in optimize(model):
        print(f"  faster graph: {rewrite}")
    classes = num_classes(model)
    layers = layer_infos(model)
    info = ModelInfo(
        network=REPLICA_NETWORK if replica else NETWORK,
        input=input_info(layers),
        layers=layers,
        source_sha256=sha256_of(graphdef_path),
        replica=replica,
        class_output=CLASS_OUTPUT,
        num_classes=classes,
        labels=None
        if replica
        else read_labels(labels, cache_dir or graphdef_path.parent, classes, progress),
        spritemaps={} if replica else spritemaps(),
    )
    attach_metadata(model, info)
    data = model.SerializeToString()
    size = f"{INPUT_SIZE}x{INPUT_SIZE}"
    print(f"checking ONNX Runtime against TensorFlow on {PARITY_IMAGES} images at {size} ...")
    parity = check_parity(graph_def, data, parity_images(PARITY_IMAGES), list(OUTPUTS))
    print(format_parity(parity))
    height, width = OTHER_SIZE
    print(f"... and at {height}x{width} on {OTHER_SIZE_IMAGES} images")
    images = parity_images(OTHER_SIZE_IMAGES, seed=1, height=height, width=width)
    resized = check_parity(variable_size_graphdef(graph_def), data, images, list(OUTPUTS))
    print(format_parity(resized))
    write_bytes_atomic(output, data)
    return ExportResult(output, info, parity, resized, time.perf_counter() - start)


def input_info(layers: tuple[LayerInfo, ...]) -> InputInfo:
    """The image input: 224x224 by default, any size whose sides reach the total stride."""
    coarsest = min(min(layer.height, layer.width) for layer in layers)
    stride = INPUT_SIZE // coarsest
    if stride * coarsest != INPUT_SIZE:
        raise SemdictError(
            f"the coarsest layer is {coarsest} positions across at {INPUT_SIZE} pixels, not a "
            "whole stride; the graph does not look like Lucid's InceptionV1"
        )
    return InputInfo(
        INPUT_NAME,
        INPUT_SIZE,
        INPUT_SIZE,
        VALUE_RANGE,
        NETWORK_RANGE,
        variable_size=True,
        min_side=stride,
        stride=stride,
    )


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
        from replica import write_replica

        path = write_replica(cache_dir / REPLICA_NAME)
        print(f"built {path} (replica GraphDef, random weights)")
        return path
    if args.graphdef is not None:
        path = Path(args.graphdef).expanduser()
        if not path.is_file():
            raise SemdictError(
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description="Export Lucid's GoogLeNet (InceptionV1) GraphDef to ONNX for semdict_onnx.",
        epilog="Nothing is written unless the export matches TensorFlow. See docs/export.md.",
    )
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
        "--sha256", metavar="HEX", help="required SHA-256 of the source GraphDef (pins it)"
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
    args = parser.parse_args(argv)
    if args.sha256:
        try:
            args.sha256 = normalize_sha256(args.sha256)
        except DownloadError as exc:
            parser.error(f"--sha256: {exc}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the export; 0 on success, 1 with a message on failure."""
    args = parse_args(argv)
    cache_dir = paths.data_dir(args.cache_dir)
    output = (
        Path(args.output).expanduser() if args.output else paths.default_model_path(args.cache_dir)
    )
    try:
        graphdef_path = _source_graphdef(args, cache_dir)
        digest = _check_pin(graphdef_path, args.sha256)
        print(f"source graph sha256: {digest}")
        if not args.sha256 and not args.replica:
            print(f"  (pin it: python scripts/export.py --sha256 {digest} ...)")
        result = export_graphdef(
            graphdef_path,
            output,
            labels=_default_labels(args, graphdef_path),
            cache_dir=cache_dir,
            progress=not args.no_progress,
        )
    except SemdictError as exc:
        print(f"export failed: {exc}\nNo model was written to {output}.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nexport interrupted; no model was written to {output}.", file=sys.stderr)
        return 130
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


if __name__ == "__main__":
    sys.exit(main())
