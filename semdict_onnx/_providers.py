"""ONNX Runtime sessions: which execution provider runs a model, and the session options.

Order of choice: an explicit `providers` list is honoured (and every provider in it must
really start, else ProviderError); otherwise CUDA when this onnxruntime build has it and
its libraries load, else CPU. The CUDA libraries are probed *before* asking onnxruntime,
because onnxruntime-gpu prints red error lines and silently falls back to CPU when they are
missing. The probe first has `onnxruntime.preload_dlls()` load the libraries shipped in
NVIDIA's pip wheels (nvidia-*), which onnxruntime would not find on its own, then asks the
system loader (ctypes) for each library by name, to name the ones that are missing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.metadata
import io
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from .errors import ProviderError, ProviderWarning

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# Providers that run on CUDA and so need its libraries.
CUDA_BASED = (CUDA, "TensorrtExecutionProvider", "NvTensorRTRTXExecutionProvider")
# onnxruntime distributions that install the same `onnxruntime` module.
RUNTIME_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-qnn",
)
CUDA_INSTALL_HINT = (
    "install them with `pip install onnxruntime-gpu[cuda,cudnn]` (or the nvidia-* wheels, "
    "e.g. nvidia-cublas, nvidia-cuda-runtime, nvidia-curand, nvidia-cudnn), or a CUDA toolkit "
    "and cuDNN matching this onnxruntime build; see "
    "https://onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html#requirements"
)
# cuDNN's major version required by every onnxruntime-gpu release built for CUDA 12 and 13.
CUDNN_MAJOR = "9"
# CUDA provider options set unless the caller's own say otherwise. TF32 off: on Ampere and
# newer GPUs, convolutions then keep full float32 and match TensorFlow as the parity tests
# demand; ("CUDAExecutionProvider", {"use_tf32": "1"}) trades that for speed.
CUDA_DEFAULT_OPTIONS = {"use_tf32": "0"}

# What ONNX Runtime raises for a file it cannot load as a model.
LOAD_ERRORS = (
    ort_errors.Fail,
    ort_errors.InvalidArgument,
    ort_errors.InvalidGraph,
    ort_errors.InvalidProtobuf,
    ort_errors.NoModel,
    ort_errors.NoSuchFile,
    ort_errors.NotImplemented,
    ort_errors.RuntimeException,
)

ProviderSpec = str | tuple[str, dict[str, Any]]


def session_options() -> ort.SessionOptions:
    """The session options every model uses: full graph optimization, quiet logs, no idle spin."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Pool threads stop spinning when a run ends (they still spin within one): without this
    # they burn a core for ~40 ms after every call, which slows whatever runs next, such as
    # another session of the same model (_runner.py's pruned ones). Same speed otherwise.
    options.add_session_config_entry("session.force_spinning_stop", "1")
    # 3 = errors only: no warnings about nodes placed on CPU by a GPU provider.
    options.log_severity_level = 3
    return options


def cuda_library_names() -> list[str]:
    """The shared libraries this onnxruntime build's CUDA provider needs, driver last."""
    major = (getattr(ort, "cuda_version", "") or "12").split(".")[0]
    if sys.platform == "win32":
        return [
            f"cudart64_{major}.dll",
            f"cublasLt64_{major}.dll",
            f"cublas64_{major}.dll",
            "curand64_10.dll",
            f"cudnn64_{CUDNN_MAJOR}.dll",
            "nvcuda.dll",
        ]
    return [
        f"libcudart.so.{major}",
        f"libcublasLt.so.{major}",
        f"libcublas.so.{major}",
        "libcurand.so.10",
        f"libcudnn.so.{CUDNN_MAJOR}",
        "libcuda.so.1",
    ]


def preload_wheel_libraries() -> None:
    """Load the CUDA and cuDNN libraries of NVIDIA's pip wheels, where there are any.

    onnxruntime.preload_dlls() (onnxruntime 1.21 and later) does it; it prints a line for
    each library it cannot find, which `cuda_problem` says better, so its output is kept
    quiet. Older onnxruntime builds use the system's libraries only.
    """
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.suppress(OSError, RuntimeError):
            preload()


def _loads(name: str) -> bool:
    """True when the system loader finds library `name` (or has it loaded already)."""
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def missing_cuda_libraries() -> tuple[str, ...]:
    """The CUDA libraries that cannot be loaded here (empty when CUDA can run); cached."""
    if CUDA not in ort.get_available_providers():
        return ()
    preload_wheel_libraries()
    return tuple(name for name in cuda_library_names() if not _loads(name))


def cuda_problem() -> str | None:
    """Why the CUDA provider cannot run here, or None when it can."""
    if CUDA not in ort.get_available_providers():
        return (
            f"this onnxruntime build ({', '.join(installed_runtimes())}) has no CUDA "
            "provider; install onnxruntime-gpu instead (never beside onnxruntime)"
        )
    missing = missing_cuda_libraries()
    if not missing:
        return None
    problem = f"the CUDA provider cannot load {', '.join(missing)}: {CUDA_INSTALL_HINT}"
    driver = cuda_library_names()[-1]
    if driver in missing:
        problem += f". {driver} comes with the NVIDIA driver: without it there is no usable GPU"
    return problem


