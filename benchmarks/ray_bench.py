"""Images per second of a dataset-example spritemap on the local engine and on Ray, and Ray's
overhead at equal cores.

    python benchmarks/ray_bench.py [--model PATH] [--images 1536] [--layer mixed4d]
                                   [--block-size 64] [--repeats 2] [--address ADDR]
                                   [--out benchmarks/RESULTS-ray.md] [--quick]

Writes N distinct JPEGs (crops and flips of the shipped examples) to a temporary folder, then
times `build_spritemap` from those files to the finished spritemap on:
- the local engine on 1 and 2 cores (`load_model(threads=...)`);
- Ray with 1 and 2 workers of 1 CPU each (a Ray instance of 2 CPUs started here, or the
  cluster at --address; its start is not timed, since a cluster is up before a job;
  each job's actors, model shipping and scheduling are).
Reading alone (decode and resize, one thread) is timed too: what bounds an actor whose model
runs on a GPU. Each case runs --repeats times, alternating, and keeps its best time. Ray's
overhead is its time over the local engine's at the same number of cores. A second, small
job (one block) on each Ray case gives its fixed cost per job, so the steady rate is
(N - n) / (t_N - t_n): the rate a long job approaches, which the ImageNet projection uses.
Every result is checked to equal the local engine's manifest. --quick: 8 images, blocks of
4, one repeat (a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import cpu_features, cpu_name
from PIL import Image, ImageOps

from semdict_onnx import __version__
from semdict_onnx._cpu_load import usable_cores
from semdict_onnx._dataset_examples import build_spritemap
from semdict_onnx._engines import RayEngine
from semdict_onnx._images import load_image, to_batch
from semdict_onnx._model import load_model

EXAMPLES = Path(__file__).resolve().parent.parent / "semdict_onnx" / "examples"
IMAGENET_IMAGES = 1_281_167
OVERHEAD_TARGET = 0.15


@dataclass(frozen=True)
class Plan:
    """How much work a run does."""

    images: int
    block_size: int
    repeats: int


FULL = Plan(images=1536, block_size=64, repeats=2)
QUICK = Plan(images=8, block_size=4, repeats=1)


def write_photos(folder: Path, count: int) -> None:
    """`count` distinct JPEGs made from the shipped examples."""
    sources = [Image.open(p).convert("RGB") for p in sorted(EXAMPLES.glob("*.jpg"))]
    for i in range(count):
        image = sources[i % len(sources)]
        variant = i // len(sources)
        w, h = image.size
        margin = (variant % 8) * 0.03
        image = image.crop((int(w * margin), int(h * margin / 2), w, h))
        image = ImageOps.mirror(image) if variant % 2 else image
        image.save(folder / f"photo_{i:05d}.jpg", quality=90)


def read_and_resize(folder: Path, size: tuple[int, int]) -> None:
    """Decode every JPEG and resize it to the model's input, on this thread, keeping nothing."""
    for path in sorted(folder.iterdir()):
        to_batch(load_image(path), *size)


def timed(run: Callable[[], object]) -> tuple[float, object]:
    """Seconds `run` takes, and what it returns."""
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and write it to --out."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="ONNX model (default: the exported one)")
    parser.add_argument("--images", type=int, default=FULL.images)
    parser.add_argument("--layer", default="mixed4d")
    parser.add_argument("--block-size", type=int, default=FULL.block_size)
    parser.add_argument("--repeats", type=int, default=FULL.repeats)
    parser.add_argument("--address", help="Ray cluster to join (default: start one here)")
    parser.add_argument("--out", type=Path, help="markdown file to write the table to")
    parser.add_argument("--json", type=Path, help="file for the raw times")
    parser.add_argument("--quick", action="store_true", help="a smoke run: " + str(QUICK))
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan(args.images, args.block_size, args.repeats)
    load_before = os.getloadavg()[0]
    import ray

    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    warnings.simplefilter("ignore", UserWarning)
    model_path = load_model(args.model).path
    one_core = load_model(model_path, threads=1)
    two_cores = load_model(model_path, threads=2)
    options = {"sprite_size": 32, "progress": False, "block_size": plan.block_size}
    with tempfile.TemporaryDirectory() as tmp:
        folder, small = Path(tmp) / "photos", Path(tmp) / "one-block"
        folder.mkdir(), small.mkdir()
        write_photos(folder, plan.images)
        write_photos(small, plan.block_size)
        cases: dict[str, Callable[[Path], object]] = {
            "local, 1 core": lambda f: build_spritemap(f, args.layer, one_core, **options),
            "local, 2 cores": lambda f: build_spritemap(f, args.layer, two_cores, **options),
            "Ray, 1 worker": lambda f: build_spritemap(
                f, args.layer, model_path, engine=RayEngine(workers=1), **options
            ),
            "Ray, 2 workers": lambda f: build_spritemap(
                f, args.layer, model_path, engine=RayEngine(workers=2), **options
            ),
        }
        # Warm-up: caches, imports, and Ray Data's first-use actors (a running cluster has them).
        build_spritemap(small, args.layer, two_cores, **options)
        build_spritemap(small, args.layer, model_path, engine=RayEngine(workers=1), **options)
        cases["read and resize only, 1 core"] = lambda f: read_and_resize(f, one_core.input_size)
        seconds: dict[str, list[float]] = {name: [] for name in cases}
        fixed: dict[str, list[float]] = {name: [] for name in cases if name.startswith("Ray")}
        reference = None
        for _ in range(plan.repeats):
            for name, run in cases.items():
                took, spritemap = timed(lambda run=run: run(folder))
                seconds[name].append(took)
                if spritemap is None:  # reading alone
                    continue
                reference = reference or spritemap.manifest
                if spritemap.manifest != reference:
                    raise SystemExit(f"{name} gave another manifest than the local engine")
                if name in fixed:
                    fixed[name].append(timed(lambda run=run: run(small))[0])
    loads = (load_before, os.getloadavg()[0])
    table = report(plan, args.layer, seconds, fixed, Path(model_path), loads)
    print(table)
    if args.out:
        args.out.write_text(table, encoding="utf-8")
    if args.json:
        raw = {"plan": plan.__dict__, "seconds": seconds, "one_block_seconds": fixed}
        args.json.write_text(json.dumps(raw, indent=1), encoding="utf-8")
    ray.shutdown()
    return 0


