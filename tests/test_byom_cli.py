"""`semdict layers` and `semdict prepare`, and the other commands on what they prepare, run as
separate processes the way a user runs them, on the three model families."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import model_families as mf
import numpy as np
import pytest
from byom_families import FAMILIES
from PIL import Image
from semdict_helpers import reference_top_k
from test_cli import first_selection, semdict

from semdict_onnx import (
    Basis,
    Spritemap,
    list_layers,
    load_model,
    prepare_model,
    semantic_dict,
)
from semdict_onnx._model_card import card_of
from semdict_onnx._onnx_graph import load_onnx

EXAMPLES = Path(__file__).resolve().parent.parent / "semdict_onnx" / "examples"
COLUMNS = ["tensor", "op", "shape", "layout", "channels", "grid", "stride", "field", "note"]
# Each family's `semdict prepare` flags, the same options as FAMILIES[name].options.
FLAGS = {
    "resnet": ["--preprocessing", "torchvision", "--class-output", mf.RESNET_LOGITS, "--logits"],
    "keras": ["--preprocessing", "caffe", "--class-output", mf.KERAS_PROBS],
    "vit": [
        "--mean", "0.5,0.5,0.5", "--std", "0.5,.5,0.5", "--class-output", mf.VIT_LOGITS,
        "--logits", "--extra-tokens", "1",
    ],
}  # fmt: skip


def layer_flags(layers: dict[str, str]) -> list[str]:
    return [part for short, tensor in layers.items() for part in ("--layer", f"{short}={tensor}")]


@pytest.fixture(scope="module")
def raw_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("raw")
    return {name: family.build(folder / f"{name}.onnx") for name, family in FAMILIES.items()}


def table_rows(stdout: str) -> list[list[str]]:
    """The table `semdict layers` prints, as cells (split on runs of two or more spaces)."""
    lines = stdout.split("\n\n")[0].splitlines()
    return [re.split(r"\s{2,}", line.strip()) for line in lines]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_layers_prints_every_candidate_in_network_order(raw_files, name):
    raw = raw_files[name]
    result = semdict("layers", raw)
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert rows[0] == COLUMNS
    candidates = list_layers(raw)
    assert [row[0] for row in rows[1:]] == [c.name for c in candidates]
    for row, candidate in zip(rows[1:], candidates, strict=True):
        assert row[1:5] == [
            candidate.op,
            "x".join(map(str, candidate.shape)),
            candidate.layout
            if not candidate.extra_tokens
            else f"tokens (+{candidate.extra_tokens})",
            str(candidate.channels),
        ]
        assert row[6] == f"{candidate.stride[0]:g}" and row[7] == f"{candidate.field.size[0]:g}"
    assert f"{len(candidates)} tensors can be layers." in result.stdout
    assert f"semdict prepare {raw} --layer SHORT=TENSOR" in result.stdout


def test_layers_at_another_size_and_its_errors(raw_files, tmp_path):
    sized = semdict("layers", raw_files["resnet"], "--size", "160x192")
    assert sized.returncode == 0, sized.stderr
    stem = next(row for row in table_rows(sized.stdout) if row[0] == mf.RESNET_LAYERS["stem"])
    assert stem[2] == "1x8x80x96" and stem[5] == "80x96"
    text = tmp_path / "notes.onnx"
    text.write_text("hello")
    for args, message in [
        ([tmp_path / "none.onnx"], "no ONNX file at"),
        ([text], "is not a readable ONNX model"),
        ([raw_files["resnet"], "--layout", "nhwc"], "NHWC"),
        ([raw_files["keras"], "--size", "100"], "does not fit the graph"),
    ]:
        result = semdict("layers", *args)
        assert result.returncode == 1, args
        assert result.stderr.startswith("semdict layers: error: ") and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("name", list(FAMILIES))
def test_prepare_writes_what_prepare_model_writes(raw_files, name, tmp_path):
    family = FAMILIES[name]
    raw, out = raw_files[name], tmp_path / "cli.onnx"
    extra = []
    if family.labels:
        labels = tmp_path / "labels.txt"
        labels.write_text("\n".join(family.labels) + "\n", encoding="utf-8")
        extra = ["--labels", labels]
    result = semdict("prepare", raw, *layer_flags(family.layers), *FLAGS[name], *extra,
                     "--out", out)  # fmt: skip
    assert result.returncode == 0, result.stderr
    want = prepare_model(raw, tmp_path / "api.onnx", family.layers, **family.options)
    assert card_of(load_onnx(out)) == want
    assert out.read_bytes() == (tmp_path / "api.onnx").read_bytes()
    assert result.stdout.startswith(f"wrote {out}\nnetwork 'net': input ")
    for layer in want.layers:
        assert f"layer {layer.name}: {layer.channels} channels" in result.stdout
    assert f"--model {out} --layer {want.layers[0].name}" in result.stdout
    again = semdict("layers", out)  # a prepared file: its layers are named, not re-prepared
    assert again.returncode == 0, again.stderr
    assert f"note: {out} is already prepared (its layers: {', '.join(want.layer_names)})" in (
        again.stdout
    )


def test_preprocessing_field_flags_equal_a_preset(raw_files, tmp_path):
    """--value-range, --channel-order and --mean spell out Caffe's preset; --network,
    --input-name, --layout and --crop-size land in the card."""
    raw, layers = raw_files["keras"], layer_flags(mf.KERAS_LAYERS)
    preset = semdict("prepare", raw, *layers, "--preprocessing", "caffe", "--out",
                     tmp_path / "preset.onnx")  # fmt: skip
    spelled = semdict(
        "prepare", raw, *layers, "--value-range", "0,255", "--channel-order", "bgr",
        "--mean", "103.939,116.779,123.68", "--network", "my keras net", "--input-name",
        "input_1", "--layout", "NHWC", "--crop-size", "block2_relu6=12", "--out",
        tmp_path / "spelled.onnx",
    )  # fmt: skip
    assert preset.returncode == 0 and spelled.returncode == 0, spelled.stderr
    first, second = (card_of(load_onnx(tmp_path / f)) for f in ("preset.onnx", "spelled.onnx"))
    assert first.input.preprocessing == second.input.preprocessing
    assert second.network == "my keras net"
    relu6 = second.layer("block2_relu6").field
    assert relu6.source == "given" and relu6.size == (12, 12)
    sized = semdict("prepare", raw_files["resnet"], "--layer", f"stem={mf.RESNET_LAYERS['stem']}",
                    "--input-size", "160x192", "--out", tmp_path / "sized.onnx")  # fmt: skip
    assert sized.returncode == 0, sized.stderr
    card = card_of(load_onnx(tmp_path / "sized.onnx"))
    assert card.input.default_size == (160, 192) and card.layers[0].height == 80


def test_bad_prepare_input_is_one_line_and_writes_nothing(raw_files, tmp_path):
    raw = raw_files["resnet"]
    stem = f"stem={mf.RESNET_LAYERS['stem']}"
    labels = tmp_path / "four.txt"
    labels.write_text("a\nb\nc\nd\n", encoding="utf-8")
    cases = [
        (["--layer", "stem=/stem/relu/Relu_outpt_0"], "close names: /stem/relu/Relu_output_0"),
        (["--layer", f"head={mf.RESNET_LOGITS}"], "which is not a feature map"),
        (["--layer", stem, "--mean", "1,2"], "mean must be 3 numbers"),
        (["--layer", stem, "--std", "0.2,0,0.2"], "std must be positive"),
        (["--layer", stem, "--class-output", mf.RESNET_LOGITS, "--labels", labels],
         "has 4 lines but class output 'logits' has 5 classes"),
        (["--layer", stem, "--layout", "NHWC"], "NHWC"),
        (["--layer", stem, "--labels", labels], "need class_output=TENSOR (--class-output)"),
        (["--layer", "stem="], "--layer 'stem=' must be TENSOR or SHORT=TENSOR"),
        (["--layer", stem, "--layer", "stem=x"], "--layer names 'stem' twice"),
        (["--layer", stem, "--crop-size", "stem=big"], "--crop-size takes whole numbers"),
        (["--layer", stem, "--crop-size", "other=9"], "crop_sizes names other"),
        (["--layer", stem, "--extra-tokens", "-1"], "--extra-tokens takes whole numbers"),
    ]  # fmt: skip
    for args, message in cases:
        out = tmp_path / "out.onnx"
        result = semdict("prepare", raw, *args, "--out", out)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.startswith("semdict prepare: error: "), result.stderr
        assert message in result.stderr, (message, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert list(tmp_path.glob("out*")) == [], args
    usage = semdict("prepare", raw, "--layer", stem, "--mean", "1,a,3", "--out", tmp_path / "x")
    assert usage.returncode == 2 and "argument --mean: must be numbers" in usage.stderr
    same = semdict("prepare", raw, "--layer", stem, "--out", raw)
    assert same.returncode == 1 and "is the source file itself" in same.stderr
    assert card_of(load_onnx(raw)) is None


def test_pages_spritemap_and_basis_commands_on_a_prepared_model(raw_files, tmp_path):
    family = FAMILIES["resnet"]
    prepared = tmp_path / "resnet-semdict.onnx"
    done = semdict(
        "prepare", raw_files["resnet"], *layer_flags(family.layers), *FLAGS["resnet"],
        "--network", "ResNet from the tests", "--out", prepared,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    photos = tmp_path / "photos"
    photos.mkdir()
    for photo in EXAMPLES.glob("*.jpg"):
        shutil.copy(photo, photos)
    common = ["--model", prepared, "--layer", "layer2", "--images", photos, "--no-progress"]
    sprites = semdict("spritemap", *common, "--sprite-size", "24", "--out", tmp_path / "s.png")
    assert sprites.returncode == 0, sprites.stderr
    assert "16 sprites of layer layer2" in sprites.stdout and "from 4 images" in sprites.stdout
    spritemap = Spritemap.load(tmp_path / "s.png")
    assert spritemap.manifest["model"]["network"] == "ResNet from the tests"
    basis = semdict("basis", *common, "--components", "3", "--out", tmp_path / "b.npz")
    assert basis.returncode == 0, basis.stderr
    assert Basis.load(tmp_path / "b.npz", "layer2", 16).k == 3
    image = EXAMPLES / "chelsea.jpg"
    pages = semdict(
        image, "--model", prepared, "--layer", "layer2", "--spritemap", tmp_path / "s.png",
        "--basis", "neurons", "--basis", tmp_path / "b.npz", "--out", tmp_path / "pages",
    )  # fmt: skip
    assert pages.returncode == 0, pages.stderr
    page = tmp_path / "pages" / "chelsea-layer2.html"
    model = load_model(prepared)
    with Image.open(image) as photo:  # a dictionary keeps the photo's aspect ratio
        size = model.input_size_for((photo.height, photo.width))
    acts = model.activations(image, ["layer2"], size=size)["layer2"][0]
    row, col, _ = np.unravel_index(int(np.argmax(acts)), acts.shape)
    assert first_selection(page) == reference_top_k(acts, 4)[0][row, col].tolist()
    html = page.read_text("utf-8")
    assert "ResNet from the tests, source graph sha256" in html
    assert "REPLICA" not in pages.stdout + html
    gallery = semdict(image, EXAMPLES / "rocket.jpg", "--model", prepared, "--layer", "stem",
                      "--gallery", "all.html", "--out", tmp_path / "gallery")  # fmt: skip
    assert gallery.returncode == 0, gallery.stderr
    assert "ResNet from the tests" in (tmp_path / "gallery" / "all.html").read_text("utf-8")
    last = list(family.layers)[-1]  # without --layer: the last layer the card lists
    default = semdict(image, "--model", prepared, "--out", tmp_path / "default", "--no-progress")
    assert default.returncode == 0, default.stderr
    assert (tmp_path / "default" / f"chelsea-{last}.html").is_file()
    assert semantic_dict(image, model=model).layer == last
    raw = semdict(image, "--model", raw_files["resnet"], "--layer", "x", "--out", tmp_path / "r")
    assert (
        raw.returncode == 1 and "semdict layers" in raw.stderr and "semdict prepare" in raw.stderr
    )


def test_the_readme_snippet_runs_as_written(tmp_path):
    """README's "Your own model" blocks, run from a copy of the clone's files they name."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    section = (root / "README.md").read_text("utf-8").split("### Your own model", 1)[1]
    bash = section.split("```bash\n", 1)[1].split("```", 1)[0]
    python = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "tests").mkdir()
    shutil.copy(root / "tests" / "model_families.py", tmp_path / "tests")
    (tmp_path / "semdict_onnx").symlink_to(root / "semdict_onnx")  # as in the clone
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for command in (["bash", "-euo", "pipefail", "-c", bash], [sys.executable, "-c", python]):
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    for page in (tmp_path / "pages" / "chelsea-layer2.html", tmp_path / "chelsea-layer2.html"):
        assert "net, source graph sha256" in page.read_text("utf-8")
    assert card_of(load_onnx(tmp_path / "resnet-semdict.onnx")).layer_names == ["layer2"]
