"""The switch that turns the speedups off (_runner.py): plain runs, the same values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from semdict_onnx import _runner, load_model
from semdict_onnx.errors import OptionError

CPU = ["CPUExecutionProvider"]


def images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 224, 224, 3), dtype=np.float32)


def test_without_speedups_every_batch_is_one_plain_run_with_the_same_values(
    replica_model_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(_runner, "PRUNE_AFTER_IMAGES", 1)  # the speedups would start at once
    plain = load_model(replica_model_path, providers=CPU, speedups=False)
    fast = load_model(replica_model_path, providers=CPU)
    assert (plain.speedups, fast.speedups) == (False, True)
    assert repr(plain).endswith("; speedups off>") and "speedups" not in repr(fast)
    session = ort.InferenceSession(str(replica_model_path), providers=CPU)
    batch = images(4, seed=3)
    expected = session.run(["mixed3b"], {"image": batch})[0]
    for _ in range(2):
        got_plain = plain.activations(batch, layers="mixed3b")["mixed3b"]
        got_fast = fast.activations(batch, layers="mixed3b")["mixed3b"]
        np.testing.assert_array_equal(got_plain, expected)
        np.testing.assert_allclose(got_fast, expected, rtol=1e-5, atol=1e-5)
    assert plain._runner.pruned == {} and plain._runner.twins == {}
    assert fast._runner.pruned != {}, "the fast model should have used a pruned session"


@pytest.mark.parametrize(
    ("value", "wanted"), [("0", False), ("off", False), ("1", True), ("True", True)]
)
def test_the_environment_turns_them_off_or_on(
    replica_model_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, wanted: bool
):
    monkeypatch.setenv(_runner.SPEEDUPS_ENV, value)
    assert load_model(replica_model_path, providers=CPU).speedups is wanted
    # An explicit argument wins over the environment.
    assert load_model(replica_model_path, providers=CPU, speedups=not wanted).speedups is (
        not wanted
    )


def test_an_unclear_environment_value_is_refused(
    replica_model_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(_runner.SPEEDUPS_ENV, "maybe")
    with pytest.raises(OptionError, match="SEMDICT_ONNX_SPEEDUPS='maybe' is neither on nor off"):
        load_model(replica_model_path, providers=CPU)
