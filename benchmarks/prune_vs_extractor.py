"""Cutting a model down to some outputs: the runtime's former graph walk against onnx's Extractor.

    python benchmarks/prune_vs_extractor.py --model ONNX [--rounds 5]

semdict_onnx/_subgraph.py pruned models with a graph walk of its own (kept below as
`graph_walk`); it now calls onnx.utils.Extractor, which this measured as good. For output
sets of the exported model, each way is timed from the file to a ready ONNX Runtime session
(load, cut, serialize; then the session), alternating the two round after round (medians),
and its sub-model is checked: node count, size, and outputs bit for bit equal to the full
model's on two random images. docs/performance.md quotes the table. Timings on a shared
machine are only indicative.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from semdict_onnx._providers import session_options  # noqa: E402

OUTPUT_SETS = [["mixed3a"], ["mixed4d"], ["mixed3a", "mixed3b"], ["mixed5b"]]
CPU = ["CPUExecutionProvider"]


def graph_walk(path: Path, names: list[str]) -> bytes:
    """The runtime's former way: walk back from the outputs, delete the rest in place."""
    model = onnx.load(path)
    graph = model.graph
    producer = {name: index for index, node in enumerate(graph.node) for name in node.output}
    keep: set[int] = set()
    pending = [producer[name] for name in names if name in producer]
    while pending:
        index = pending.pop()
        if index not in keep:
            keep.add(index)
            pending += [producer[name] for name in graph.node[index].input if name in producer]
    for index in reversed(range(len(graph.node))):
        if index not in keep:
            del graph.node[index]
    used = {name for node in graph.node for name in node.input}
    for field, name_of in (
        (graph.initializer, lambda tensor: tensor.name in used),
        (graph.value_info, lambda value: value.name in used),
        (graph.output, lambda value: value.name in names),
    ):
        for index in reversed(range(len(field))):
            if not name_of(field[index]):
                del field[index]
    return model.SerializeToString()


def extractor(path: Path, names: list[str]) -> bytes:
    """onnx.utils.Extractor: load, extract from the image input to `names`, serialize."""
    model = onnx.load(path)
    inputs = [value.name for value in model.graph.input]
    return onnx.utils.Extractor(model).extract_model(inputs, names).SerializeToString()


WAYS = {"former graph walk": graph_walk, "onnx.utils.Extractor (now used)": extractor}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="an exported ONNX model")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    full = ort.InferenceSession(str(args.model), session_options(), providers=CPU)
    total_nodes = len(onnx.load(args.model).graph.node)
    images = np.random.default_rng(0).random((2, 224, 224, 3), dtype=np.float32)
    versions = f"onnx {onnx.__version__}, onnxruntime {ort.__version__}"
    print(f"full model: {total_nodes} nodes; {versions}")
    print("| outputs | way | nodes | MiB | cut ms | session ms | total ms | same values |")
    print("|---|---|---|---|---|---|---|---|")
    for names in OUTPUT_SETS:
        expected = full.run(names, {"image": images})
        cut: dict[str, list[float]] = {way: [] for way in WAYS}
        build: dict[str, list[float]] = {way: [] for way in WAYS}
        made: dict[str, bytes] = {}
        for round_ in range(args.rounds):
            order = list(WAYS) if round_ % 2 == 0 else list(reversed(WAYS))
            for way in order:
                start = time.perf_counter()
                made[way] = WAYS[way](args.model, names)
                middle = time.perf_counter()
                session = ort.InferenceSession(made[way], session_options(), providers=CPU)
                end = time.perf_counter()
                cut[way].append(1000 * (middle - start))
                build[way].append(1000 * (end - middle))
        for way in WAYS:
            session = ort.InferenceSession(made[way], session_options(), providers=CPU)
            got = session.run(names, {"image": images})
            same = all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
            nodes = len(onnx.load_from_string(made[way]).graph.node)
            c, b = statistics.median(cut[way]), statistics.median(build[way])
            print(
                f"| {', '.join(names)} | {way} | {nodes} | {len(made[way]) / 2**20:.1f} | "
                f"{c:.0f} | {b:.0f} | {c + b:.0f} | {'yes' if same else 'NO'} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
