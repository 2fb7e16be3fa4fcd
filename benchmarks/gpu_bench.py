"""GPU figures: batch-1 latency, throughput at batch 64 and 256 with IO binding, TF32 and float16;
a prepared model (bring your own network) and spritemap throughput from JPEG files.

    python benchmarks/gpu_bench.py --model ONNX --out FILE.md
    python benchmarks/gpu_bench.py --model ONNX --provider CPUExecutionProvider --quick

Run by scripts/gpu_check.sh on a machine with an NVIDIA GPU; the second form runs the same
code on the CPU provider (small batches, few calls), so the script is tested anywhere.
Strict float32 (the library's default: TF32 off) is the reference. TF32 (CUDA only) and a
float16 model (LRN arithmetic kept in float32: squares of activations overflow float16) are
timed too, with their top-4 agreement against the reference: the share of positions, over
every mixed layer of the benchmark images, whose top-4 channels are the same and in the same
order. A variant counts as usable only at 99% or more. Then the prepared-model path: the
tests' torchvision-style ResNet (tests/model_families.py) prepared with prepare_model, run on
the provider and compared with the CPU; and build_spritemap over JPEG files on disk against
pure inference on the same images already decoded (images per second, and their share).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import GFLOP_PER_IMAGE, bench_images  # noqa: E402

from semdict_onnx import load_model  # noqa: E402
from semdict_onnx._atomic import write_text_atomic  # noqa: E402
from semdict_onnx._providers import CPU, CUDA, session_options, with_default_options  # noqa: E402
from semdict_onnx.export._optimize import LRN_NODE_SUFFIXES  # noqa: E402

AGREEMENT_NEEDED = 0.99
TOP_K = 4
DISTINCT_IMAGES = 16


@dataclass(frozen=True)
class Plan:
    """Batch sizes and calls per measurement."""

    throughput_batches: tuple[int, ...]
    latency_calls: int
    throughput_calls: int

    spritemap_images: int


FULL = Plan(
    throughput_batches=(64, 256), latency_calls=50, throughput_calls=10, spritemap_images=256
)
QUICK = Plan(throughput_batches=(2, 4), latency_calls=3, throughput_calls=2, spritemap_images=8)


def median_seconds(call: Callable[[], object], calls: int) -> float:
    """The median wall time of `calls` calls, after two unmeasured ones."""
    call()
    call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_session(path: Path, spec: str | tuple[str, dict[str, str]]) -> ort.InferenceSession:
    """A session with the runtime's options on one provider (CPU added for unsupported nodes)."""
    providers = [with_default_options(spec)] + ([CPU] if spec != CPU else [])
    return ort.InferenceSession(str(path), session_options(), providers=providers)


def io_bound_call(
    session: ort.InferenceSession, images: np.ndarray, names: list[str], device: str
) -> Callable[[], object]:
    """One run with the input already on the device and the outputs left there."""
    binding = session.io_binding()
    binding.bind_ortvalue_input(
        session.get_inputs()[0].name, ort.OrtValue.ortvalue_from_numpy(images, device, 0)
    )
    for name in names:
        binding.bind_output(name, device)
    return lambda: session.run_with_iobinding(binding)


def top_k_agreement(
    reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]
) -> tuple[float, float]:
    """The shares of positions, over all layers, whose top-k channels agree: in order; as sets."""
    ordered = as_sets = total = 0
    for name, values in reference.items():
        flat_ref = values.reshape(-1, values.shape[-1])
        flat_cand = candidate[name].reshape(-1, values.shape[-1]).astype(np.float32)
        top_ref = np.argsort(-flat_ref, axis=1, kind="stable")[:, :TOP_K]
        top_cand = np.argsort(-flat_cand, axis=1, kind="stable")[:, :TOP_K]
        ordered += int(np.all(top_ref == top_cand, axis=1).sum())
        as_sets += int(np.all(np.sort(top_ref, axis=1) == np.sort(top_cand, axis=1), axis=1).sum())
        total += len(top_ref)
    return ordered / total, as_sets / total


