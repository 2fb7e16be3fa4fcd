"""The export (semdict_onnx.export, run as `python scripts/export.py`): the exported model's
contract, its parity with TensorFlow, its failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import GOOGLENET_LAYERS, ROOT, SCRIPTS
from test_receptive_field import GOOGLENET as GOOGLENET_FIELDS

from semdict_onnx._metadata import METADATA_KEY, FieldInfo, ModelInfo
from semdict_onnx.export._download import sha256_of

pytestmark = pytest.mark.export  # every test here runs TensorFlow, the export or both

LAYERS = GOOGLENET_LAYERS
OUTPUT_NAMES = [*LAYERS, "softmax2"]
TOLERANCE = 1e-4


def model_info(path: Path) -> ModelInfo:
    """The semdict_onnx metadata of an ONNX file, read with onnx alone."""
    props = {prop.key: prop.value for prop in onnx.load(path).metadata_props}
    return ModelInfo.from_json(props[METADATA_KEY])


def export(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python scripts/export.py` in a subprocess, as a user with a clone does."""
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "export.py"), "--no-progress", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        env=env,
    )


def leftovers(folder: Path) -> list[str]:
    """Names in `folder`, temporary files included."""
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_replica_model_has_the_contracted_inputs_and_outputs(replica_model_path):
    model = onnx.load(replica_model_path)
    onnx.checker.check_model(model)
    (image,) = model.graph.input
    dims = image.type.tensor_type.shape.dim
    assert image.name == "image"
    assert image.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # Any batch size, height and width; three channels.
    assert [d.dim_param for d in dims[:3]] == ["batch", "height", "width"]
    assert not any(d.HasField("dim_value") for d in dims[:3])
    assert dims[3].dim_value == 3
    assert [output.name for output in model.graph.output] == OUTPUT_NAMES
    assert {node.domain for node in model.graph.node} <= {"", "ai.onnx"}


def test_replica_metadata_describes_the_network(replica_model_path, replica_graphdef_path):
    info = model_info(replica_model_path)
    assert info.replica is True
    assert "replica" in info.network.lower() and "random" in info.network.lower()
    assert "random weights" in info.weights_note
    assert "random" in onnx.load(replica_model_path).doc_string.lower()
    assert (info.input.name, info.input.height, info.input.width) == ("image", 224, 224)
    # Other sizes too, from the total stride: 224 pixels over mixed5b's 7 positions.
    assert (info.input.variable_size, info.input.min_side, info.input.stride) == (True, 32, 32)
    assert info.input.value_range == (0.0, 1.0)
    assert info.input.network_range == (-117.0, 138.0)
    # ... and what the parity check feeds TensorFlow is that same 255 * x - 117.
    from semdict_onnx.export._googlenet import to_network_range

    assert to_network_range(np.array([0.0, 0.5, 1.0])).tolist() == [-117.0, 10.5, 138.0]
    assert {layer.name: (layer.channels, layer.height) for layer in info.layers} == LAYERS
    assert all(layer.height == layer.width for layer in info.layers)
    # Each layer's field, written the way prepare_model writes it (walked through the graph),
    # is the hand computation of tests/test_receptive_field.py.
    for layer in info.layers:
        size, jump, start, _ = GOOGLENET_FIELDS[layer.name]
        assert layer.field == FieldInfo((size, size), (jump, jump), (start, start), "graph")
        assert (layer.tensor, layer.layout, layer.extra_tokens) == (None, "NHWC", 0)
    assert (info.class_output, info.num_classes) == ("softmax2", 1008)
    assert info.labels is None
    assert info.spritemaps == {}
    # The export's replica and scripts/replica.py's are the same graph, byte for byte.
    assert info.source_sha256 == sha256_of(replica_graphdef_path)


