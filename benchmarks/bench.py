"""This library against TensorFlow, in one run, on one machine, one replica graph, one image set.

    python benchmarks/bench.py                  # full run (a few minutes on 2 cores)
    python benchmarks/bench.py --quick          # a few iterations: checks the benchmark runs
    python benchmarks/bench.py --graphdef PB --model ONNX   # skip building the replica
    python benchmarks/bench.py --no-busy        # without the busy-machine part

Without --graphdef/--model it builds a replica GraphDef and exports it with
`scripts/export.py --replica` into a temporary folder, so both sides run the same weights.
Each side runs in its own process (benchmarks/bench_worker.py): TensorFlow's and ONNX
Runtime's thread pools disturb each other in one process. The parent asks the sides in
turn, round after round, and reports medians. OpenVINO (the `bench` extra) runs the same ONNX
file as a third side where it is installed. Then, unless --no-busy, the same warm cases again
with one `while True: pass` process per half of the cores running (benchmarks/busy.py). Then
it times cold processes (start to a
saved page; start to the same activations in TensorFlow) with their peak memory, numpy's
float32 matmul as the machine's ceiling, and benchmarks/spritemap_overhead.py. The table
goes to stdout and, atomically, to benchmarks/RESULTS.md (--out). Over 400 lines: one run's
steps and the one page they write belong together (busy.py holds the busy machine's parts).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from busy import BusyLoad, busy_processes_for, busy_table  # noqa: E402

from semdict_onnx._atomic import write_text_atomic  # noqa: E402
from semdict_onnx._images import to_batch  # noqa: E402

BENCHMARKS = ROOT / "benchmarks"
WORKER = BENCHMARKS / "bench_worker.py"
EXAMPLES = ROOT / "semdict_onnx" / "examples"
GPU_RESULTS = BENCHMARKS / "RESULTS-gpu.md"
# GoogLeNet at 224x224: about 1.58 GMAC = 3.17 GFLOP per image (the network facts file).
GFLOP_PER_IMAGE = 3.17
INPUT_SIZE = 224
OPENBLAS_HINTS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# A round waits while other processes keep more than this share of all cores busy.
QUIET_THRESHOLD = 0.15
QUIET_RETRY_S = 1.0
# After a call, ONNX Runtime's (and TensorFlow's) pool threads spin for a while (about 40 ms
# measured here) before they sleep: the other side waits that long before its turn.
SETTLE_S = 0.15
# A measurement during which other processes kept more than this share of all cores busy
# (at least 3 clock ticks) is taken again, at most MAX_REMEASURE times.
INTERFERENCE = 0.2
MAX_REMEASURE = 3

# The timed cases: name -> (worker, what is measured, layers, batch: 1 or N). Layers: "all"
# mixed layers, "L" the dictionary's layer, "D" what semantic_dict asks for (L, and the
# class output when the model has labels). "photo" is the JPEG semantic_dict reads: its
# decoding and resizing are timed too.
CASES = {
    "tf_notebook": (
        "tf",
        "TensorFlow, the notebook's pattern: new graph + import + session",
        "L",
        "1",
    ),
    "tf_b1": ("tf", "TensorFlow, graph imported once, cached session", "all", "1"),
    "tf_bN": ("tf", "TensorFlow, graph imported once, cached session", "all", "N"),
    "ort_b1": ("ort", "semdict_onnx `model.activations`", "all", "1"),
    "ort_bN": ("ort", "semdict_onnx `model.activations`", "all", "N"),
    "ort_photo": ("ort", "semdict_onnx `model.activations(photo file)`", "D", "1"),
    "semdict": ("ort", "semdict_onnx `semantic_dict(photo file)` to HTML string", "D", "1"),
    "ov_b1": ("ov", "OpenVINO float32, same ONNX file (LATENCY hint)", "all", "1"),
    "ov_bN": ("ov", "OpenVINO float32, same ONNX file (LATENCY hint, one request)", "all", "N"),
    "ov_bN_streams": (
        "ov",
        "OpenVINO float32, same ONNX file (THROUGHPUT hint, one-image requests on its streams)",
        "all",
        "N",
    ),
    "bf16_b1": ("bf16", "semdict_onnx `model.activations`, opt-in precision='bf16'", "all", "1"),
    "bf16_bN": ("bf16", "semdict_onnx `model.activations`, opt-in precision='bf16'", "all", "N"),
}
# The TensorFlow row each row is compared with (same batch).
BASELINE = {
    "tf_bN": "tf_bN",
    "ort_bN": "tf_bN",
    "ov_bN": "tf_bN",
    "ov_bN_streams": "tf_bN",
    "bf16_bN": "tf_bN",
}
# The warm cases timed again on the busy machine.
BUSY_CASES = ["tf_b1", "tf_bN", "ort_b1", "ort_bN", "ov_b1", "ov_bN", "ov_bN_streams"]
OPENVINO_MISSING = "not installed (`pip install -e '.[bench]'` adds it)"

OURS_COLD = (
    "import sys\n"
    "from semdict_onnx import load_model, semantic_dict\n"
    "semantic_dict(sys.argv[2], sys.argv[4], model=load_model(sys.argv[1])).save(sys.argv[3])\n"
)
TF_COLD = (
    "import sys\n"
    "import numpy as np\n"
    "import tensorflow as tf\n"
    "from PIL import Image\n"
    "graph_def = tf.compat.v1.GraphDef.FromString(open(sys.argv[1], 'rb').read())\n"
    "image = Image.open(sys.argv[2]).convert('RGB')\n"
    "image = image.resize((224, 224), Image.Resampling.LANCZOS)\n"
    "pixels = np.asarray(image, np.float32)[None] - 117.0\n"
    "with tf.Graph().as_default():\n"
    "    tf.import_graph_def(graph_def, name='')\n"
    "    with tf.compat.v1.Session() as session:\n"
    "        session.run(sys.argv[3] + ':0', {'input:0': pixels})\n"
)


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    rounds: int
    iterations: dict[str, int]
    batch: int
    cold_runs: int
    matmul_size: int
    matmul_calls: int
    spritemap_images: int
    spritemap_repeats: int
    quiet_wait_s: float
    busy_rounds: int


FULL = Plan(
    rounds=12,
    iterations={
        "tf_notebook": 2,
        "tf_b1": 8,
        "tf_bN": 1,
        "ort_b1": 8,
        "ort_bN": 1,
        "ort_photo": 6,
        "semdict": 6,
        "ov_b1": 8,
        "ov_bN": 1,
        "ov_bN_streams": 1,
        "bf16_b1": 8,
        "bf16_bN": 1,
    },
    batch=16,
    cold_runs=5,
    matmul_size=2048,
    matmul_calls=10,
    spritemap_images=128,
    spritemap_repeats=3,
    quiet_wait_s=240.0,
    busy_rounds=8,
)
QUICK = Plan(
    rounds=2,
    iterations=dict.fromkeys(CASES, 1),
    batch=4,
    cold_runs=1,
    matmul_size=256,
    matmul_calls=2,
    spritemap_images=4,
    spritemap_repeats=1,
    quiet_wait_s=0.0,
    busy_rounds=2,
)


class BenchmarkError(RuntimeError):
    """A benchmark process failed; the message carries its output."""


class Worker:
    """A bench_worker.py process serving timing requests over its stdin and stdout."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self._log_path = log
        self._log = log.open("w")
        self._process = subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.info: dict[str, Any] = self._reply()["info"]

    def _reply(self) -> dict[str, Any]:
        line = self._process.stdout.readline()
        if not line:
            self._process.wait()
            self._log.flush()
            raise BenchmarkError(
                f"worker {' '.join(self._process.args[2:4])} exited "
                f"{self._process.returncode}:\n{self._log_path.read_text()[-3000:]}"
            )
        return json.loads(line)

    def time(self, case: str, iterations: int) -> list[float]:
        """Seconds of each of `iterations` calls of `case`."""
        self._process.stdin.write(json.dumps({"case": case, "iterations": iterations}) + "\n")
        self._process.stdin.flush()
        return self._reply()["seconds"]

    def time_undisturbed(self, case: str, iterations: int) -> tuple[list[float], int]:
        """Like `time`, measured again (up to MAX_REMEASURE times) while other processes took
        more than INTERFERENCE of the cores meanwhile; also returns how many were redone."""
        for attempt in range(MAX_REMEASURE + 1):
            cores_before, own_before = cpu_jiffies(), process_jiffies(self._process.pid)
            seconds = self.time(case, iterations)
            cores_after, own_after = cpu_jiffies(), process_jiffies(self._process.pid)
            if None in (cores_before, own_before, cores_after, own_after):
                return seconds, attempt
            others = (cores_after[0] - cores_before[0]) - (own_after - own_before)
            ticks = cores_after[1] - cores_before[1]
            if others < 3 or others <= INTERFERENCE * ticks:
                return seconds, attempt
        return seconds, MAX_REMEASURE

    def close(self) -> None:
        """End the process."""
        self._process.stdin.close()
        self._process.wait(timeout=60)
        self._log.close()


