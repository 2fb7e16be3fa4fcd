"""Feature visualization on ONNX Runtime against the same in TensorFlow, in one run.

    python benchmarks/featurevis_bench.py                 # full run (several minutes, 2 cores)
    python benchmarks/featurevis_bench.py --quick         # a few iterations: checks it runs
    python benchmarks/featurevis_bench.py --graphdef PB --model ONNX   # skip building the replica
    python benchmarks/featurevis_bench.py spritemap --model ONNX [--provider P] [--channels N]
                                                          # time a whole spritemap render

Two measurements per batch size (1 and --batch), at 128x128 on --layer (mixed4d):
- the network's gradient alone: forward and backward through the layer, one objective per
  image (this library's gradient model; TensorFlow's tf.gradients of the same objective);
- one whole optimization step of Lucid's recipe: Fourier parameterization, decorrelated
  colour, sigmoid, pad / jitter / scale / rotate / jitter, forward, backward, Adam. In
  TensorFlow the same step as one graph (tf.signal.irfft2d, tf.image, ImageProjectiveTransform,
  AdamOptimizer), which is how Lucid runs it. Both sides take the same transform draws in
  the same order (this library's, fed to TensorFlow's graph), so they see the same sizes.
Each side runs in its own process (the bench_worker.py protocol; benchmarks/bench.py's
Worker and QuietWaiter), asked in turn, round after round; a measurement during which other
processes took more than a fifth of the cores is taken again. The table reports medians of
wall time and of each side's CPU time per call (all its threads: the work, which other load
disturbs less), the seconds per channel at the batch size, and the projected time of all of
the layer's channels at 256 steps. The `spritemap` mode times `render_spritemap` end to end
(scripts/gpu_check.sh runs it on the GPU for all 528 channels of mixed4d).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent
sys.path.insert(0, str(BENCHMARKS))
sys.path.insert(0, str(ROOT))

import bench  # noqa: E402
from bench_worker import serve  # noqa: E402

from semdict_onnx._atomic import write_text_atomic  # noqa: E402

# bench.Worker starts `python <bench.WORKER> ARGS`: this file serves as the worker too.
bench.WORKER = Path(__file__).resolve()
SIZE = 128
STEPS_PER_PICTURE = 256
# The network's pixel values: 255 * x - 117 for x in [0, 1] (the facts file).
NETWORK_SCALE, NETWORK_OFFSET = 255.0, -117.0
SIDES = {"tf": "TensorFlow", "ort": "this library"}
# This library's optimization takes this many steps before it is timed: past the
# redirected-ReLU steps, as most of a render is.
WARM_STEPS = 20
KINDS = {"grad": "network gradient (forward + backward)", "step": "whole optimization step"}


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    batch: int
    rounds: int
    iterations: int
    quiet_wait_s: float


FULL = Plan(batch=8, rounds=6, iterations=5, quiet_wait_s=60.0)
QUICK = Plan(batch=2, rounds=1, iterations=2, quiet_wait_s=0.0)


def case_names(batch: int) -> list[str]:
    """Every case: side_kind_bBATCH."""
    return [f"{side}_{kind}_b{b}" for kind in KINDS for b in (1, batch) for side in SIDES]


def _weights(batch: int, channels: int) -> np.ndarray:
    """One-hot objectives on channels 0, 1, ..., one per image."""
    weights = np.zeros((batch, channels), np.float32)
    weights[np.arange(batch), np.arange(batch) % channels] = 1.0
    return weights


def tensorflow_cases(graphdef: Path, layer: str, batch: int) -> tuple[dict, dict]:
    """TensorFlow: tf.gradients of the objective, and Lucid's whole step as one graph."""
    from semdict_onnx._featurevis._parameterization import COLOUR_MIX, FourierImage
    from semdict_onnx._featurevis._transforms import (
        FIRST_JITTER,
        PAD,
        SECOND_JITTER,
        draw_transforms,
    )
    from semdict_onnx.export._tf_env import import_tensorflow

    tf = import_tensorflow()
    graph_def = tf.compat.v1.GraphDef.FromString(graphdef.read_bytes())
    # This library's render draws, from the step its benchmark starts at (WARM_STEPS).
    everything = draw_transforms(0, STEPS_PER_PICTURE)
    draws = everything[WARM_STEPS:] + everything[:WARM_STEPS]
    cases = {}
    rng = np.random.default_rng(0)
    for b in sorted({1, batch}):
        graph = tf.Graph()
        with graph.as_default():
            image = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])

            def network(pictures: Any, b: int = b) -> Any:
                (out,) = tf.import_graph_def(
                    graph_def,
                    input_map={"input:0": pictures * NETWORK_SCALE + NETWORK_OFFSET},
                    return_elements=[f"{layer}:0"],
                )
                weights = _weights(b, int(out.shape[-1]))
                return tf.reduce_sum(tf.reduce_mean(out, [1, 2]) * weights, 1)

            objective = network(image)
            grad = tf.gradients(tf.reduce_sum(objective), image)[0]
            # Lucid's step: parameterization, transforms, network, Adam.
            fourier = FourierImage((SIZE, SIZE))
            scale = fourier._scale  # noqa: SLF001 - the same 1/f scale as ours
            spectrum = tf.Variable(fourier.initial(0, list(range(b))))
            planes = tf.signal.irfft2d(
                tf.complex(spectrum[:, 0], spectrum[:, 1]) * tf.constant(scale, tf.complex64)
            )
            linear = tf.transpose(planes[..., :SIZE], [0, 2, 3, 1]) / 4.0
            picture = tf.sigmoid(tf.tensordot(linear, tf.constant(COLOUR_MIX.T), 1))
            padded = tf.pad(picture, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]], constant_values=0.5)
            # The step's draws are fed in, the same sequence as this library's steps.
            first = tf.compat.v1.placeholder(tf.int32, [2])
            factor = tf.compat.v1.placeholder(tf.float32, [])
            degrees = tf.compat.v1.placeholder(tf.float32, [])
            second = tf.compat.v1.placeholder(tf.int32, [2])
            crop = SIZE + 2 * PAD - FIRST_JITTER
            seen = tf.slice(padded, tf.concat([[0], first, [0]], 0), [b, crop, crop, 3])
            side = tf.cast(factor * crop, tf.int32)
            seen = tf.image.resize(seen, tf.stack([side, side]), method="bilinear")
            angle = degrees * (math.pi / 180)
            centre = (tf.cast(side, tf.float32) - 1) / 2
            cos, sin = tf.cos(angle), tf.sin(angle)
            shift_x = centre - cos * centre - sin * centre
            shift_y = centre + sin * centre - cos * centre
            matrix = tf.stack([cos, sin, shift_x, -sin, cos, shift_y, 0.0, 0.0])
            seen = tf.raw_ops.ImageProjectiveTransformV3(
                images=seen,
                transforms=tf.tile(matrix[None], [b, 1]),
                output_shape=tf.stack([side, side]),
                fill_value=0.5,
                interpolation="BILINEAR",
                fill_mode="CONSTANT",
            )
            final = side - SECOND_JITTER
            seen = tf.slice(seen, tf.concat([[0], second, [0]], 0), tf.stack([b, final, final, 3]))
            loss = -tf.reduce_sum(network(seen))
            train = tf.compat.v1.train.AdamOptimizer(0.05).minimize(loss, var_list=[spectrum])
            initialize = tf.compat.v1.global_variables_initializer()
        session = tf.compat.v1.Session(graph=graph)
        session.run(initialize)
        pictures = rng.random((b, SIZE, SIZE, 3), dtype=np.float32)
        cases[f"tf_grad_b{b}"] = lambda s=session, f=[objective, grad], x=pictures, i=image: s.run(
            f, {i: x}
        )
        feeds = itertools.cycle(
            [
                {first: d.first_offset, factor: d.scale, degrees: d.angle, second: d.second_offset}
                for d in draws
            ]
        )
        cases[f"tf_step_b{b}"] = lambda s=session, t=train, f=feeds: s.run(t, next(f))
    return cases, {"tensorflow": tf.__version__}


