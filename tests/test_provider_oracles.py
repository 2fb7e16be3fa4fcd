"""The execution provider choice on machines set up to force each answer, expected literally.

The other provider tests expect whatever `providers.cuda_problem()` says about this machine.
Here the machine is made to order: onnxruntime reports a CUDA build (or not) and CUDA 12, the
system loader finds only the libraries named (every other bare name fails to load, as on a
machine without them), and NVIDIA's pip wheels are a real folder on sys.path holding real
shared objects (copies of libm) or broken files, which the probe really loads. The answers
(which libraries are missing, the problem text, the providers, the warning) are written out.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import onnxruntime as ort
import pytest
from tiny_model import write_tiny_model

from semdict_onnx import _providers as providers
from semdict_onnx._model import load_model
from semdict_onnx.errors import ProviderError, ProviderWarning

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="the CUDA library names and wheel layout here are Linux's"
)

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
CUDA_12_LIBRARIES = (
    "libcudart.so.12",
    "libcublasLt.so.12",
    "libcublas.so.12",
    "libcurand.so.10",
    "libcudnn.so.9",
    "libcuda.so.1",
)
# Where each library lives among NVIDIA's pip wheels (site-packages/nvidia/<wheel>/lib).
WHEEL_OF = {
    "libcudart.so.12": "cuda_runtime",
    "libcublasLt.so.12": "cublas",
    "libcublas.so.12": "cublas",
    "libcurand.so.10": "curand",
    "libcudnn.so.9": "cudnn",
}
REAL_CDLL = ctypes.CDLL


def loaded_libm() -> str:
    """The path of the C maths library this process has loaded: a real, loadable object."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith("/libm.so.6"):
            return line.split()[-1]
    pytest.fail("libm.so.6 is not mapped into this Python process")


Machine = Callable[..., None]


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Machine]:
    """Set up the machine: `machine(wheels={name: "good" | "broken"}, system={names}, cuda=...)`.

    The probe's cached answer is cleared before and after, so no other test sees this machine.
    """
    libm = loaded_libm()

    def setup(
        wheels: dict[str, str] | None = None, system: Iterable[str] = (), cuda: bool = True
    ) -> None:
        site = tmp_path / "site"
        for name, state in (wheels or {}).items():
            folder = site / "nvidia" / WHEEL_OF[name] / "lib"
            folder.mkdir(parents=True, exist_ok=True)
            if state == "good":
                shutil.copyfile(libm, folder / name)
            else:
                (folder / name).write_bytes(b"this is not a shared object\n")
        present = set(system)

        def cdll(name, *args, **kwargs):
            text = os.fspath(name)
            if "/" in text:  # a file: really loaded, so a broken one really fails
                library = REAL_CDLL(text, *args, **kwargs)
                present.add(Path(text).name)  # the loader now knows it by its name
                return library
            if text in present:
                return REAL_CDLL(libm, *args, **kwargs)
            raise OSError(f"{text}: cannot open shared object file: No such file or directory")

        built = [CUDA, CPU] if cuda else [CPU]
        monkeypatch.setattr(ctypes, "CDLL", cdll)
        monkeypatch.setattr(ort, "get_available_providers", lambda: list(built))
        monkeypatch.setattr(ort, "cuda_version", "12.8", raising=False)
        # onnxruntime.preload_dlls() looks for NVIDIA's wheels beside the onnxruntime package.
        monkeypatch.setattr(ort, "__file__", str(site / "onnxruntime" / "__init__.py"))
        providers.missing_cuda_libraries.cache_clear()

    yield setup
    providers.missing_cuda_libraries.cache_clear()


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


def test_no_cuda_library_loads_so_the_cpu_runs_without_a_word(machine, tiny_path):
    machine()
    assert providers.cuda_library_names() == list(CUDA_12_LIBRARIES)
    assert providers.missing_cuda_libraries() == CUDA_12_LIBRARIES
    assert providers.cuda_problem() == (
        "the CUDA provider cannot load libcudart.so.12, libcublasLt.so.12, libcublas.so.12, "
        f"libcurand.so.10, libcudnn.so.9, libcuda.so.1: {providers.CUDA_INSTALL_HINT}. "
        "libcuda.so.1 comes with the NVIDIA driver: without it there is no usable GPU"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no driver, no GPU: nothing to warn about
        assert providers.default_providers() == [CPU]
        assert load_model(tiny_path).provider == CPU
    with pytest.raises(ProviderError) as caught:
        load_model(tiny_path, providers=[CUDA, CPU])
    assert str(caught.value).startswith(
        "CUDAExecutionProvider was asked for but cannot run here: the CUDA provider cannot "
        "load libcudart.so.12, libcublasLt.so.12, libcublas.so.12, libcurand.so.10, "
        "libcudnn.so.9, libcuda.so.1: install them with `pip install onnxruntime-gpu[cuda,cudnn]`"
    )


def test_a_broken_cudnn_wheel_leaves_the_gpu_unused_with_a_warning(machine, tiny_path):
    wheels = {name: "good" for name in WHEEL_OF} | {"libcudnn.so.9": "broken"}
    machine(wheels=wheels, system={"libcuda.so.1"})
    assert providers.missing_cuda_libraries() == ("libcudnn.so.9",)
    assert providers.cuda_problem() == (
        f"the CUDA provider cannot load libcudnn.so.9: {providers.CUDA_INSTALL_HINT}"
    )
    with pytest.warns(ProviderWarning) as caught:
        assert providers.default_providers() == [CPU]
    assert len(caught) == 1
    assert str(caught[0].message).startswith(
        "an NVIDIA driver is present but the CUDA provider cannot load libcudnn.so.9, so the "
        "model runs on the CPU; install them with"
    )
    with pytest.warns(ProviderWarning, match="cannot load libcudnn.so.9"):
        assert load_model(tiny_path).provider == CPU


def test_cudnn_on_the_system_instead_of_in_a_wheel_is_found_too(machine):
    wheels = {name: "good" for name in WHEEL_OF if name != "libcudnn.so.9"}
    machine(wheels=wheels, system={"libcudnn.so.9", "libcuda.so.1"})
    assert providers.missing_cuda_libraries() == ()
    assert providers.cuda_problem() is None


def test_every_library_loading_puts_cuda_first(machine):
    machine(wheels={name: "good" for name in WHEEL_OF}, system={"libcuda.so.1"})
    assert providers.missing_cuda_libraries() == ()
    assert providers.cuda_problem() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert providers.default_providers() == [CUDA, CPU]


def test_a_build_without_cuda_runs_on_the_cpu_whatever_libraries_load(machine, tiny_path):
    machine(wheels={name: "good" for name in WHEEL_OF}, system={"libcuda.so.1"}, cuda=False)
    assert providers.missing_cuda_libraries() == ()
    problem = providers.cuda_problem()
    assert re.fullmatch(
        r"this onnxruntime build \(onnxruntime(-gpu)? [0-9][^)]*\) has no CUDA provider; "
        r"install onnxruntime-gpu instead \(never beside onnxruntime\)",
        str(problem),
    ), problem
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert providers.default_providers() == [CPU]
        assert load_model(tiny_path).provider == CPU
    with pytest.raises(ProviderError, match="CUDAExecutionProvider is not in this onnxruntime"):
        load_model(tiny_path, providers=[CUDA])
