"""Every way of making the runtime faster that was measured: each in its own process, in turns.

    python benchmarks/variants.py [--rounds 10] [--calls 6] [--out benchmarks/VARIANTS.md]
    python benchmarks/variants.py --busy --out benchmarks/VARIANTS-busy.md   # under load
    python benchmarks/variants.py --graphdef PB --model ONNX   # skip building the replica

From one replica export it makes: the model as tf2onnx writes it (ONNX Runtime's own LRN
kernel), sub-models pruned to one layer, an int8 model (static quantization, per channel,
calibrated on 16 photo crops) and a float16 one. Each variant is plain ONNX Runtime with the
runtime's session options, one thing changed; all mixed layers unless it says otherwise.
Rounds alternate between the variants, as benchmarks/bench.py does between the sides.
Precision-changing variants show their top-4 agreement with the float32 model on 16 other
crops. docs/performance.md quotes the table. With --busy, every variant is timed with one
`while True: pass` process per half of the cores running (benchmarks/busy.py), nothing waiting
for quiet: which options suffer least on a busy machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import SETTLE_S, QuietWaiter, Worker, bench_images, build_replica  # noqa: E402
from busy import BusyLoad, busy_processes_for  # noqa: E402
from gpu_bench import float16_model, top_k_agreement  # noqa: E402

from semdict_onnx._atomic import write_text_atomic  # noqa: E402
from semdict_onnx._subgraph import prune  # noqa: E402

DEFAULT = "baseline: one run of the batch, LRN rewritten at export (export/_optimize.py)"
# (what, model, spec, batch); model: "default", "lrn", "int8", "float16" or "pruned:LAYER".
VARIANTS = [
    (DEFAULT, "default", {}, 1),
    ("LRN as tf2onnx writes it (ONNX Runtime's LRN kernel)", "lrn", {}, 1),
    ("intra-op threads spin off (session.intra_op.allow_spinning 0)", "default",
     {"config": {"session.intra_op.allow_spinning": 0}}, 1),
    ("threads keep spinning after a run (session.force_spinning_stop 0)", "default",
     {"config": {"session.force_spinning_stop": 0}}, 1),
    ("dynamic work partition in parallel loops (session.dynamic_block_base 4)", "default",
     {"config": {"session.dynamic_block_base": 4}}, 1),
    ("1 intra-op thread", "default", {"intra_op_threads": 1}, 1),
    ("parallel execution: 2 inter-op x 1 intra-op threads", "default",
     {"parallel": True, "intra_op_threads": 1}, 1),
    ("ORT_ENABLE_EXTENDED (no NCHWc layouts)", "default", {"level": "ORT_ENABLE_EXTENDED"}, 1),
    ("denormals as zero", "default", {"config": {"session.set_denormal_as_zero": 1}}, 1),
    ("IO binding, outputs left to ONNX Runtime", "default", {"io_binding": True}, 1),
    ("full model, only mixed3a asked for", "default", {"outputs": ["mixed3a"]}, 1),
    ("sub-model pruned to mixed3a", "pruned:mixed3a", {"outputs": ["mixed3a"]}, 1),
    ("full model, only mixed4d asked for", "default", {"outputs": ["mixed4d"]}, 1),
    ("sub-model pruned to mixed4d", "pruned:mixed4d", {"outputs": ["mixed4d"]}, 1),
    ("int8: static QDQ quantization, per channel", "int8", {}, 1),
    ("float16 (LRN arithmetic kept in float32)", "float16", {}, 1),
    (DEFAULT, "default", {}, 16),
    ("one-thread runs, one per core (semdict_onnx/_parallel.py; the runtime's CPU default)",
     "default", {"per_core": True}, 16),
    ("LRN as tf2onnx writes it (ONNX Runtime's LRN kernel)", "lrn", {}, 16),
    (DEFAULT, "default", {}, 4),
    ("one-thread runs, one per core (semdict_onnx/_parallel.py; the runtime's CPU default)",
     "default", {"per_core": True}, 4),
]  # fmt: skip


def lrn_model(graphdef: Path, out: Path) -> Path:
    """The model as tf2onnx converts it, before the export's LRN rewrite (TensorFlow needed)."""
    from semdict_onnx.export._convert import convert, load_graphdef

    onnx.save(convert(load_graphdef(graphdef)), str(out))
    return out


