"""Sub-models: pruned graphs give the full values; Model switches to them for sets asked often."""

from __future__ import annotations

import threading

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from semdict_onnx import _runner
from semdict_onnx._model import load_model
from semdict_onnx._subgraph import prune

CPU = ["CPUExecutionProvider"]


def images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 224, 224, 3), dtype=np.float32)


def test_pruned_model_computes_only_what_is_asked_bit_for_bit(replica_model_path):
    full = onnx.load(replica_model_path)
    pruned = prune(onnx.load(replica_model_path), ["mixed3b", "mixed3a"])
    assert [value.name for value in pruned.graph.output] == ["mixed3a", "mixed3b"]
    ops = [node.op_type for node in pruned.graph.node]
    assert len(ops) < len(full.graph.node) / 2 and "Softmax" not in ops
    onnx.checker.check_model(pruned)
    x = images(2)
    whole = ort.InferenceSession(str(replica_model_path), providers=CPU)
    part = ort.InferenceSession(pruned.SerializeToString(), providers=CPU)
    for name in ("mixed3a", "mixed3b"):
        np.testing.assert_array_equal(
            part.run([name], {"image": x})[0], whole.run([name], {"image": x})[0]
        )


def test_pruning_to_an_unknown_output_is_an_error(replica_model_path):
    with pytest.raises(ValueError, match="no outputs"):
        prune(onnx.load(replica_model_path), ["mixed9z"])


@pytest.fixture
def eager_pruning(monkeypatch):
    """Prune an output set from the first image on."""
    monkeypatch.setattr(_runner, "PRUNE_AFTER_IMAGES", 1)


def test_model_switches_to_a_pruned_session_with_the_same_values(replica_model_path, monkeypatch):
    monkeypatch.setattr(_runner, "PRUNE_AFTER_IMAGES", 4)
    reference = load_model(replica_model_path, providers=CPU)._session
    model = load_model(replica_model_path, providers=CPU)
    x = images(3, seed=1)
    expected = reference.run(["mixed4a"], {"image": x})[0]
    first = model.activations(x, layers="mixed4a")  # 3 images: below the threshold
    assert model._runner.pruned == {}
    second = model.activations(x, layers=["mixed4a"])  # 6 in all: pruned from here on
    session = model._runner.pruned[("mixed4a",)]
    assert [output.name for output in session.get_outputs()] == ["mixed4a"]
    third = model.activations(x, layers="mixed4a")
    for result in (first, second, third):
        np.testing.assert_array_equal(result["mixed4a"], expected)


def test_sets_that_need_most_of_the_network_keep_the_full_session(
    replica_model_path, eager_pruning
):
    model = load_model(replica_model_path, providers=CPU)
    model.activations(images(1), layers=list(model.layers))  # only the class head left out
    assert model._runner.pruned == {tuple(sorted(model.layers)): None}


def test_at_most_max_pruned_sets(replica_model_path, eager_pruning):
    model = load_model(replica_model_path, providers=CPU)
    names = list(model.layers)[: _runner.MAX_PRUNED + 2]
    for name in names:
        model.activations(images(1), layers=name)
    assert list(model._runner.pruned) == [(name,) for name in names[: _runner.MAX_PRUNED]]


def test_threads_share_one_pruned_session(replica_model_path, eager_pruning):
    model = load_model(replica_model_path, providers=CPU)
    x = images(2, seed=2)
    expected = load_model(replica_model_path, providers=CPU)._session.run(
        ["mixed3a"], {"image": x}
    )[0]
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(model.activations(x, layers="mixed3a")["mixed3a"])

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6 and list(model._runner.pruned) == [("mixed3a",)]
    for result in results:
        np.testing.assert_array_equal(result, expected)
