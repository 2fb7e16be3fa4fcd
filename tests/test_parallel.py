"""CPU batches run as one-thread runs per core (semdict_onnx/_parallel.py), on the replica.

The number of cores is set to 3 so that batches split into parallel rounds and a rest on
any machine; every result is checked against a plain ONNX Runtime session on the same file.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from semdict_onnx import _parallel as parallel
from semdict_onnx import load_model
from semdict_onnx._model import Model

CLASS_OUTPUT = "softmax2"


@pytest.fixture(scope="module")
def three_core_model(replica_model_path: Path) -> Model:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parallel, "usable_cores", lambda: 3)
        return load_model(replica_model_path, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def plain_session(replica_model_path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(replica_model_path), providers=["CPUExecutionProvider"])


def images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 224, 224, 3), dtype=np.float32)


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal but for float rounding (a kernel's summation order may follow the batch size)."""
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("count", [7, 3, 2, 1])
def test_batches_split_over_cores_match_one_plain_run(three_core_model, plain_session, count):
    assert three_core_model._runner._parallel.workers == 3
    batch = images(count, seed=count)
    names = [*three_core_model.info.layer_names, CLASS_OUTPUT]
    expected = plain_session.run(names, {"image": batch})
    for _ in range(2):  # the first call learns the output shapes, the second does not
        got = three_core_model.activations(batch, layers=names)
        assert list(got) == names
        for name, value in zip(names, expected, strict=True):
            assert got[name].shape == value.shape and got[name].flags.c_contiguous
            assert_same(got[name], value)


def test_rounds_go_to_a_one_thread_twin_and_single_images_do_not(replica_model_path):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parallel, "usable_cores", lambda: 2)
        model = load_model(replica_model_path, providers=["CPUExecutionProvider"])
    model.activations(images(1, seed=1), layers="mixed4e")
    assert model._runner.twins == {}, "a single image must not build the twin session"
    model.activations(images(2, seed=2), layers="mixed4e")
    assert len(model._runner.twins) == 1


def test_pruned_sessions_get_their_own_twin(three_core_model, plain_session):
    # mixed3a asked for often enough gets a pruned session (model.py), which then runs the
    # rounds on a pruned one-thread twin: the values must stay the full network's.
    batch = images(12, seed=5)
    expected = plain_session.run(["mixed3a"], {"image": batch})[0]
    for _ in range(4):
        got = three_core_model.activations(batch, layers="mixed3a", batch_size=6)
        assert_same(got["mixed3a"], expected)
    pruned = three_core_model._runner.pruned[("mixed3a",)]
    assert pruned is not None and id(pruned) in three_core_model._runner.twins


def test_concurrent_callers_each_get_their_own_images(three_core_model, plain_session):
    batches = [images(4, seed=20 + index) for index in range(3)]
    expected = [plain_session.run(["mixed4b"], {"image": b})[0] for b in batches]
    results: dict[int, np.ndarray] = {}

    def work(index: int) -> None:
        results[index] = three_core_model.activations(batches[index], layers="mixed4b")["mixed4b"]

    threads = [threading.Thread(target=work, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index in range(3):
        assert_same(results[index], expected[index])


def test_results_the_caller_keeps_are_never_overwritten_by_later_calls(three_core_model):
    # Outputs of parallel runs come from an arena that reuses memory the caller let go of.
    first = three_core_model.activations(images(3, seed=40), layers="mixed4c")["mixed4c"]
    kept = first.copy()
    for seed in range(41, 44):
        three_core_model.activations(images(3, seed=seed), layers="mixed4c")
    np.testing.assert_array_equal(first, kept)