def installed_runtimes() -> list[str]:
    """The onnxruntime distributions installed here, each as 'name version'."""
    found = []
    for dist in RUNTIME_DISTRIBUTIONS:
        try:
            found.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def warn_if_several_runtimes() -> None:
    """Warn when more than one onnxruntime distribution is installed (one silently wins)."""
    installed = installed_runtimes()
    if len(installed) > 1:
        warnings.warn(
            f"{' and '.join(installed)} are installed side by side; they share one "
            "`onnxruntime` module and whichever was installed last wins, often the CPU-only "
            "one. Keep only one: "
            "`pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu` "
            "(or `onnxruntime` on macOS).",
            ProviderWarning,
            stacklevel=4,
        )


def _provider_name(spec: ProviderSpec) -> str:
    """The provider name of a spec: a name, or a (name, options) pair as onnxruntime takes."""
    return spec if isinstance(spec, str) else spec[0]


def _check_requested(providers: Sequence[ProviderSpec]) -> list[ProviderSpec]:
    """Validate an explicit providers list before onnxruntime sees it."""
    if isinstance(providers, str) or not providers:
        raise ProviderError(
            f"providers must be a non-empty list such as [{CUDA!r}, {CPU!r}], got {providers!r}"
        )
    available = ort.get_available_providers()
    for spec in providers:
        name = _provider_name(spec)
        if name not in ort.get_all_providers():
            raise ProviderError(
                f"unknown execution provider {name!r}; this onnxruntime build offers: "
                f"{', '.join(available)}"
            )
        if name not in available:
            raise ProviderError(
                f"{name} is not in this onnxruntime build ({', '.join(installed_runtimes())}); "
                f"it offers: {', '.join(available)}"
            )
        if name in CUDA_BASED and (problem := cuda_problem()):
            raise ProviderError(f"{name} was asked for but cannot run here: {problem}")
    return list(providers)


def default_providers() -> list[str]:
    """CUDA then CPU when CUDA can run here, else CPU alone; warns when a GPU is left unused."""
    if cuda_problem() is None:
        return [CUDA, CPU]
    missing = missing_cuda_libraries()
    driver = cuda_library_names()[-1]
    if missing and driver not in missing:
        warnings.warn(
            f"an NVIDIA driver is present but the CUDA provider cannot load "
            f"{', '.join(missing)}, so the model runs on the CPU; {CUDA_INSTALL_HINT}",
            ProviderWarning,
            stacklevel=4,
        )
    return [CPU]


def with_default_options(spec: ProviderSpec) -> ProviderSpec:
    """A CUDA spec with CUDA_DEFAULT_OPTIONS under the caller's own options; others as given."""
    if _provider_name(spec) != CUDA:
        return spec
    options = {} if isinstance(spec, str) else dict(spec[1])
    return (CUDA, {**CUDA_DEFAULT_OPTIONS, **options})


def session_like(
    model: bytes | str | os.PathLike[str],
    template: ort.InferenceSession,
    intra_op_threads: int = 0,
    *,
    spinning: bool = True,
) -> ort.InferenceSession:
    """A session on `model` with the providers and provider options `template` runs.

    `intra_op_threads` 0 lets ONNX Runtime choose (one per physical core); `spinning` False
    makes its pool threads sleep instead of spinning while they wait within a run (for a
    machine where other work wants the cores: _cpu_load.py).
    """
    options = template.get_provider_options()
    sess_options = session_options()
    sess_options.intra_op_num_threads = intra_op_threads
    if not spinning:
        sess_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        model if isinstance(model, bytes) else os.fspath(model),
        sess_options=sess_options,
        providers=[(name, options.get(name, {})) for name in template.get_providers()],
        enable_fallback=0,
    )


def create_session(
    model: bytes | str | os.PathLike[str],
    providers: Sequence[ProviderSpec] | None = None,
    intra_op_threads: int = 0,
) -> ort.InferenceSession:
    """An InferenceSession on `model` (a file, or a model's bytes) with the chosen providers,
    checked to really use them. `intra_op_threads` 0 lets ONNX Runtime choose (one per
    physical core)."""
    warn_if_several_runtimes()
    explicit = providers is not None
    chosen = _check_requested(providers) if explicit else default_providers()
    sess_options = session_options()
    sess_options.intra_op_num_threads = intra_op_threads
    session = ort.InferenceSession(
        model if isinstance(model, bytes) else os.fspath(model),
        sess_options=sess_options,
        providers=[with_default_options(spec) for spec in chosen],
        enable_fallback=0,
    )
    running = session.get_providers()
    not_running = [_provider_name(s) for s in chosen if _provider_name(s) not in running]
    if not_running:
        problem = (
            f"{', '.join(not_running)} did not start (onnxruntime runs {', '.join(running)}); "
            "its log lines above say why. For CUDA: " + CUDA_INSTALL_HINT
        )
        if explicit:
            raise ProviderError(problem)
        warnings.warn(problem, ProviderWarning, stacklevel=3)
    return session