def openvino_installed() -> bool:
    """Whether OpenVINO (the `bench` extra) can be imported here."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def bf16_missing() -> str | None:
    """Why precision='bf16' cannot be measured here, or None when it can."""
    if not openvino_installed():
        return f"OpenVINO {OPENVINO_MISSING}"
    from semdict_onnx._openvino_runner import bf16_problem

    return bf16_problem()


def run_checked(command: list[str], what: str) -> str:
    """Run a command; its stdout, or BenchmarkError with its output."""
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchmarkError(f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def build_replica(folder: Path) -> tuple[Path, Path]:
    """A replica GraphDef and its ONNX export, made by `scripts/export.py --replica`."""
    model = folder / "googlenet-replica.onnx"
    command = [sys.executable, str(ROOT / "scripts" / "export.py"), "--replica"]
    command += ["--cache-dir", str(folder), "--output", str(model), "--no-progress"]
    run_checked(command, "scripts/export.py --replica")
    return folder / "InceptionV1-replica.pb", model


def example_photos() -> list[Path]:
    """The photos shipped with the package."""
    return sorted(EXAMPLES.glob("*.jpg"))


def bench_images(count: int) -> np.ndarray:
    """`count` distinct images (crops and mirrors of the shipped photos), [count, 224, 224, 3]."""
    photos = [Image.open(path).convert("RGB") for path in example_photos()]
    variants = []
    for index in range(count):
        photo = photos[index % len(photos)]
        step = index // len(photos)
        width, height = photo.size
        margin = 0.05 * (step % 4)
        crop = photo.crop((int(width * margin), int(height * margin), width, height))
        variants.append(ImageOps.mirror(crop) if step % 2 else crop)
    return to_batch(variants, INPUT_SIZE, INPUT_SIZE)


def cpu_jiffies() -> tuple[int, int] | None:
    """(busy, all) clock ticks of all cores since boot (/proc/stat), or None where unknown."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(values) - values[3] - values[4], sum(values)  # less idle and iowait