def int8_model(model: Path, calibration: np.ndarray, out: Path) -> Path:
    """Static int8 quantization (QDQ, per channel), calibrated one image at a time."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter([{"image": image[None]} for image in calibration])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    quantize_static(
        str(model),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return out


def pruned_model(model: Path, layer: str, out: Path) -> Path:
    """The model cut down to one layer (semdict_onnx/_subgraph.py)."""
    onnx.save(prune(onnx.load(str(model)), [layer]), str(out))
    return out


def agreement(model: Path, candidate: Path, images: np.ndarray, layers: list[str]) -> str:
    """Top-4 agreement of `candidate` with `model` over `layers` of `images`."""
    import onnxruntime as ort

    def outputs(path: Path) -> dict[str, np.ndarray]:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return dict(zip(layers, session.run(layers, {"image": images}), strict=True))

    ordered, as_sets = top_k_agreement(outputs(model), outputs(candidate))
    return f"{ordered:.1%} in order ({as_sets:.1%} as sets)"


def main(argv: list[str] | None = None) -> int:
    """Build the variants, time them in turns, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graphdef", type=Path)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=6, help="calls per turn at batch 1")
    parser.add_argument("--busy", action="store_true", help="time under busy processes")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "VARIANTS.md")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="semdict-variants-") as tmp:
        work = Path(tmp)
        if args.graphdef is None or args.model is None:
            graphdef, model = build_replica(work / "replica")
        else:
            graphdef, model = args.graphdef, args.model
        layers = [o.name for o in onnx.load(str(model), load_external_data=False).graph.output]
        layers = [name for name in layers if name.startswith("mixed")]
        images = bench_images(32)
        calibration, evaluation = images[16:], images[:16]
        models = {
            "default": model,
            "lrn": lrn_model(graphdef, work / "lrn.onnx"),
            "int8": int8_model(model, calibration, work / "int8.onnx"),
            "float16": float16_model(model, work / "float16.onnx"),
            "pruned:mixed3a": pruned_model(model, "mixed3a", work / "mixed3a.onnx"),
            "pruned:mixed4d": pruned_model(model, "mixed4d", work / "mixed4d.onnx"),
        }
        agreements = {
            key: agreement(model, models[key], evaluation, layers) for key in ("int8", "float16")
        }
        workers = []
        for index, (_, key, spec, batch) in enumerate(VARIANTS):
            npy = work / f"images{batch}.npy"
            if not npy.exists():
                np.save(npy, np.ascontiguousarray(np.resize(evaluation, (batch, 224, 224, 3))))
            spec = {"outputs": layers, **spec}
            workers.append(
                Worker(
                    ["variant", "--model", str(models[key]), "--images", str(npy)]
                    + ["--spec", json.dumps(spec)],
                    work / f"variant{index}.log",
                )
            )
        seconds: list[list[float]] = [[] for _ in VARIANTS]
        waiter = QuietWaiter(budget_s=120.0)
        load = BusyLoad(busy_processes_for()) if args.busy else contextlib.nullcontext()
        try:
            with load:
                for _ in range(args.rounds):
                    if not args.busy:
                        waiter.wait()
                    for index, worker in enumerate(workers):
                        time.sleep(SETTLE_S)
                        calls = args.calls if VARIANTS[index][3] == 1 else 2
                        if args.busy:
                            seconds[index] += worker.time("run", calls)
                            continue
                        taken, redone = worker.time_undisturbed("run", calls)
                        seconds[index] += taken
                        waiter.remeasured += redone
        finally:
            for worker in workers:
                worker.close()
    per_image = [statistics.median(s) / v[3] for s, v in zip(seconds, VARIANTS, strict=True)]
    baseline = {
        batch: per_image[VARIANTS.index((DEFAULT, "default", {}, batch))] for batch in (1, 4, 16)
    }
    lines = [
        "| variant | batch | median ms / image | baseline ÷ this | top-4 agreement |",
        "|---|---|---|---|---|",
    ]
    for (what, key, _, batch), value in zip(VARIANTS, per_image, strict=True):
        lines.append(
            f"| {what} | {batch} | {value * 1000:.2f} | {baseline[batch] / value:.2f}x | "
            f"{agreements.get(key, '-')} |"
        )
    condition = (
        f"under {busy_processes_for()} busy process(es), one per half of the cores"
        if args.busy
        else f"{waiter.remeasured} turns taken again for other processes' load"
    )
    text = (
        f"Written by `python benchmarks/variants.py{' --busy' if args.busy else ''}` "
        f"({time.perf_counter() - started:.0f} s, {args.rounds} rounds, medians; "
        f"{condition}).\n\n" + "\n".join(lines) + "\n"
    )
    print(text)
    write_text_atomic(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