def test_replica_export_says_the_weights_are_random(replica_export_log):
    assert "RANDOM weights" in replica_export_log
    assert "REPLICA MODEL: random weights" in replica_export_log
    assert "checking ONNX Runtime against TensorFlow" in replica_export_log
    assert "mixed5b" in replica_export_log and "FAIL" not in replica_export_log
    assert "... and at 224x320 on 2 images" in replica_export_log
    assert "input: any height and width of at least 32 pixels" in replica_export_log


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_onnxruntime_matches_tensorflow(replica_model_path, replica_graphdef_path, batch):
    from semdict_onnx.export._convert import load_graphdef
    from semdict_onnx.export._parity import format_parity, measure_parity, parity_images

    graph_def = load_graphdef(replica_graphdef_path)
    images = parity_images(batch, seed=100 + batch)
    results = measure_parity(graph_def, replica_model_path, images, OUTPUT_NAMES)
    print(f"batch {batch}\n{format_parity(results)}")
    assert [r.name for r in results] == OUTPUT_NAMES
    for r in results:
        assert r.shape[0] == batch
        assert r.scale > 1e-3, f"{r.name}: activations vanished"
        assert r.relative_diff <= TOLERANCE, f"{r.name}: {r.relative_diff:.2e} of scale"
        assert r.top_k_mismatches == 0, f"{r.name}: top-4 channels differ"
        # Near-tie swaps are allowed only as the rare float32 event they are.
        assert r.top_k_ties <= max(1, r.positions // 100), f"{r.name}: {r.top_k_ties} ties"


def test_onnxruntime_matches_tensorflow_at_a_non_square_size(
    replica_model_path, replica_graphdef_path
):
    """TensorFlow runs the size-independent source graph at 224x320, as the export converts it."""
    from semdict_onnx.export._convert import load_graphdef, variable_size_graphdef
    from semdict_onnx.export._parity import format_parity, measure_parity, parity_images

    graph_def = variable_size_graphdef(load_graphdef(replica_graphdef_path))
    images = parity_images(2, seed=42, height=224, width=320)
    assert images.shape == (2, 224, 320, 3)
    results = measure_parity(graph_def, replica_model_path, images, OUTPUT_NAMES)
    print(format_parity(results))
    shapes = {r.name: r.shape for r in results}
    assert shapes["mixed3a"] == (2, 28, 40, 256)
    assert shapes["mixed4d"] == (2, 14, 20, 528)
    assert shapes["mixed5b"] == (2, 7, 10, 1024)
    assert shapes["softmax2"] == (2, 1008)
    for r in results:
        assert r.scale > 1e-3, f"{r.name}: activations vanished"
        assert r.relative_diff <= TOLERANCE, f"{r.name}: {r.relative_diff:.2e} of scale"
        assert r.top_k_mismatches == 0, f"{r.name}: top-4 channels differ"
        assert r.top_k_ties <= max(1, r.positions // 100), f"{r.name}: {r.top_k_ties} ties"


def test_the_size_independent_graph_is_the_source_at_224(replica_graphdef_path):
    """The global mean that replaces avgpool0 gives TensorFlow's own numbers at 224x224."""
    from semdict_onnx.export._convert import load_graphdef, variable_size_graphdef
    from semdict_onnx.export._parity import parity_images, tensorflow_outputs

    source = load_graphdef(replica_graphdef_path)
    rewritten = variable_size_graphdef(source)
    assert {n.name: n.op for n in rewritten.node}["avgpool0"] == "Mean"
    images = parity_images(2, seed=3)
    before = tensorflow_outputs(source, images, OUTPUT_NAMES)
    after = tensorflow_outputs(rewritten, images, OUTPUT_NAMES)
    for name in LAYERS:
        np.testing.assert_array_equal(after[name], before[name])
    np.testing.assert_allclose(after["softmax2"], before["softmax2"], rtol=1e-5, atol=1e-9)


def broken_head(graph_def, change: str):
    """A copy of `graph_def` whose class head no longer has Lucid's shape."""
    from semdict_onnx.export._tf_env import import_tensorflow

    tf = import_tensorflow()
    broken = tf.compat.v1.GraphDef()
    broken.CopyFrom(graph_def)
    nodes = {node.name: node for node in broken.node}
    if change == "max pool":
        nodes["avgpool0"].op = "MaxPool"
    elif change == "same padding":
        nodes["avgpool0"].attr["padding"].s = b"SAME"
    elif change == "no reshape":
        nodes["avgpool0/reshape"].input[0] = "mixed5b"
    elif change == "smaller kernel":
        nodes["avgpool0"].attr["ksize"].list.i[1:3] = [5, 5]
    return broken


@pytest.mark.parametrize("change", ["max pool", "same padding", "no reshape"])
def test_a_class_head_of_another_shape_is_named_and_not_rewritten(replica_graphdef_path, change):
    from semdict_onnx.export import ConversionError
    from semdict_onnx.export._convert import (
        class_head_problem,
        load_graphdef,
        variable_size_graphdef,
    )

    graph_def = broken_head(load_graphdef(replica_graphdef_path), change)
    assert class_head_problem(graph_def) == (
        "the class head is not the expected avgpool0 (AvgPool, VALID) -> Reshape "
        "[-1, channels] -> softmax2's MatMul"
    )
    with pytest.raises(ConversionError, match="class head is not the expected avgpool0"):
        variable_size_graphdef(graph_def)
    assert class_head_problem(load_graphdef(replica_graphdef_path)) is None


def test_a_class_pool_that_is_not_global_is_named(replica_graphdef_path):
    from semdict_onnx.export._convert import class_head_problem, load_graphdef

    broken = broken_head(load_graphdef(replica_graphdef_path), "smaller kernel")
    assert class_head_problem(broken) == (
        "avgpool0 pools [5, 5] but its input is [7, 7] at 224x224: not a global pool, so a "
        "global mean would change softmax2"
    )


def squeezed_head(graph_def):
    """The replica with another class head: avgpool0 -> Squeeze([1, 2]) instead of Reshape,
    the same numbers at 224x224 in a pattern the size rewrite does not know."""
    from semdict_onnx.export._tf_env import import_tensorflow

    tf = import_tensorflow()
    variant = tf.compat.v1.GraphDef()
    variant.CopyFrom(graph_def)
    reshape = next(node for node in variant.node if node.name == "avgpool0/reshape")
    reshape.op = "Squeeze"
    del reshape.input[1:]
    reshape.attr.pop("Tshape")
    reshape.attr["squeeze_dims"].list.i.extend([1, 2])
    return variant


def test_an_unknown_class_head_exports_a_fixed_size_model_with_a_warning(
    replica_graphdef_path, tmp_path
):
    """Bug: a class head other than Lucid's exact pattern failed the whole export."""
    from semdict_onnx.errors import ImageError
    from semdict_onnx.export._convert import load_graphdef
    from semdict_onnx.export._pipeline import fixed_size_warning

    graphdef = tmp_path / "InceptionV1.pb"
    graphdef.write_bytes(squeezed_head(load_graphdef(replica_graphdef_path)).SerializeToString())
    output = tmp_path / "out" / "googlenet.onnx"
    result = export("--graphdef", graphdef, "--output", output, "--labels", "none")
    assert result.returncode == 0, result.stderr
    warning = fixed_size_warning(
        "the class head is not the expected avgpool0 (AvgPool, VALID) -> Reshape "
        "[-1, channels] -> softmax2's MatMul"
    )
    assert f"warning: {warning}\n" in result.stderr
    assert "FIXED-SIZE model instead: it takes only 224x224 images" in warning
    assert "input: only 224x224 images" in result.stdout
    assert "224x320" not in result.stdout  # no parity check at a size the model does not take
    dims = onnx.load(output).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [224, 224, 3]

    from semdict_onnx import load_model, semantic_dict

    model = load_model(output)
    assert (model.info.input.variable_size, model.input_size) == (False, (224, 224))
    image = np.random.default_rng(0).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    acts = model.activations(image, ["mixed4d", "softmax2"])
    assert acts["mixed4d"].shape == (1, 14, 14, 528) and acts["softmax2"].shape == (1, 1008)
    assert semantic_dict(image, "mixed4d", model).rows == 14
    with pytest.raises(ImageError, match="this model takes only 224x224 images, not 224x320"):
        model.activations(image, "mixed4d", size=(224, 320))
    assert leftovers(output.parent) == ["googlenet.onnx"]


def test_ctrl_c_during_an_export_writes_nothing_and_a_killed_ones_leftovers_go(tmp_path):
    """Bugs: Ctrl-C printed a traceback; a killed export's .googlenet.onnx.*.part files stayed
    for good."""
    from cli_runs import COMMAND, interrupt

    output = tmp_path / "out" / "googlenet.onnx"
    output.parent.mkdir()
    stale = output.parent / ".googlenet.onnx.k1ll3d00.part"
    stale.write_bytes(b"half of a model")
    os.utime(stale, (1, 1))  # from an export killed long ago
    command = [*COMMAND, "export", "--replica", "--output", str(output), "--cache-dir",
               str(tmp_path / "cache"), "--no-progress"]  # fmt: skip
    result = interrupt(command, lambda stdout, stderr: "converting" in stdout)
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
    assert result.last_line == "semdict export: interrupted; nothing written"
    assert leftovers(output.parent) == []


def test_batched_results_do_not_depend_on_the_batch(replica_model_path):
    from semdict_onnx.export._parity import onnxruntime_outputs, parity_images

    images = parity_images(3, seed=7)
    together = onnxruntime_outputs(replica_model_path, images, OUTPUT_NAMES)
    alone = onnxruntime_outputs(replica_model_path, images[1:2], OUTPUT_NAMES)
    for name in OUTPUT_NAMES:
        scale = np.abs(together[name]).max()
        assert np.abs(together[name][1:2] - alone[name]).max() <= TOLERANCE * scale, name


def test_parity_check_catches_a_wrong_model(replica_model_path, replica_graphdef_path):
    from semdict_onnx.export import ParityError
    from semdict_onnx.export._convert import load_graphdef
    from semdict_onnx.export._parity import check_parity, parity_images

    model = onnx.load(replica_model_path)
    weights = next(t for t in model.graph.initializer if "mixed4c_3x3_w" in t.name)
    array = onnx.numpy_helper.to_array(weights) * np.float32(1.01)
    weights.CopyFrom(onnx.numpy_helper.from_array(array, weights.name))
    graph_def = load_graphdef(replica_graphdef_path)
    with pytest.raises(ParityError, match="does not match TensorFlow") as caught:
        check_parity(graph_def, model.SerializeToString(), parity_images(2), OUTPUT_NAMES)
    table = str(caught.value)
    assert "mixed3b" in table and "mixed4c" in table and "FAIL" in table
    assert table.count("FAIL") >= 6  # mixed4c and everything after it


def test_graphdef_export_is_offline_and_describes_the_real_model(
    lookalike_graphdef_path, labels_text, tmp_path
):
    """--graphdef on a graph without the replica marker: labels beside it, no network."""
    source = tmp_path / "source"
    source.mkdir()
    graphdef = source / "InceptionV1.pb"
    graphdef.write_bytes(lookalike_graphdef_path.read_bytes())
    (source / "InceptionV1-labels.txt").write_text(labels_text, encoding="utf-8")
    output = tmp_path / "out" / "googlenet.onnx"
    # Every socket connection fails, and proxies point at a closed port.
    guard = (
        "import runpy, socket, sys\n"
        "def refuse(*args, **kwargs):\n"
        "    raise OSError('export --graphdef tried to use the network')\n"
        "socket.socket.connect = refuse\n"
        "socket.socket.connect_ex = refuse\n"
        "socket.create_connection = refuse\n"
        "sys.argv = ['export.py'] + sys.argv[1:]\n"
        f"runpy.run_path({str(SCRIPTS / 'export.py')!r}, run_name='__main__')\n"
    )
    unreachable = "http://127.0.0.1:9"
    env = {
        **os.environ,
        "http_proxy": unreachable,
        "https_proxy": unreachable,
        "HTTP_PROXY": unreachable,
        "HTTPS_PROXY": unreachable,
        "no_proxy": "",
        "SEMDICT_ONNX_HOME": str(tmp_path / "home"),
    }
    result = subprocess.run(
        [sys.executable, "-c", guard, "--graphdef", graphdef, "--output", output],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"source graph sha256: {sha256_of(graphdef)}" in result.stdout
    assert "RANDOM" not in result.stdout
    assert not (tmp_path / "home").exists()  # nothing cached, nothing downloaded
    info = model_info(output)
    assert info.replica is False
    assert info.network == "InceptionV1"
    assert info.source_sha256 == sha256_of(graphdef)
    assert info.labels is not None and len(info.labels) == 1008
    assert info.labels[0] == "dummy" and info.labels[1007] == "class 1007"
    assert sorted(info.spritemaps) == sorted(set(LAYERS) - {"mixed5b"})
    sprite = info.spritemaps["mixed4d"]
    assert sprite.url.endswith("googlenet_spritemaps/sprite_mixed4d_channel_alpha.jpeg")
    assert sprite.url.startswith("https://storage.googleapis.com/lucid-static/")
    assert (sprite.per_row, sprite.sprite_size) == (22, 110)
    assert info.spritemaps["mixed3a"].per_row == 16
    assert info.spritemaps["mixed5a"].per_row == 28


def test_corrupt_graphdef_fails_and_keeps_the_old_model(tmp_path):
    corrupt = tmp_path / "InceptionV1.pb"
    corrupt.write_bytes(b"\x0a\xff\xff\xff this is not a protobuf" * 100)
    output = tmp_path / "out" / "googlenet.onnx"
    output.parent.mkdir()
    output.write_bytes(b"previous model")
    result = export("--graphdef", corrupt, "--output", output)
    assert result.returncode == 1
    assert "is not a TensorFlow GraphDef" in result.stderr
    assert "No model was written" in result.stderr
    assert output.read_bytes() == b"previous model"
    assert leftovers(output.parent) == ["googlenet.onnx"]


def test_graphdef_that_is_not_googlenet_fails(tmp_path):
    empty = tmp_path / "empty.pb"
    empty.write_bytes(b"")  # a valid, empty GraphDef
    output = tmp_path / "out" / "googlenet.onnx"
    result = export("--graphdef", empty, "--output", output)
    assert result.returncode == 1
    assert "not Lucid's GoogLeNet" in result.stderr and "mixed3a" in result.stderr
    assert leftovers(output.parent) == []


def test_missing_graphdef_fails(tmp_path):
    output = tmp_path / "googlenet.onnx"
    result = export("--graphdef", tmp_path / "nope.pb", "--output", output)
    assert result.returncode == 1
    assert "no such file" in result.stderr
    assert not output.exists()
    folder = export("--graphdef", tmp_path, "--output", output)
    assert folder.returncode == 1 and f"--graphdef {tmp_path} is a folder" in folder.stderr


def test_checksum_mismatch_fails_without_output(replica_graphdef_path, tmp_path):
    output = tmp_path / "out" / "googlenet.onnx"
    result = export("--graphdef", replica_graphdef_path, "--output", output, "--sha256", "0" * 64)
    assert result.returncode == 1
    assert f"not the pinned {'0' * 64}" in result.stderr
    assert sha256_of(replica_graphdef_path) in result.stderr
    assert leftovers(output.parent) == []


def test_malformed_sha256_is_a_usage_error(tmp_path):
    result = export("--replica", "--output", tmp_path / "m.onnx", "--sha256", "abc")
    assert result.returncode == 2
    assert "64 hexadecimal digits" in result.stderr
    assert leftovers(tmp_path) == []


def test_parity_failure_writes_nothing(replica_graphdef_path, tmp_path, monkeypatch):
    from semdict_onnx.export import ParityError, _convert, export_graphdef

    working_convert = _convert.convert

    def broken_convert(graph_def, variable_size=True):
        model = working_convert(graph_def, variable_size)
        weights = next(t for t in model.graph.initializer if "conv2d2_w" in t.name)
        array = -onnx.numpy_helper.to_array(weights)
        weights.CopyFrom(onnx.numpy_helper.from_array(array, weights.name))
        return model

    monkeypatch.setattr(_convert, "convert", broken_convert)
    output = tmp_path / "googlenet.onnx"
    with pytest.raises(ParityError, match="Nothing was written"):
        export_graphdef(replica_graphdef_path, output, progress=False)
    assert leftovers(tmp_path) == []


def test_metadata_is_plain_json(replica_model_path):
    props = {prop.key: prop.value for prop in onnx.load(replica_model_path).metadata_props}
    raw = json.loads(props[METADATA_KEY])
    assert raw["replica"] is True and raw["labels"] is None and raw["spritemaps"] == {}
    assert [layer["name"] for layer in raw["layers"]] == list(LAYERS)


def test_the_labels_reader_is_prepare_models_with_the_exports_hint(tmp_path, labels_text):
    from semdict_onnx.export._errors import LabelsError
    from semdict_onnx.export._pipeline import read_labels

    good = tmp_path / "labels.txt"
    good.write_text(labels_text + "\n\n", encoding="utf-8")  # trailing blank lines dropped
    assert read_labels(str(good), tmp_path, 1008)[1007] == "class 1007"
    short = tmp_path / "short.txt"
    short.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(LabelsError, match=r"has 2 lines but class output 'softmax2' has 1008 .*"
                       r"pass --labels with InceptionV1-labels.txt"):  # fmt: skip
        read_labels(str(short), tmp_path, 1008)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(LabelsError, match="cannot read the labels file"):
        read_labels(f"file://{binary}", tmp_path, 1008)