def process_jiffies(pid: int) -> int | None:
    """User + system clock ticks of process `pid` and its threads, or None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])


def busy_share(interval: float = 0.5) -> float | None:
    """The share of all cores busy over `interval` seconds, or None where unknown."""
    before = cpu_jiffies()
    time.sleep(interval)
    after = cpu_jiffies()
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


class QuietWaiter:
    """Before each round, waits (within a budget) until other work leaves the cores alone.

    The workers are idle between rounds, so what /proc/stat shows busy then is someone
    else's work, which would slow whichever side happens to run alongside it. It also
    keeps the record of the run's load: the share seen before each round, the time waited
    and how many measurements were taken again (Worker.time_undisturbed).
    """

    def __init__(self, budget_s: float, threshold: float = QUIET_THRESHOLD) -> None:
        self.budget_s = budget_s
        self.threshold = threshold
        self.waited_s = 0.0
        self.loads: list[float] = []
        self.remeasured = 0

    def wait(self) -> None:
        """Return once the cores are quiet, or the budget is spent; record the load seen."""
        load = busy_share()
        while load is not None and load > self.threshold and self.waited_s < self.budget_s:
            start = time.perf_counter()
            time.sleep(QUIET_RETRY_S)
            load = busy_share()
            self.waited_s += time.perf_counter() - start
        if load is not None:
            self.loads.append(load)


def interleaved(
    workers: dict[str, Worker],
    cases: list[str],
    iterations: dict[str, int],
    rounds: int,
    waiter: QuietWaiter | None,
) -> dict[str, list[float]]:
    """Each case's call times, asked round after round, alternating between the workers.

    Without a waiter (the busy machine) nothing waits for quiet and nothing is taken again.
    """
    seconds: dict[str, list[float]] = {case: [] for case in cases}
    for round_index in range(rounds):
        if waiter is not None:
            waiter.wait()
        order = list(cases) if round_index % 2 == 0 else list(reversed(cases))
        previous = None
        for case in order:
            side = CASES[case][0]
            if previous not in (None, side):
                time.sleep(SETTLE_S)
            if waiter is None:
                seconds[case] += workers[side].time(case, iterations[case])
            else:
                taken, redone = workers[side].time_undisturbed(case, iterations[case])
                seconds[case] += taken
                waiter.remeasured += redone
            previous = side
    return seconds


def cold_run(command: list[str], log: Path) -> tuple[float, int]:
    """Wall seconds and peak resident bytes (ru_maxrss) of one process run to its end."""
    with log.open("w") as output:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=output)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise BenchmarkError(f"{command[:3]} exited {process.returncode}:\n{log.read_text()}")
    return elapsed, usage.ru_maxrss * 1024


def cold_processes(
    graphdef: Path, model: Path, photo: Path, layer: str, runs: int, work: Path
) -> dict[str, dict[str, list[float]]]:
    """Cold runs of both sides, alternating, after one unmeasured run each (file cache)."""
    commands = {
        "tf_cold": [sys.executable, "-c", TF_COLD, str(graphdef), str(photo), layer],
        "ort_cold": [
            sys.executable,
            "-c",
            OURS_COLD,
            str(model),
            str(photo),
            str(work / "page.html"),
            layer,
        ],
    }
    results: dict[str, dict[str, list[float]]] = {
        name: {"seconds": [], "peak_bytes": []} for name in commands
    }
    for name, command in commands.items():
        cold_run(command, work / f"{name}.log")
    for _ in range(runs):
        for name, command in commands.items():
            seconds, peak = cold_run(command, work / f"{name}.log")
            results[name]["seconds"].append(seconds)
            results[name]["peak_bytes"].append(peak)
    if not (work / "page.html").read_text(encoding="utf-8").lstrip().lower().startswith("<!"):
        raise BenchmarkError(f"the cold run wrote no HTML page to {work / 'page.html'}")
    return results


def matmul_ceiling(plan: Plan, work: Path) -> list[dict[str, Any]]:
    """numpy float32 matmul GFLOP/s, as the environment sets OpenBLAS and with its hints unset."""
    results = []
    for label, unset in (("as set here", False), ("OPENBLAS_CORETYPE/L2_SIZE unset", True)):
        env = dict(os.environ)
        if unset:
            for name in OPENBLAS_HINTS:
                env.pop(name, None)
        elif not any(name in env for name in OPENBLAS_HINTS):
            continue
        worker = Worker(["matmul", "--size", str(plan.matmul_size)], work / "matmul.log", env)
        try:
            seconds = worker.time("matmul", plan.matmul_calls)
        finally:
            worker.close()
        flop = worker.info["flop_per_call"]
        results.append(
            {
                "environment": label,
                "size": plan.matmul_size,
                "gflops": flop / statistics.median(seconds) / 1e9,
                "blas": worker.info["blas"],
                "coretype": worker.info["OPENBLAS_CORETYPE"],
            }
        )
    return results


def spritemap_overhead(model: Path, plan: Plan) -> str:
    """The table printed by benchmarks/spritemap_overhead.py on the same model."""
    command = [sys.executable, str(BENCHMARKS / "spritemap_overhead.py"), "--model", str(model)]
    command += ["--images", str(plan.spritemap_images), "--repeats", str(plan.spritemap_repeats)]
    heading, _, table = run_checked(command, "benchmarks/spritemap_overhead.py").partition("\n")
    return f"{heading.strip()}\n\n{table.strip()}"


def busy_section(
    busy: dict[str, list[float]] | None, quiet: dict[str, list[float]], plan: Plan
) -> list[str]:
    """The busy machine's heading, table and note; nothing when it was not measured."""
    if busy is None:
        return []
    count = busy_processes_for()
    return [
        f"## Busy machine: {count} `while True: pass` process(es) beside, one per half of the "
        f"{os.cpu_count()} cores",
        "",
        *busy_table(busy, quiet, CASES, plan.batch),
        "",
        f"{plan.busy_rounds} rounds, interleaved as above, after one unmeasured round under the "
        "load; nothing waited for quiet or was taken again. Quiet figures from the table above.",
        "",
    ]