def _skip_float16_round_trips(graph: onnx.GraphProto) -> None:
    """Feed Cast(float16) -> Cast(float32) chains' readers the float32 original; drop the dead.

    The converter puts such a chain between two nodes it was told to keep in float32, so the
    tensor between them would pass through float16 (where squares of activations overflow).
    It also adds one identical Cast per float32 reader of a tensor: only the first is kept.
    """
    float16, float32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    casts = {
        node.output[0]: node
        for node in graph.node
        if node.op_type == "Cast" and _cast_to(node) in (float16, float32)
    }
    original = {}
    for out, node in casts.items():
        source = casts.get(node.input[0])
        if _cast_to(node) == float32 and source is not None and _cast_to(source) == float16:
            original[out] = source.input[0]
    for node in graph.node:
        node.input[:] = [original.get(name, name) for name in node.input]
    seen: set[bytes] = set()
    kept = []
    for node in graph.node:
        key = node.SerializeToString()
        if key not in seen:
            seen.add(key)
            kept.append(node)
    while True:
        read = {name for node in kept for name in node.input} | {o.name for o in graph.output}
        alive = [node for node in kept if any(out in read for out in node.output)]
        if len(alive) == len(kept):
            break
        kept = alive
    del graph.node[:]
    graph.node.extend(kept)


def _cast_to(node: onnx.NodeProto) -> int:
    """The `to` type of a Cast node."""
    return next(attr.i for attr in node.attribute if attr.name == "to")


def float16_model(path: Path, out: Path) -> Path:
    """A float16 copy of the model (float32 input and outputs; LRN arithmetic in float32)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(path))
    keep = [n.name for n in model.graph.node if n.name.endswith(LRN_NODE_SUFFIXES)]
    converted = convert_float_to_float16(model, keep_io_types=True, node_block_list=keep)
    _skip_float16_round_trips(converted.graph)
    onnx.save(converted, str(out))
    return out


def gpu_name() -> str:
    """The GPU as nvidia-smi names it, or a note that there is none."""
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "no nvidia-smi here"
    return done.stdout.strip() or done.stderr.strip() or "no GPU reported"


def measure(model_path: Path, provider: str, plan: Plan, work: Path) -> tuple[list[str], str]:
    """The table rows and the reference's provider options."""
    device = "cuda" if provider == CUDA else "cpu"
    model = load_model(model_path, providers=[provider])
    names = list(model.layers)
    images = bench_images(DISTINCT_IMAGES)
    reference = model.activations(images, layers=names)
    rows = []

    def row(variant: str, batch: int, how: str, seconds: float, agreement: str) -> None:
        per_second = batch / seconds
        rows.append(
            f"| {variant} | {batch} | {how} | {seconds * 1000:.2f} | {per_second:.0f} | "
            f"{per_second * GFLOP_PER_IMAGE / 1000:.2f} | {agreement} |"
        )

    one = images[:1]
    row(
        "float32 (default: TF32 off)",
        1,
        "`model.activations`",
        median_seconds(lambda: model.activations(one), plan.latency_calls),
        "reference",
    )
    biggest = max(plan.throughput_batches)
    tiled = np.ascontiguousarray(np.resize(images, (biggest, *images.shape[1:])))
    row(
        "float32 (default: TF32 off)",
        biggest,
        "`model.activations` (host arrays)",
        median_seconds(lambda: model.activations(tiled, batch_size=biggest), plan.throughput_calls),
        "reference",
    )
    variants: list[tuple[str, Path, str | tuple[str, dict[str, str]]]] = [
        ("float32 (default: TF32 off)", model_path, provider)
    ]
    if provider == CUDA:
        variants.append(("TF32", model_path, (CUDA, {"use_tf32": "1"})))
    variants.append(("float16", float16_model(model_path, work / "fp16.onnx"), provider))
    for variant, path, spec in variants:
        session = make_session(path, spec)
        outputs = session.run(names, {session.get_inputs()[0].name: images})
        ordered, as_sets = top_k_agreement(reference, dict(zip(names, outputs, strict=True)))
        verdict = "usable" if ordered >= AGREEMENT_NEEDED else "NOT usable"
        usable = (
            "reference"
            if path == model_path and spec == provider
            else f"{ordered:.2%} in order ({as_sets:.2%} as sets): {verdict}"
        )
        for batch in (1, *plan.throughput_batches):
            batch_images = np.ascontiguousarray(tiled[:batch])
            call = io_bound_call(session, batch_images, names, device)
            calls = plan.latency_calls if batch == 1 else plan.throughput_calls
            row(
                variant,
                batch,
                "IO binding, outputs left on the device",
                median_seconds(call, calls),
                usable,
            )
    options = make_session(model_path, provider).get_provider_options().get(provider, {})
    shown = {key: options[key] for key in ("use_tf32", "cudnn_conv_algo_search") if key in options}
    return rows, f"{model.provider} {shown}"


