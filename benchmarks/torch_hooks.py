"""A user's own model: four stages of a ResNet-50 through this runtime against PyTorch with hooks.

    python benchmarks/torch_hooks.py [--rounds 8] [--quick] [--out FILE.md]

What Lucent and Captum users run to read activations is PyTorch eager with forward hooks on the
layers. This builds a ResNet-50 (torchvision's shapes: bottleneck blocks 3-4-6-3, seeded random
weights; speed does not depend on their values) in PyTorch, exports it with torch.onnx.export,
prepares it with prepare_model (layer1 ... layer4, torchvision preprocessing) and times, in two
processes asked in turns as benchmarks/bench.py does:
- PyTorch: `model(x)` under torch.inference_mode() with forward hooks copying out the four
  stages' outputs, batch 1 and 16, float32, PyTorch's default threads;
- this runtime: `model.activations(images, [layer1 ... layer4])` on the prepared file.
Both get the same 224x224 images; PyTorch takes them normalized NCHW (its users' tensors), the
runtime raw NHWC in [0, 1] (its normalization is in the prepared graph). Needs the
`bench-torch` extra (PyTorch; from PyPI on Linux that is the CUDA build, about 3 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

STAGES = ("layer1", "layer2", "layer3", "layer4")
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
TARGET = 1.5


def resnet50(seed: int = 0) -> Any:
    """torchvision's ResNet-50 layout in plain PyTorch (no torchvision), eval mode."""
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class Bottleneck(nn.Module):
        def __init__(self, inplanes: int, planes: int, stride: int) -> None:
            super().__init__()
            width, out = planes, planes * 4
            self.conv1, self.bn1 = nn.Conv2d(inplanes, width, 1, bias=False), nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3, self.bn3 = nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = None
            if stride != 1 or inplanes != out:
                self.downsample = nn.Sequential(
                    nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out)
                )

        def forward(self, x: Any) -> Any:
            identity = x if self.downsample is None else self.downsample(x)
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.relu(self.bn2(self.conv2(y)))
            return self.relu(self.bn3(self.conv3(y)) + identity)

    class ResNet50(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1, self.relu = nn.BatchNorm2d(64), nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            inplanes, stages = 64, []
            for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
                layers = []
                for index in range(blocks):
                    layers.append(Bottleneck(inplanes, planes, stride if index == 0 else 1))
                    inplanes = planes * 4
                stages.append(nn.Sequential(*layers))
            self.layer1, self.layer2, self.layer3, self.layer4 = stages
            self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(2048, 1000)

        def forward(self, x: Any) -> Any:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    model = ResNet50().eval()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model


def stage_outputs(raw: Path) -> dict[str, str]:
    """Each stage's output tensor in the exported graph: that of its last node (/layerN/...)."""
    import onnx

    last: dict[str, str] = {}
    for node in onnx.load(str(raw), load_external_data=False).graph.node:
        prefix = node.name.split("/")[1] if node.name.startswith("/") else ""
        if prefix in STAGES:
            last[prefix] = node.output[0]
    return {stage: last[stage] for stage in STAGES}


def export_and_prepare(folder: Path) -> Path:
    """The ResNet-50 exported with torch.onnx.export and prepared with prepare_model."""
    import torch

    from semdict_onnx._prepare import prepare_model

    raw = folder / "resnet50.onnx"
    example = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(
        resnet50(),
        (example,),
        str(raw),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    prepared = folder / "resnet50-prepared.onnx"
    prepare_model(
        raw,
        prepared,
        stage_outputs(raw),
        preprocessing="torchvision",
        class_output="logits",
        logits=True,
        network="ResNet-50 (random weights)",
    )
    return prepared


def torch_cases(images: np.ndarray) -> dict[str, Any]:
    """PyTorch eager with forward hooks on the four stages, batch 1 and N."""
    import torch

    model = resnet50()
    kept: dict[str, Any] = {}
    for stage in STAGES:
        getattr(model, stage).register_forward_hook(
            lambda _module, _inputs, output, stage=stage: kept.__setitem__(stage, output.clone())
        )
    normalized = torch.from_numpy(((images - MEAN) / STD).transpose(0, 3, 1, 2).copy())
    one, many = normalized[:1], normalized

    def call(batch: Any) -> dict[str, Any]:
        with torch.inference_mode():
            model(batch)
        return dict(kept)

    return {"torch_b1": lambda: call(one), "torch_bN": lambda: call(many)}


def ours_cases(prepared: Path, images: np.ndarray) -> dict[str, Any]:
    """This runtime on the prepared file: the four stages, batch 1 and N."""
    from semdict_onnx import load_model

    model = load_model(prepared)
    one, many = images[:1], images
    return {
        "ours_b1": lambda: model.activations(one, list(STAGES)),
        "ours_bN": lambda: model.activations(many, list(STAGES), batch_size=len(many)),
    }


def stage_difference(prepared: Path, images: np.ndarray) -> float:
    """The largest |difference| between PyTorch's and this runtime's stages, relative."""
    torch_stages = torch_cases(images)["torch_bN"]()
    ours = ours_cases(prepared, images)["ours_bN"]()
    worst = 0.0
    for stage in STAGES:
        theirs = torch_stages[stage].numpy().transpose(0, 2, 3, 1)
        scale = float(np.abs(theirs).max()) or 1.0
        worst = max(worst, float(np.abs(ours[stage] - theirs).max()) / scale)
    return worst


def serve(side: str, prepared: Path, images_path: Path) -> None:
    """The worker: warm each case, say ready, then answer timing requests on stdin."""
    images = np.load(images_path)
    cases = torch_cases(images) if side == "torch" else ours_cases(prepared, images)
    for case in cases.values():
        case()
        case()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        seconds = []
        for _ in range(request["iterations"]):
            start = time.perf_counter()
            cases[request["case"]]()
            seconds.append(time.perf_counter() - start)
        print(json.dumps({"seconds": seconds}), flush=True)


class Side:
    """A worker process of this script."""

    def __init__(self, side: str, prepared: Path, images: Path, log: Path) -> None:
        import subprocess

        self._log = log.open("w")
        command = [sys.executable, __file__, "--serve", side, str(prepared), str(images)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        if not self.process.stdout.readline():
            self.process.wait()
            raise RuntimeError(f"the {side} worker failed:\n{log.read_text()[-3000:]}")

    def time(self, case: str, iterations: int) -> list[float]:
        self.process.stdin.write(json.dumps({"case": case, "iterations": iterations}) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())["seconds"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)
        self._log.close()


def main(argv: list[str] | None = None) -> int:
    """Export, prepare, time in turns, print (and write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="2 rounds, batch 2 (a smoke run)")
    parser.add_argument("--out", type=Path, help="also write the table here")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], Path(args.serve[1]), Path(args.serve[2]))
        return 0
    import torch
    from bench import SETTLE_S, bench_images, cpu_features, cpu_name

    from semdict_onnx._atomic import write_text_atomic

    rounds, batch = (2, 2) if args.quick else (args.rounds, args.batch)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="semdict-torch-") as tmp:
        work = Path(tmp)
        prepared = export_and_prepare(work)
        images = work / "images.npy"
        np.save(images, bench_images(batch))
        difference = stage_difference(prepared, np.load(images)[:2])
        sides = {
            "torch": Side("torch", prepared, images, work / "torch.log"),
            "ours": Side("ours", prepared, images, work / "ours.log"),
        }
        cases = ["torch_b1", "ours_b1", "torch_bN", "ours_bN"]
        seconds: dict[str, list[float]] = {case: [] for case in cases}
        try:
            for index in range(rounds):
                for case in cases if index % 2 == 0 else reversed(cases):
                    time.sleep(SETTLE_S)
                    side = sides[case.split("_")[0]]
                    seconds[case] += side.time(case, 6 if case.endswith("b1") else 1)
        finally:
            for side in sides.values():
                side.close()
    med = {case: statistics.median(values) for case, values in seconds.items()}
    lines = [
        f"Written by `python benchmarks/torch_hooks.py{' --quick' if args.quick else ''}` "
        f"({time.perf_counter() - started:.0f} s, {rounds} rounds, medians).",
        f"CPU: {cpu_name()}, {os.cpu_count()} logical cores ({cpu_features()}); "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads); {platform.platform()}",
        f"Same values: the largest |difference| of the four stages between the two, relative "
        f"to their largest value, is {difference:.1e}.",
        "",
        "| ResNet-50, layer1-layer4 | batch | PyTorch eager + hooks, ms / image | "
        "semdict_onnx, ms / image | PyTorch ÷ this | target >= 1.5x |",
        "|---|---|---|---|---|---|",
    ]
    for kind, size in (("b1", 1), ("bN", batch)):
        theirs, ours = med[f"torch_{kind}"] / size, med[f"ours_{kind}"] / size
        ratio = theirs / ours
        lines.append(
            f"| float32 | {size} | {theirs * 1000:.1f} | {ours * 1000:.1f} | {ratio:.2f}x | "
            f"{'met' if ratio >= TARGET else 'NOT met'} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text_atomic(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
