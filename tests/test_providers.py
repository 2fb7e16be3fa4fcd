"""Execution provider choice on the machine at hand: explicit lists, CUDA probing, quiet CPU."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tiny_model

from semdict_onnx import _providers as providers
from semdict_onnx._model import load_model
from semdict_onnx.errors import ProviderError

REPO = Path(__file__).resolve().parents[1]
CUDA_PROBLEM = providers.cuda_problem()
HAS_CUDA_BUILD = providers.CUDA in ort.get_available_providers()


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model.write_tiny_model(tmp_path_factory.mktemp("providers") / "tiny.onnx")


def run_python(code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter from the repository root, capturing both streams."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(CUDA_PROBLEM is None, reason="CUDA can run here")
def test_asking_for_cuda_where_it_cannot_run_names_the_missing_libraries(tiny_path: Path):
    with pytest.raises(ProviderError) as caught:
        load_model(tiny_path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    message = str(caught.value)
    assert "CUDAExecutionProvider was asked for but cannot run here" in message
    if HAS_CUDA_BUILD:
        missing = providers.missing_cuda_libraries()
        assert missing, "a CUDA build that cannot run CUDA must miss some library"
        assert all(name in message for name in missing)
        assert "pip install onnxruntime-gpu[cuda,cudnn]" in message
    else:
        assert "has no CUDA provider; install onnxruntime-gpu" in message


@pytest.mark.skipif(not HAS_CUDA_BUILD, reason="this onnxruntime build has no CUDA provider")
def test_probe_agrees_with_onnxruntime_and_avoids_its_error_lines(tiny_path: Path):
    # Plain onnxruntime asked for CUDA: the provider it really starts, and what it prints.
    plain = run_python(
        f"""
        import onnxruntime as ort
        session = ort.InferenceSession({str(tiny_path)!r},
            providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
        print(session.get_providers()[0])
        """
    )
    assert plain.returncode == 0, plain.stderr
    assert (plain.stdout.strip() == providers.CUDA) == (CUDA_PROBLEM is None)
    ours = run_python(
        f"""
        import numpy as np
        import semdict_onnx
        model = semdict_onnx.load_model({str(tiny_path)!r})
        model.activations(np.zeros((4, 4, 3), np.uint8))
        print(model.provider)
        """
    )
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.strip() == plain.stdout.strip()
    if CUDA_PROBLEM is not None:
        # onnxruntime logs the failed CUDA load as an error; the default choice must not.
        assert "[E:onnxruntime" in plain.stderr
        assert "[E:onnxruntime" not in ours.stderr
        assert "[W:onnxruntime" not in ours.stderr
        assert "Failed to" not in ours.stderr
        assert "EP Error" not in ours.stdout + ours.stderr


@pytest.mark.skipif(not HAS_CUDA_BUILD, reason="this onnxruntime build has no CUDA provider")
def test_probe_has_onnxruntime_preload_the_wheels_libraries_quietly(monkeypatch, capsys):
    calls = []

    def preload(*args, **kwargs):
        calls.append((args, kwargs))
        print("Failed to load libcublasLt.so.12")  # what preload_dlls prints for a missing one

    monkeypatch.setattr(ort, "preload_dlls", preload)
    missing = providers.missing_cuda_libraries.__wrapped__()  # the uncached probe
    assert calls == [((), {})]
    assert capsys.readouterr().out == ""
    assert set(missing) <= set(providers.cuda_library_names())


def test_without_preload_dlls_the_probe_uses_the_system_libraries(monkeypatch):
    monkeypatch.delattr(ort, "preload_dlls", raising=False)  # onnxruntime before 1.21
    providers.preload_wheel_libraries()
    assert set(providers.missing_cuda_libraries.__wrapped__()) <= set(
        providers.cuda_library_names()
    )


def test_default_choice_runs_on_cuda_only_when_cuda_can_run(tiny_path: Path):
    model = load_model(tiny_path)
    expected = providers.CUDA if CUDA_PROBLEM is None else providers.CPU
    assert model.provider == expected


@pytest.mark.parametrize("spec", ["CPUExecutionProvider", ("CPUExecutionProvider", {})])
def test_explicit_cpu_is_honoured(tiny_path: Path, spec):
    assert load_model(tiny_path, providers=[spec]).provider == providers.CPU


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        (["FastestExecutionProvider"], "unknown execution provider 'FastestExecutionProvider'"),
        (["cpu"], "unknown execution provider 'cpu'; this onnxruntime build offers: "),
        ([], "providers must be a non-empty list"),
        ("CPUExecutionProvider", "providers must be a non-empty list"),
    ],
)
def test_bad_provider_lists_are_errors(tiny_path: Path, requested, message: str):
    with pytest.raises(ProviderError) as caught:
        load_model(tiny_path, providers=requested)
    assert message in str(caught.value)


def test_provider_missing_from_this_build_is_an_error(tiny_path: Path):
    absent = next(p for p in ort.get_all_providers() if p not in ort.get_available_providers())
    with pytest.raises(ProviderError, match=f"{absent} is not in this onnxruntime build"):
        load_model(tiny_path, providers=[absent])


@pytest.mark.skipif(CUDA_PROBLEM is not None, reason="needs a machine where CUDA can run")
def test_cuda_gives_the_same_activations_as_cpu(tiny_path: Path):
    image = np.random.default_rng(0).random((20, 16, 3))
    cpu = load_model(tiny_path, providers=["CPUExecutionProvider"]).activations(image)
    gpu = load_model(tiny_path, providers=["CUDAExecutionProvider"]).activations(image)
    for name in cpu:
        np.testing.assert_allclose(gpu[name], cpu[name], rtol=1e-3, atol=1e-3)


@pytest.mark.skipif(not HAS_CUDA_BUILD, reason="this onnxruntime build has no CUDA provider")
def test_gpu_left_unused_for_want_of_libraries_gets_a_warning(monkeypatch: pytest.MonkeyPatch):
    driver = providers.cuda_library_names()[-1]
    monkeypatch.setattr(providers, "missing_cuda_libraries", lambda: ("libcublas.so.13",))
    with pytest.warns(providers.ProviderWarning, match="driver is present but .* libcublas"):
        assert providers.default_providers() == [providers.CPU]
    # No driver means no GPU: CPU without a word.
    monkeypatch.setattr(providers, "missing_cuda_libraries", lambda: ("libcublas.so.13", driver))
    with warnings.catch_warnings():
        warnings.simplefilter("error", providers.ProviderWarning)
        assert providers.default_providers() == [providers.CPU]


def test_two_onnxruntime_packages_side_by_side_warn(
    tiny_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    installed = providers.installed_runtimes()
    assert len(installed) == 1, f"this environment really has {installed}"
    other = "onnxruntime" if installed[0].startswith("onnxruntime-gpu ") else "onnxruntime-gpu"
    dist_info = tmp_path / f"{other.replace('-', '_')}-9.9.9.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {other}\nVersion: 9.9.9\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(providers.ProviderWarning, match="are installed side by side") as caught:
        load_model(tiny_path)
    assert f"{other} 9.9.9" in str(caught[0].message)
    assert installed[0] in str(caught[0].message)
    assert caught[0].filename == __file__
    assert "Keep only one" in str(caught[0].message)