def runtime_cases(model_path: Path, layer: str, batch: int) -> tuple[dict, dict]:
    """This library: the gradient model alone, and one step of a batch's optimization."""
    import onnxruntime as ort

    from semdict_onnx import RenderSettings, load_model
    from semdict_onnx._featurevis._optimization import Optimization

    model = load_model(model_path)
    channels = model.layers[layer]
    cases = {}
    rng = np.random.default_rng(0)
    settings = RenderSettings(size=SIZE, steps=STEPS_PER_PICTURE)
    for b in sorted({1, batch}):
        weights = _weights(b, channels)
        pictures = rng.random((b, SIZE, SIZE, 3), dtype=np.float32)
        run = Optimization(model, layer, settings, weights, list(range(b)))
        for _ in range(WARM_STEPS):
            run.step()
        # Pictures in [0, 1], scaled to the network's range and the gradient back, as
        # TensorFlow's graph does in its own timing.
        cases[f"ort_grad_b{b}"] = lambda r=run, x=pictures: r.objective(x)
        cases[f"ort_step_b{b}"] = run.step
    return cases, {"onnxruntime": ort.__version__, "provider": model.provider}


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds that process `pid`'s live threads have run (/proc/PID/task/*/schedstat,
    nanoseconds), or None where unknown."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # a thread ended
                total += int((task / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9


def timed(worker: bench.Worker, case: str, iterations: int) -> tuple[list[float], float, int]:
    """Wall seconds of each of `iterations` calls of `case`, the worker's CPU seconds per call
    (all its threads; 0 where unknown) and how many times it was measured again because other
    processes took more than bench.INTERFERENCE of the cores meanwhile."""
    pid = worker._process.pid  # noqa: SLF001 - the worker's own process, read only
    for attempt in range(bench.MAX_REMEASURE + 1):
        cores_before, own_before = bench.cpu_jiffies(), bench.process_jiffies(pid)
        cpu_before = cpu_seconds(pid)
        seconds = worker.time(case, iterations)
        cpu_after = cpu_seconds(pid)
        cores_after, own_after = bench.cpu_jiffies(), bench.process_jiffies(pid)
        cpu = 0.0 if None in (cpu_before, cpu_after) else (cpu_after - cpu_before) / iterations
        if None in (cores_before, own_before, cores_after, own_after):
            return seconds, cpu, attempt
        others = (cores_after[0] - cores_before[0]) - (own_after - own_before)
        ticks = cores_after[1] - cores_before[1]
        if others < 3 or others <= bench.INTERFERENCE * ticks:
            return seconds, cpu, attempt
    return seconds, cpu, bench.MAX_REMEASURE


def interleaved(
    workers: dict[str, bench.Worker], plan: Plan, waiter: bench.QuietWaiter
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each case's call times and CPU seconds per call, round after round, alternating
    between the sides."""
    names = case_names(plan.batch)
    seconds: dict[str, list[float]] = {case: [] for case in names}
    cpu: dict[str, list[float]] = {case: [] for case in names}
    for round_index in range(plan.rounds):
        waiter.wait()
        for case in names if round_index % 2 == 0 else reversed(names):
            time.sleep(bench.SETTLE_S)
            taken, used, redone = timed(workers[case.split("_")[0]], case, plan.iterations)
            seconds[case] += taken
            cpu[case].append(used)
            waiter.remeasured += redone
    return seconds, cpu


def table(
    seconds: dict[str, list[float]], cpu: dict[str, list[float]], plan: Plan, channels: int
) -> tuple[str, dict]:
    """The markdown table of medians and ratios, and the figures the targets need."""
    med = {case: statistics.median(times) for case, times in seconds.items()}
    work = {case: statistics.median(values) for case, values in cpu.items()}
    lines = [
        "| measurement | batch | TensorFlow ms | this library ms | TF ÷ this "
        "| TF CPU ms | this CPU ms | CPU: TF ÷ this |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, what in KINDS.items():
        for b in sorted({1, plan.batch}):
            tf_s, ort_s = med[f"tf_{kind}_b{b}"], med[f"ort_{kind}_b{b}"]
            tf_c, ort_c = work[f"tf_{kind}_b{b}"], work[f"ort_{kind}_b{b}"]
            cpu_ratio = f"{tf_c / ort_c:.2f}x" if tf_c and ort_c else "unknown"
            lines.append(
                f"| {what} | {b} | {tf_s * 1000:.1f} | {ort_s * 1000:.1f} | {tf_s / ort_s:.2f}x "
                f"| {tf_c * 1000:.1f} | {ort_c * 1000:.1f} | {cpu_ratio} |"
            )
    b = plan.batch
    per_channel = {side: med[f"{side}_step_b{b}"] * STEPS_PER_PICTURE / b for side in SIDES}
    lines += [
        "",
        f"| at batch {b}, {STEPS_PER_PICTURE} steps of {SIZE} px | TensorFlow | this library |",
        "|---|---|---|",
        "| seconds per channel | "
        + " | ".join(f"{per_channel[side]:.1f}" for side in SIDES)
        + " |",
        f"| all {channels} channels, projected minutes | "
        + " | ".join(f"{per_channel[side] * channels / 60:.0f}" for side in SIDES)
        + " |",
    ]
    figures = {
        "step_ratio_b1": med["tf_step_b1"] / med["ort_step_b1"],
        f"step_ratio_b{b}": med[f"tf_step_b{b}"] / med[f"ort_step_b{b}"],
        "seconds_per_channel": per_channel["ort"],
    }
    return "\n".join(lines), figures


def compare(args: argparse.Namespace) -> int:
    """Time both sides and write the results."""
    plan = QUICK if args.quick else FULL
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="semdict-fvbench-") as tmp:
        work = Path(tmp)
        if args.graphdef is None:
            print("building and exporting the replica ...", flush=True)
            graphdef, model = bench.build_replica(work / "replica")
        else:
            graphdef, model = args.graphdef, args.model
        common = ["--layer", args.layer, "--batch", str(plan.batch)]
        print("starting the workers ...", flush=True)
        workers: dict[str, bench.Worker] = {}
        try:
            workers["ort"] = bench.Worker(
                ["worker", "runtime", "--model", str(model), *common], work / "runtime.log"
            )
            workers["tf"] = bench.Worker(
                ["worker", "tensorflow", "--graphdef", str(graphdef), *common],
                work / "tensorflow.log",
            )
            print(f"timing, {plan.rounds} rounds ...", flush=True)
            waiter = bench.QuietWaiter(plan.quiet_wait_s)
            seconds, cpu = interleaved(workers, plan, waiter)
        finally:
            for worker in workers.values():
                worker.close()
        from semdict_onnx import load_model

        channels = load_model(model).layers[args.layer]  # while the built replica exists
    rows, figures = table(seconds, cpu, plan, channels)
    met = figures[f"step_ratio_b{plan.batch}"] >= 1.3 and figures["step_ratio_b1"] >= 1.3
    loads = waiter.loads
    text = "\n".join(
        [
            "# Feature visualization: this library against TensorFlow",
            "",
            f"`python benchmarks/featurevis_bench.py{' --quick' if args.quick else ''}`, "
            f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, {bench.cpu_name()}, "
            f"{os.cpu_count()} cores; layer {args.layer}, {SIZE}x{SIZE}; medians of "
            f"{plan.rounds} rounds x {plan.iterations} calls; "
            f"wall {time.perf_counter() - started:.0f} s.",
            f"Load: {load_before:.1f} before; other processes used "
            f"{bench._share(loads, statistics.median)} of the cores (median over rounds, "  # noqa: SLF001
            f"{bench._share(loads, max)} at most); {waiter.remeasured} measurements redone.",  # noqa: SLF001
            f"{workers['tf'].info} / {workers['ort'].info}",
            "",
            rows,
            "",
            f"Target: a whole step at least 1.3x faster than TensorFlow: {'yes' if met else 'NO'}",
            "",
        ]
    )
    print(text)
    write_text_atomic(args.out, text)
    if args.json:
        raw = {"seconds": seconds, "cpu_seconds_per_call": cpu, **figures}
        write_text_atomic(args.json, json.dumps(raw, indent=1))
    print(f"wrote {args.out}")
    return 0


def spritemap_run(args: argparse.Namespace) -> int:
    """Time render_spritemap of a layer's channels on one provider; print and write a table."""
    from semdict_onnx import load_model, render_spritemap

    model = load_model(args.model, providers=[args.provider] if args.provider else None)
    total = model.layers[args.layer]
    count = min(args.channels or total, total)
    start = time.perf_counter()
    spritemap = render_spritemap(
        args.layer,
        model,
        channels=range(count),
        steps=args.steps,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    seconds = time.perf_counter() - start
    rendered = len(spritemap.manifest["rendered"])
    text = (
        f"| feature-visualization spritemap | layer | channels | steps | px | provider | s | "
        f"target |\n|---|---|---|---|---|---|---|---|\n"
        f"| render_spritemap | {args.layer} | {rendered} of {total} | {args.steps} | {SIZE} | "
        f"{model.provider} | {seconds:.1f} | "
        f"{'< 300 s: ' + ('yes' if seconds < 300 else 'NO') if count == total else 'partial'} |\n"
    )
    print(text)
    if args.out:
        write_text_atomic(args.out, text)
    return 0


def worker(args: argparse.Namespace) -> int:
    """Serve one side's cases (the bench_worker.py protocol)."""
    if args.side == "tensorflow":
        cases, info = tensorflow_cases(args.graphdef, args.layer, args.batch)
    else:
        cases, info = runtime_cases(args.model, args.layer, args.batch)
    serve(cases, info)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: the comparison (default), `spritemap`, or `worker` (internal)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="compare", choices=("compare", "spritemap"))
    parser.add_argument("--quick", action="store_true", help="few iterations (a smoke run)")
    parser.add_argument("--graphdef", type=Path, help="replica GraphDef (default: build one)")
    parser.add_argument("--model", type=Path, help="its ONNX export (default: export it)")
    parser.add_argument("--layer", default="mixed4d")
    parser.add_argument("--out", type=Path, default=BENCHMARKS / "RESULTS-featurevis.md")
    parser.add_argument("--json", type=Path, help="also write every raw time here")
    parser.add_argument("--provider", help="spritemap: execution provider (default: the best)")
    parser.add_argument("--channels", type=int, help="spritemap: the first N channels only")
    parser.add_argument("--steps", type=int, default=STEPS_PER_PICTURE, help="spritemap: steps")
    parser.add_argument("--batch-size", type=int, help="spritemap: pictures per batch")
    parser.add_argument("--no-progress", action="store_true")
    if argv and argv[0] == "worker":
        side = argparse.ArgumentParser()
        side.add_argument("worker")
        side.add_argument("side", choices=("tensorflow", "runtime"))
        side.add_argument("--graphdef", type=Path)
        side.add_argument("--model", type=Path)
        side.add_argument("--layer", required=True)
        side.add_argument("--batch", type=int, required=True)
        return side.parse_args(argv)
    args = parser.parse_args(argv)
    if args.mode == "compare" and (args.graphdef is None) != (args.model is None):
        parser.error("pass both --graphdef and --model (the model exported from that graph)")
    if args.mode == "spritemap" and args.model is None:
        parser.error("spritemap needs --model")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the mode the command line asks for."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if getattr(args, "worker", None):
        return worker(args)
    return spritemap_run(args) if args.mode == "spritemap" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
