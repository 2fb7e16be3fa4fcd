"""load_model on a raw ONNX network: prepared in memory with prepare_model's options.

Per family, the in-memory model computes exactly what the prepared file computes; its pruned
and one-thread twin sessions (the runner's speedups) and its receptive fields come from the
prepared bytes, so they work with the raw file gone; without options the error says what is
missing and how to get it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from byom_families import FAMILIES, build_all

import semdict_onnx
from semdict_onnx import _parallel as parallel
from semdict_onnx import load_model, prepare_model, receptive_fields, to_batch
from semdict_onnx._runner import PRUNE_AFTER_IMAGES
from semdict_onnx.errors import ModelFormatError, OptionError, PrepareError

EXAMPLES = Path(__file__).resolve().parent.parent / "semdict_onnx" / "examples"
CPU = ["CPUExecutionProvider"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Each family's raw file and the file prepare_model writes from it."""
    return {
        name: (raw, prepared)
        for name, (raw, prepared, _) in build_all(tmp_path_factory.mktemp("families")).items()
    }


def photos(size: tuple[int, int], count: int) -> list[np.ndarray]:
    """`count` pictures at `size`: the four shipped photos, then seeded noise."""
    shipped = list(to_batch(sorted(EXAMPLES.glob("*.jpg")), *size))
    noise = np.random.default_rng(3).random((max(0, count - len(shipped)), *size, 3))
    return [*shipped, *noise.astype(np.float32)][:count]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_a_raw_file_with_options_equals_the_prepared_file(built, name):
    family = FAMILIES[name]
    raw, prepared = built[name]
    in_memory = load_model(raw, CPU, layers=family.layers, **family.options)
    from_file = load_model(prepared, CPU)
    assert in_memory.prepared_in_memory and not from_file.prepared_in_memory
    assert in_memory.info == from_file.info
    assert in_memory.path == raw and isinstance(in_memory.source, bytes)
    assert in_memory.source == prepared.read_bytes()
    images = photos(family.size, 3)
    names = [*family.layers, in_memory.info.class_output]
    got, want = in_memory.activations(images, names), from_file.activations(images, names)
    for layer in names:
        np.testing.assert_array_equal(got[layer], want[layer], err_msg=layer)
    assert receptive_fields(in_memory) == receptive_fields(from_file)
    text = repr(in_memory)
    assert f"prepared in memory from {str(raw)!r}" in text
    assert f"{in_memory.info.input.layout}, {in_memory.info.input.preprocessing.describe()}" in text


def test_repr_shows_layout_and_preprocessing(built):
    _, prepared = built["keras"]
    text = repr(load_model(prepared, CPU))
    assert "input 48x64 NHWC, RGB [0, 1] -> [0, 255], as BGR, minus mean (103.939," in text
    assert "prepared in memory" not in text


