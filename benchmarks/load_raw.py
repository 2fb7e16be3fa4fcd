"""What `load_model(raw, layers=..., ...)` costs against loading a file prepared once.

    python benchmarks/load_raw.py --model PREPARED.onnx [--layer mixed4d] [--repeats 3]

The network measured is a prepared file with its model card taken out (a raw network, as an
exporter writes it; for the GoogLeNet export that is the graph with its layers as outputs),
prepared again with the layers and class output its card named. Each case runs in a fresh
process, `--repeats` times, alternately, and the best is kept:

- `file`: `load_model(prepared)`, then one image's activations;
- `memory`: `load_model(raw, layers=..., class_output=...)`: the same, prepared in memory.

Per case it prints the seconds to a loaded model, to the first activations, to a one-thread
twin session (the CPU speedup's; made from the file or from the kept bytes), the resident
memory after the run and at its peak, and the bytes an in-memory model keeps. `--quick` runs
one repeat.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "semdict_onnx" / "examples" / "chelsea.jpg"
CASES = ("file", "memory")
CHILD = """
import json, resource, sys, time
start = time.perf_counter()
from semdict_onnx import load_model
from semdict_onnx._runner import SessionRunner
path, case, layers, class_output, image = sys.argv[1:6]
layers = layers.split(",")
if case == "file":
    model = load_model(path, ["CPUExecutionProvider"])
else:
    model = load_model(path, ["CPUExecutionProvider"], layers=layers, class_output=class_output)
loaded = time.perf_counter()
model.activations(image, layers)
first = time.perf_counter()
twin = model._runner._session_on(None, intra_op_threads=1)
assert twin is not None
done = time.perf_counter()
kept = len(model.source) if model.prepared_in_memory else 0
import gc, os
gc.collect()
rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
print(json.dumps({
    "rss_mib": rss,
    "load_s": loaded - start, "first_activations_s": first - start, "twin_s": done - first,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "kept_mib": kept / 2**20,
}))
"""


def raw_copy(prepared: Path, folder: Path) -> tuple[Path, list[str], str]:
    """The prepared file without its card, and the layers and class output the card named."""
    import onnx

    from semdict_onnx._metadata import METADATA_KEY
    from semdict_onnx._model_card import card_of

    model = onnx.load(str(prepared))
    info = card_of(model)
    if info is None:
        raise SystemExit(f"{prepared} has no model card: pass a prepared file")
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    raw = folder / "raw.onnx"
    onnx.save(model, str(raw))
    return raw, info.layer_names, info.class_output or ""


def main(argv: list[str] | None = None) -> int:
    """Run the cases and print a Markdown table of the best of each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a prepared ONNX file")
    parser.add_argument("--layer", action="append", help="layers to prepare (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repeat")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        raw, layers, class_output = raw_copy(Path(args.model), Path(tmp))
        layers = args.layer or layers
        paths = {"file": Path(args.model), "memory": raw}
        best: dict[str, dict[str, float]] = {}
        for _ in range(repeats):
            for case in CASES:
                command = [sys.executable, "-c", CHILD, str(paths[case]), case, ",".join(layers),
                           class_output, str(EXAMPLE)]  # fmt: skip
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                measured = json.loads(done.stdout.strip().splitlines()[-1])
                kept = best.setdefault(case, measured)
                for key, value in measured.items():
                    kept[key] = min(kept[key], value)
    size = Path(args.model).stat().st_size / 2**20
    print(f"model {args.model} ({size:.1f} MiB), layers {', '.join(layers)}, best of {repeats}\n")
    header = ["case", "to loaded model (s)", "to first activations (s)", "one-thread twin (s)",
              "RSS after (MiB)", "peak RSS (MiB)", "bytes kept (MiB)"]  # fmt: skip
    keys = ["load_s", "first_activations_s", "twin_s", "rss_mib", "peak_rss_mib", "kept_mib"]
    print("| " + " | ".join(header) + " |\n" + "|---" * len(header) + "|")
    for case in CASES:
        cells = [f"{best[case][key]:.2f}" if key.endswith("_s") else f"{best[case][key]:.0f}"
                 for key in keys]  # fmt: skip
        print(f"| {case} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