def cpu_features() -> str:
    """The vector and matrix extensions /proc/cpuinfo lists that matter for these engines."""
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return " ".join(flag for flag in wanted if flag in flags) or "none of AVX2+"
    except OSError:
        pass
    return "flags unknown"


def cpu_name() -> str:
    """The processor's model name, as /proc/cpuinfo says it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _share(loads: list[float], summary) -> str:
    return f"{summary(loads):.0%}" if loads else "unknown"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _ratio(value: float) -> str:
    return f"{value:.2f}x"


def case_table(
    seconds: dict[str, list[float]], batch: int, layer_names: dict[str, str], ceiling: float
) -> str:
    """Markdown rows of the warm cases: medians, per image, throughput, ratios."""
    per_image = {
        case: statistics.median(times) / (batch if CASES[case][3] == "N" else 1)
        for case, times in seconds.items()
    }
    lines = [
        "| measurement | layers | batch | median ms / call | ms / image | images/s | "
        "GFLOP/s | % of matmul ceiling | TF cached ÷ this |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case, (_, what, layers, batch_kind) in CASES.items():
        if case not in seconds:
            continue
        size = batch if batch_kind == "N" else 1
        image_s = per_image[case]
        gflops = GFLOP_PER_IMAGE / image_s
        baseline = per_image[BASELINE.get(case, "tf_b1")]
        share = f"{100 * gflops / ceiling:.0f}%" if ceiling else "-"
        lines.append(
            f"| {what} | {layer_names[layers]} | {size} | "
            f"{_ms(statistics.median(seconds[case]))} | {_ms(image_s)} | {1 / image_s:.1f} | "
            f"{gflops:.0f} | {share} | {_ratio(baseline / image_s)} |"
        )
    return "\n".join(lines)


def _openvino_targets(med: dict[str, float], batch: int, where: str) -> list[tuple]:
    """(target, measured, met): this library at least as fast as OpenVINO's best, per batch."""
    if "ov_b1" not in med:
        return [(f"{where}: at least as fast as OpenVINO float32", OPENVINO_MISSING, False)]
    best_n = min(med["ov_bN"], med["ov_bN_streams"])
    b1, bn = med["ov_b1"] / med["ort_b1"], best_n / med["ort_bN"]
    return [
        (f"{where}, batch 1: at least as fast as OpenVINO float32", _ratio(b1), b1 >= 1.0),
        (
            f"{where}, batch {batch}: at least as fast as OpenVINO float32 (its faster way)",
            _ratio(bn),
            bn >= 1.0,
        ),
    ]