def report(
    plan: Plan,
    layer: str,
    seconds: dict[str, list[float]],
    fixed: dict[str, list[float]],
    model_path: Path,
    loads: tuple[float, float],
) -> str:
    """The markdown table: images/s, Ray's overhead at equal cores, and the projection."""
    best = {name: min(times) for name, times in seconds.items()}
    rate = {name: plan.images / took for name, took in best.items()}
    steady = {  # None where the small job was not faster (noise on a tiny run)
        name: (plan.images - plan.block_size) / (best[name] - min(times))
        if best[name] > min(times)
        else None
        for name, times in fixed.items()
    }
    local_of = {"Ray, 1 worker": "local, 1 core", "Ray, 2 workers": "local, 2 cores"}
    lines = [
        "# Dataset scale on Ray",
        "",
        f"`python benchmarks/ray_bench.py{' --quick' if plan == QUICK else ''}`: "
        f"{plan.images} JPEGs from disk to the finished spritemap of {layer}, blocks of "
        f"{plan.block_size}, best of {plan.repeats}; model {model_path.name}. Machine: "
        f"{cpu_name()}, {usable_cores()} usable cores ({cpu_features()}), Python "
        f"{platform.python_version()}, semdict_onnx {__version__}; load average (1 min) before "
        f"/ after: {loads[0]:.2f} / {loads[1]:.2f} (other work on the machine shows here). "
        "Overhead: Ray's time over the local engine's at the same "
        "number of cores, end to end (with Ray's fixed cost per job: actors, model, "
        "scheduling) and in the steady state a long job approaches.",
        "",
        "| engine | seconds | images/s | images/s per core | one block (s) | steady images/s "
        "| overhead, end to end | overhead, steady |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, took in best.items():
        workers = 2 if name in ("local, 2 cores", "Ray, 2 workers") else 1
        one_block = f"{min(fixed[name]):.2f}" if name in fixed else "-"
        steady_rate = steady.get(name)
        overhead = steady_overhead = "-"
        if name in local_of and local_of[name] in best:
            overhead = _overhead(best[name] / best[local_of[name]] - 1)
            if steady_rate is not None:
                steady_overhead = _overhead(rate[local_of[name]] / steady_rate - 1)
        lines.append(
            f"| {name} | {took:.2f} | {rate[name]:.1f} | {rate[name] / workers:.1f} "
            f"| {one_block} | {'-' if steady_rate is None else f'{steady_rate:.1f}'} "
            f"| {overhead} | {steady_overhead} |"
        )
    per_core = steady.get("Ray, 1 worker") or rate["Ray, 1 worker"]
    hours = IMAGENET_IMAGES / per_core / 3600
    lines += [
        "",
        f"Projection (not a measurement): ImageNet's {IMAGENET_IMAGES:,} training images at "
        f"Ray's {per_core:.1f} images/s per CPU core (steady, 1 worker) take {hours:,.0f} "
        f"core-hours: about {hours / 64:,.1f} hours on a cluster of 64 such cores, if reading "
        "the files keeps up and the driver's merging (milliseconds per block) does too.",
        "",
    ]
    return "\n".join(lines)


def _overhead(share: float) -> str:
    """An overhead as a signed percentage and whether it meets the target."""
    verdict = "yes" if share < OVERHEAD_TARGET else "NO"
    return f"{100 * share:+.1f}% (under {100 * OVERHEAD_TARGET:.0f}%: {verdict})"


if __name__ == "__main__":
    sys.exit(main())