def prepared_rows(provider: str, plan: Plan, work: Path) -> list[str]:
    """The tests' ResNet-style network prepared with prepare_model, on `provider` and the CPU."""
    sys.path.insert(0, str(ROOT / "tests"))
    import model_families as mf

    from semdict_onnx._prepare import prepare_model

    raw = mf.build_resnet(work / "resnet-raw.onnx")
    path = work / "resnet-prepared.onnx"
    prepare_model(
        raw, path, mf.RESNET_LAYERS, preprocessing="torchvision",
        class_output=mf.RESNET_LOGITS, logits=True, network="tests' ResNet",
    )  # fmt: skip
    model = load_model(path, providers=[provider])
    cpu = load_model(path, providers=[CPU])
    layers = list(model.layers)
    images = bench_images(DISTINCT_IMAGES)
    got, want = model.activations(images, layers), cpu.activations(images, layers)
    worst = max(
        float(np.abs(got[name] - want[name]).max()) / (float(np.abs(want[name]).max()) or 1.0)
        for name in layers
    )
    rows = []
    for batch in (1, max(plan.throughput_batches)):
        tiled = np.ascontiguousarray(np.resize(images, (batch, *images.shape[1:])))
        calls = plan.latency_calls if batch == 1 else plan.throughput_calls
        seconds = median_seconds(lambda t=tiled, n=batch: model.activations(t, layers, n), calls)
        rows.append(
            f"| prepared ResNet ({', '.join(layers)}) | {batch} | `model.activations` | "
            f"{seconds * 1000:.2f} | {batch / seconds:.0f} | {worst:.1e} |"
        )
    return rows


def spritemap_rows(model_path: Path, provider: str, plan: Plan, work: Path) -> list[str]:
    """build_spritemap over JPEG files on `provider` against pure inference of the same images."""
    from spritemap_overhead import write_photos

    from semdict_onnx import build_spritemap, load_image, to_batch

    model = load_model(model_path, providers=[provider])
    folder = work / "photos"
    folder.mkdir()
    paths = write_photos(folder, plan.spritemap_images)
    decoded = to_batch([load_image(p) for p in paths], *model.input_size)
    batch = min(64, len(paths))
    pure = median_seconds(lambda: model.activations(decoded, "mixed4d", batch), 3)
    build = median_seconds(
        lambda: build_spritemap(folder, "mixed4d", model, batch_size=batch, progress=False), 3
    )
    count = len(paths)
    return [
        f"| pure inference, mixed4d, decoded arrays | {batch} | {count / pure:.0f} | 100% |",
        f"| build_spritemap from JPEG files, mixed4d | {batch} | {count / build:.0f} | "
        f"{pure / build:.0%} |",
    ]


def main(argv: list[str] | None = None) -> int:
    """Measure and write the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="the exported ONNX model")
    parser.add_argument("--provider", default=CUDA, choices=(CUDA, CPU))
    parser.add_argument("--quick", action="store_true", help="small batches, few calls")
    parser.add_argument("--out", type=Path, help="write the markdown here too")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="semdict-gpu-") as tmp:
        rows, provider_line = measure(args.model, args.provider, plan, Path(tmp))
        prepared = prepared_rows(args.provider, plan, Path(tmp))
        spritemap = spritemap_rows(args.model, args.provider, plan, Path(tmp))
    lines = [
        "# GPU benchmark",
        "",
        f"Written by `python benchmarks/gpu_bench.py{' --quick' if args.quick else ''}` "
        f"({time.perf_counter() - started:.0f} s) on {time.strftime('%Y-%m-%d %H:%M %Z')}.",
        f"- GPU: {gpu_name()}",
        f"- onnxruntime {ort.__version__}; provider {provider_line}",
        f"- model: `{args.model.name}`; {DISTINCT_IMAGES} distinct images, "
        "repeated for bigger batches",
        f"- agreement: positions whose top-{TOP_K} channels match the float32 reference in order, "
        f"all mixed layers; usable at >= {AGREEMENT_NEEDED:.0%}",
        "",
        "| variant | batch | how | median ms / call | images/s | TFLOP/s | top-4 agreement |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "## Your own model, prepared (bring your own model)",
        "",
        "| model | batch | how | median ms / call | images/s | largest difference from the "
        "CPU, relative |",
        "|---|---|---|---|---|---|",
        *prepared,
        "",
        "## Spritemaps from JPEG files on disk (replica, median of 3 calls)",
        "",
        "| step | batch | images/s | share of pure inference |",
        "|---|---|---|---|",
        *spritemap,
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text_atomic(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