def test_speedups_run_from_the_prepared_bytes_with_the_raw_file_gone(built, tmp_path, monkeypatch):
    """The pruned session (after PRUNE_AFTER_IMAGES images of one output set) and the
    one-thread twin (a batch of one image per core) are made from the bytes, not the path."""
    family = FAMILIES["resnet"]
    raw = shutil.copy(built["resnet"][0], tmp_path / "raw.onnx")
    monkeypatch.setattr(parallel, "usable_cores", lambda: 2)  # twins on any machine
    model = load_model(raw, CPU, layers=family.layers, **family.options, speedups=True)
    plain = load_model(built["resnet"][1], CPU, speedups=False)
    Path(raw).unlink()
    images = photos((64, 96), 4)
    for _ in range(PRUNE_AFTER_IMAGES // len(images) + 1):
        got = model.activations(images, ["stem"], batch_size=4, size=(64, 96))
    runner = model._runner
    assert runner.pruned[("stem",)] is not None, "a pruned session from the bytes"
    assert runner.twins and all(twin is not None for twin in runner.twins.values())
    want = plain.activations(images, ["stem"], size=(64, 96))
    np.testing.assert_allclose(got["stem"], want["stem"], rtol=1e-6, atol=1e-6)
    assert receptive_fields(model)["layer2"].jump == (8, 8)


def test_a_raw_file_without_options_says_what_is_missing(built):
    raw, _ = built["resnet"]
    with pytest.raises(ModelFormatError) as caught:
        load_model(raw, CPU)
    message = str(caught.value)
    assert "raw network, not yet prepared" in message
    assert f"semdict layers {raw}" in message and "list_layers(path)" in message
    assert "load_model(path, layers={SHORT: TENSOR}, preprocessing=...)" in message
    assert "prepare_model(path, OUT, layers, ...)" in message and "semdict prepare" in message


def test_bad_load_options_are_clear_errors(built):
    raw, prepared = built["resnet"]
    layers = FAMILIES["resnet"].layers
    with pytest.raises(OptionError, match="given without layers: to prepare a raw network"):
        load_model(raw, CPU, preprocessing="torchvision")
    with pytest.raises(OptionError, match="load_model takes no option colour_order;.*mean, std"):
        load_model(raw, CPU, layers=layers, colour_order="BGR")
    with pytest.raises(PrepareError, match="is already prepared .* load it with load_model"):
        load_model(prepared, CPU, layers=["stem"])
    with pytest.raises(PrepareError, match="mean must be 3 numbers"):
        load_model(raw, CPU, layers=layers, mean=(0.5, 0.5))


def test_layers_by_their_own_tensor_names(built, tmp_path):
    """A list of tensor names (no short names): NCHW maps and token layers that are
    transposed or reshaped on their way out keep the tensor's own name as the layer's."""
    for name in ("resnet", "vit"):
        family = FAMILIES[name]
        raw, prepared = built[name]
        plain = tmp_path / f"{name}-plain.onnx"
        info = prepare_model(raw, plain, list(family.layers.values()), **family.options)
        assert info.layer_names == list(family.layers.values())
        by_tensor = load_model(plain, CPU)
        by_short = load_model(prepared, CPU)
        images = photos(family.size, 2)
        got = by_tensor.activations(images, info.layer_names)
        want = by_short.activations(images, list(family.layers))
        for short, tensor in family.layers.items():
            np.testing.assert_array_equal(got[tensor], want[short], err_msg=tensor)
        fields = receptive_fields(by_tensor)
        for short, field in receptive_fields(by_short).items():
            assert fields[family.layers[short]].jump == field.jump


def test_the_output_cannot_be_the_source(built, tmp_path):
    raw = shutil.copy(built["keras"][0], tmp_path / "raw.onnx")
    before = Path(raw).read_bytes()
    with pytest.raises(PrepareError, match="is the source file itself"):
        semdict_onnx.prepare_model(raw, raw, FAMILIES["keras"].layers, preprocessing="caffe")
    assert Path(raw).read_bytes() == before


def test_the_load_raw_benchmark_runs(built):
    """benchmarks/load_raw.py --quick on a family's prepared file (timings are not checked)."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "load_raw.py"
    _, prepared = built["resnet"]
    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--model", str(prepared)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if "| " in line}
    assert {"file", "memory"} <= set(rows)
    for case in ("file", "memory"):
        assert re.fullmatch(rf"\| {case}( \| [0-9.]+){{6}} \|", rows[case]), rows[case]


def test_feature_visualization_runs_on_the_prepared_bytes(built, tmp_path):
    """visualize builds its gradient model from what the Model was made from: the same
    picture from a raw file prepared in memory (then deleted) as from the prepared file."""
    from semdict_onnx import visualize

    family = FAMILIES["resnet"]
    raw = shutil.copy(built["resnet"][0], tmp_path / "raw.onnx")
    in_memory = load_model(raw, CPU, layers=family.layers, **family.options)
    Path(raw).unlink()
    from_file = load_model(built["resnet"][1], CPU)
    options = dict(size=48, steps=3, seed=1)
    got = visualize("layer2", 3, in_memory, **options)
    want = visualize("layer2", 3, from_file, **options)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