def busy_targets(busy: dict[str, list[float]], batch: int) -> list[tuple]:
    """(target, measured, met) on the busy machine (issue 16)."""
    med = {case: statistics.median(times) for case, times in busy.items()}
    b1 = med["tf_b1"] / med["ort_b1"]
    bn = med["tf_bN"] / med["ort_bN"]
    return [
        ("busy, batch 1: >= 1.2x faster than cached TF under the same load", _ratio(b1), b1 >= 1.2),
        (f"busy, batch {batch}: >= 1.2x faster per image than TF", _ratio(bn), bn >= 1.2),
        *_openvino_targets(med, batch, "busy"),
    ]


def targets(seconds: dict[str, list[float]], cold: dict[str, Any], batch: int) -> list[tuple]:
    """(target, measured, met) for issue 16's quiet-machine targets and issue 4's others."""
    med = {case: statistics.median(times) for case, times in seconds.items()}
    b1 = med["tf_b1"] / med["ort_b1"]
    bn = med["tf_bN"] / med["ort_bN"]
    semdict = med["semdict"] / med["ort_photo"]
    semdict_array = med["semdict"] / med["ort_b1"]
    cold_speed = statistics.median(cold["tf_cold"]["seconds"]) / statistics.median(
        cold["ort_cold"]["seconds"]
    )
    cold_memory = statistics.median(cold["ort_cold"]["peak_bytes"]) / statistics.median(
        cold["tf_cold"]["peak_bytes"]
    )
    return [
        ("warm activations, batch 1: >= 1.4x faster than cached TF", _ratio(b1), b1 >= 1.4),
        (
            f"warm activations, batch {batch}: >= 1.3x faster per image than TF",
            _ratio(bn),
            bn >= 1.3,
        ),
        *_openvino_targets(med, batch, "quiet"),
        (
            "semantic_dict() end to end within 1.2x of bare inference on the same photo",
            f"{semdict:.2f}x (against all layers of a ready 224x224 array: {semdict_array:.2f}x)",
            semdict <= 1.2,
        ),
        ("cold process to a saved page: >= 8x faster than TF", _ratio(cold_speed), cold_speed >= 8),
        (
            "cold process peak memory: <= 1/4 of TF's",
            f"{cold_memory:.2f} of TF's",
            cold_memory <= 0.25,
        ),
    ]


