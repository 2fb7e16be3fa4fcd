"""bfloat16, opt-in (load_model(..., precision="bf16"), semdict_onnx/_openvino_runner.py).

Where the processor has AVX-512 BF16 or AMX (OpenVINO's BF16 capability) the option runs end
to end: activations close to float32's, a page that says they were computed in bfloat16 and how
its top-4 channels compare with float32's on that image. Elsewhere, simulated here by forcing
the probe, it warns and runs float32 with a note; without OpenVINO it is a clear error.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from semdict_onnx import _model, _openvino_runner, load_model, semantic_dict
from semdict_onnx.errors import OptionError, ProviderError, ProviderWarning

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "semdict_onnx" / "examples" / "astronaut.jpg"
CPU = ["CPUExecutionProvider"]

bf16_cpu = pytest.mark.skipif(
    not _openvino_runner.cpu_has_bf16(),
    reason="this processor has neither AVX-512 BF16 nor AMX (OpenVINO lists no BF16)",
)


def images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 224, 224, 3), dtype=np.float32)


@bf16_cpu
def test_bf16_runs_end_to_end_near_float32(replica_model_path: Path, tmp_path: Path):
    model = load_model(replica_model_path, precision="bf16")
    exact = load_model(replica_model_path, providers=CPU)
    assert (model.precision, model.provider) == ("bf16", "OpenVINO CPU")
    assert repr(model).endswith("; bfloat16>") and "bfloat16" in model.precision_note
    batch = images(3, seed=1)
    got = model.activations(batch, layers=["mixed3b", "mixed4d", "softmax2"])
    want = exact.activations(batch, layers=["mixed3b", "mixed4d", "softmax2"])
    for name, value in got.items():
        assert value.dtype == np.float32 and value.shape == want[name].shape
        assert not np.array_equal(value, want[name]), "bfloat16 should not give float32's bits"
        scale = float(np.abs(want[name]).max())
        np.testing.assert_allclose(value, want[name], atol=0.05 * scale)
    as_sets, _ = _openvino_runner.top_k_agreement(got["mixed4d"], want["mixed4d"], 4)
    assert as_sets > 0.8, as_sets
    np.testing.assert_array_equal(
        model.float32_activations(batch, "mixed4d")["mixed4d"], want["mixed4d"]
    )
    page = semantic_dict(PHOTO, "mixed4d", model=model).save(tmp_path / "page.html")
    text = page.read_text(encoding="utf-8")
    assert "Activations computed in bfloat16 (OpenVINO), not float32." in text
    assert "of the mixed4d positions keep the same top-4 channels" in text


@bf16_cpu
def test_bf16_serves_several_threads(replica_model_path: Path):
    model = load_model(replica_model_path, precision="bf16")
    batches = [images(1, seed=seed) for seed in range(4)]
    serial = [model.activations(batch, "mixed4a")["mixed4a"] for batch in batches]
    results: dict[int, np.ndarray] = {}

    def work(index: int) -> None:
        results[index] = model.activations(batches[index], "mixed4a")["mixed4a"]

    threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, value in enumerate(serial):
        np.testing.assert_array_equal(results[index], value)


def test_without_bf16_units_it_warns_and_runs_float32(
    replica_model_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setattr(_openvino_runner, "cpu_has_bf16", lambda: False)
    with pytest.warns(ProviderWarning, match="neither AMX nor AVX-512 BF16"):
        model = load_model(replica_model_path, precision="bf16")
    assert model.precision == "float32" and model.provider == "CPUExecutionProvider"
    assert "activations computed in float32" in model.precision_note
    batch = images(2, seed=2)
    plain = load_model(replica_model_path, providers=CPU)
    np.testing.assert_array_equal(
        model.activations(batch, "mixed4d")["mixed4d"],
        plain.activations(batch, "mixed4d")["mixed4d"],
    )
    page = semantic_dict(PHOTO, "mixed4d", model=model).save(tmp_path / "page.html")
    assert "bfloat16 was asked for, but this processor has neither" in page.read_text("utf-8")


def test_without_openvino_it_says_how_to_install_it(
    replica_model_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(_model, "openvino_installed", lambda: False)
    with pytest.raises(ProviderError, match=r"pip install 'semdict_onnx\[bf16\]'"):
        load_model(replica_model_path, precision="bf16")


def test_precision_values_are_checked(replica_model_path: Path):
    with pytest.raises(OptionError, match="precision must be 'float32' or 'bf16', not 'fp16'"):
        load_model(replica_model_path, precision="fp16")
    with pytest.raises(OptionError, match="runs on the CPU through OpenVINO"):
        load_model(replica_model_path, providers=CPU, precision="bf16")


def test_float32_is_the_default_and_says_nothing(replica_model_path: Path):
    model = load_model(replica_model_path, providers=CPU)
    assert model.precision == "float32" and model.precision_note is None