def render(
    seconds: dict[str, list[float]],
    cold: dict[str, Any],
    matmul: list[dict[str, Any]],
    spritemap: str,
    meta: dict[str, Any],
    plan: Plan,
    layer: str,
    busy: dict[str, list[float]] | None,
) -> str:
    """RESULTS.md: method, environment, tables, targets, GPU status."""
    ceiling = max((m["gflops"] for m in matmul), default=0.0)
    layer_names = {"all": "all mixed", "L": layer, "D": " + ".join(meta["runtime"]["asked"])}
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{meta['command']}` on {meta['date']} ({meta['wall_s']:.0f} s).",
        "Every figure below comes from that one run: same machine, same replica GraphDef",
        "(seeded random weights; speed does not depend on the weights' values), same images.",
        "Each side ran in its own process; the parent asked them in turn, "
        f"{plan.rounds} rounds. Medians. Method and what was tried: docs/performance.md.",
        "",
        "## Environment",
        "",
        f"- CPU: {meta['cpu']}, {os.cpu_count()} logical cores ({cpu_features()}); "
        f"{platform.platform()}",
        f"- load average (1 min) before / after: {meta['load_before']:.2f} / "
        f"{meta['load_after']:.2f} (other work on the machine shows here)",
        f"- other processes' share of the cores just before each round: median "
        f"{_share(meta['round_loads'], statistics.median)}, max "
        f"{_share(meta['round_loads'], max)}; rounds waited {meta['waited_s']:.0f} s in all "
        f"for a share under {QUIET_THRESHOLD:.0%} (budget {plan.quiet_wait_s:.0f} s); "
        f"{meta['remeasured']} measurements taken again because other processes took over "
        f"{INTERFERENCE:.0%} of the cores meanwhile",
        f"- onnxruntime {meta['runtime']['onnxruntime']} on {meta['runtime']['provider']}; "
        f"tensorflow {meta['tensorflow']['tensorflow']}; numpy {np.__version__}; "
        f"Python {platform.python_version()}",
        "- OpenVINO: "
        + (
            f"{meta['openvino']['openvino']}, {meta['openvino']['streams']} streams on its "
            "THROUGHPUT hint"
            if meta.get("openvino")
            else OPENVINO_MISSING
        ),
        f"- images: {plan.batch} crops/mirrors of the shipped photos, 224x224; "
        f"semantic_dict reads `{meta['photo']}` ({meta['photo_size']})",
        "",
        "## Warm calls",
        "",
        case_table(seconds, plan.batch, layer_names, ceiling),
        "",
        f"GFLOP/s counts {GFLOP_PER_IMAGE} GFLOP per 224x224 image (the network facts). "
        "The notebook's pattern evaluates one layer, as the notebook did. "
        + (
            "precision='bf16' is opt-in (bfloat16 through OpenVINO; its top-4 agreement with "
            "float32: `python benchmarks/bf16_agreement.py`)."
            if "bf16_b1" in seconds
            else f"precision='bf16' not measured: {meta.get('bf16_missing')}."
        ),
        "",
        *busy_section(busy, seconds, plan),
        "## Cold processes (process start to result; peak = the child's ru_maxrss)",
        "",
        "| process | until | median wall s | median peak MiB | runs |",
        "|---|---|---|---|---|",
    ]
    untils = {
        "tf_cold": f"TensorFlow: import, parse GraphDef, session, {layer} of the photo",
        "ort_cold": "semdict_onnx: load_model, semantic_dict(photo), page saved",
    }
    for name, until in untils.items():
        runs = cold[name]
        lines.append(
            f"| {name} | {until} | {statistics.median(runs['seconds']):.2f} | "
            f"{statistics.median(runs['peak_bytes']) / 2**20:.0f} | {len(runs['seconds'])} |"
        )
    lines += [
        "",
        "## Ceiling: numpy float32 matmul on the same cores",
        "",
        "| environment | size | GFLOP/s | BLAS (threadpoolctl) |",
        "|---|---|---|---|",
    ]
    for m in matmul:
        blas = "; ".join(
            f"{p['internal_api']} {p['version']} {p['architecture']} x{p['num_threads']}"
            for p in m["blas"]
        )
        lines.append(f"| {m['environment']} | {m['size']} | {m['gflops']:.0f} | {blas} |")
    lines += [
        "",
        "## Targets (issues 16 and 4)",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    rows = targets(seconds, cold, plan.batch) + (busy_targets(busy, plan.batch) if busy else [])
    for target, measured, met in rows:
        lines.append(f"| {target} | {measured} | {'yes' if met else 'NO'} |")
    lines += [
        "",
        "## Spritemap overhead (`benchmarks/spritemap_overhead.py`, same model)",
        "",
        spritemap,
        "",
        "## GPU",
        "",
    ]
    if GPU_RESULTS.is_file():
        lines.append(f"See [{GPU_RESULTS.name}]({GPU_RESULTS.name}) (from `scripts/gpu_check.sh`).")
    else:
        lines.append(
            "Still to be measured: no NVIDIA GPU was at hand. `scripts/gpu_check.sh` installs "
            "the CUDA provider, runs the parity tests and the GPU benchmark on a GPU machine."
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few iterations (a smoke run)")
    parser.add_argument("--graphdef", type=Path, help="replica GraphDef (default: build one)")
    parser.add_argument("--model", type=Path, help="its ONNX export (default: export it)")
    parser.add_argument("--layer", default="mixed4d", help="the dictionary's layer")
    parser.add_argument("--out", type=Path, default=BENCHMARKS / "RESULTS.md")
    parser.add_argument("--json", type=Path, help="also write every raw time here")
    parser.add_argument("--no-busy", action="store_true", help="skip the busy-machine part")
    args = parser.parse_args(argv)
    if (args.graphdef is None) != (args.model is None):
        parser.error("pass both --graphdef and --model (the model exported from that graph)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every measurement, print the table and write RESULTS.md."""
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="semdict-bench-") as tmp:
        work = Path(tmp)
        if args.graphdef is None:
            print("building and exporting the replica ...", flush=True)
            graphdef, model = build_replica(work / "replica")
        else:
            graphdef, model = args.graphdef, args.model
        images_path = work / "images.npy"
        np.save(images_path, bench_images(plan.batch))
        photo = example_photos()[0]
        common = ["--images", str(images_path), "--layer", args.layer]
        print("starting the workers ...", flush=True)
        workers: dict[str, Worker] = {}
        try:
            workers["ort"] = Worker(
                ["runtime", "--model", str(model), "--image-file", str(photo), *common],
                work / "runtime.log",
            )
            layers = ",".join(workers["ort"].info["layers"])
            workers["tf"] = Worker(
                ["tensorflow", "--graphdef", str(graphdef), "--layers", layers, *common],
                work / "tensorflow.log",
            )
            if openvino_installed():
                workers["ov"] = Worker(
                    ["openvino", "--model", str(model), "--layers", layers, *common],
                    work / "openvino.log",
                )
                if bf16_missing() is None:
                    workers["bf16"] = Worker(
                        ["bf16", "--model", str(model), *common], work / "bf16.log"
                    )
            cases = [case for case in CASES if CASES[case][0] in workers]
            print(f"timing warm calls, {plan.rounds} rounds ...", flush=True)
            waiter = QuietWaiter(plan.quiet_wait_s)
            seconds = interleaved(workers, cases, plan.iterations, plan.rounds, waiter)
            busy = None
            if not args.no_busy:
                busy_cases = [case for case in BUSY_CASES if case in cases]
                print(f"timing warm calls on a busy machine, {plan.busy_rounds} rounds ...")
                with BusyLoad(busy_processes_for()):
                    interleaved(workers, busy_cases, plan.iterations, 1, None)  # settle
                    busy = interleaved(workers, busy_cases, plan.iterations, plan.busy_rounds, None)
        finally:
            for worker in workers.values():
                worker.close()
        print("timing cold processes ...", flush=True)
        cold = cold_processes(graphdef, model, photo, args.layer, plan.cold_runs, work)
        print("measuring the matmul ceiling ...", flush=True)
        matmul = matmul_ceiling(plan, work)
        print("running benchmarks/spritemap_overhead.py ...", flush=True)
        spritemap = spritemap_overhead(model, plan)
    with Image.open(photo) as opened:
        photo_size = f"{opened.width}x{opened.height} JPEG"
    meta = {
        "command": "python benchmarks/bench.py"
        + (" --quick" if args.quick else "")
        + (" --no-busy" if args.no_busy else ""),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "wall_s": time.perf_counter() - started,
        "cpu": cpu_name(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "round_loads": waiter.loads,
        "waited_s": waiter.waited_s,
        "remeasured": waiter.remeasured,
        "runtime": workers["ort"].info,
        "tensorflow": workers["tf"].info,
        "openvino": workers["ov"].info if "ov" in workers else None,
        "bf16_missing": bf16_missing(),
        "photo": photo.relative_to(ROOT).as_posix(),
        "photo_size": photo_size,
    }
    text = render(seconds, cold, matmul, spritemap, meta, plan, args.layer, busy)
    print(text)
    write_text_atomic(args.out, text)
    if args.json:
        raw = {"seconds": seconds, "busy": busy, "cold": cold, "matmul": matmul, "meta": meta}
        write_text_atomic(args.json, json.dumps(raw, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
