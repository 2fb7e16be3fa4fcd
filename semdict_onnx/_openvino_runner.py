"""bfloat16 inference, opt-in: `load_model(..., precision="bf16")` runs the model through OpenVINO.

ONNX Runtime's CPU provider has no bfloat16 convolutions on x86 processors; OpenVINO's CPU
plugin runs the same ONNX file with bfloat16 arithmetic (float32 inputs and outputs) on
processors with AVX-512 BF16 or AMX units, about twice as fast as float32 (docs/performance.md).
The top channels of a position can differ from float32's, so it is never the default, and a
page made from such a model says so (`Model.precision_note`).

`bf16_problem()` says why bfloat16 cannot run here: OpenVINO is not installed (an error with
the install hint: `pip install 'semdict_onnx[bf16]'`), or the processor has neither unit
(then load_model warns and runs float32 on ONNX Runtime as usual). `OpenVINORunner` has the
interface of _runner.SessionRunner (`run(names, batch)`, `speedups`), so the Model uses it
unchanged; it compiles the model once, with its open batch, height and width, and gives each
calling thread its own infer request, so one model may still serve several threads at once.
"""

from __future__ import annotations

import functools
import importlib.util
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OptionError

FLOAT32 = "float32"
BF16 = "bf16"
PRECISIONS = (FLOAT32, BF16)
INSTALL_HINT = (
    "install OpenVINO with `pip install 'semdict_onnx[bf16]'` (or `pip install openvino`)"
)
# /proc/cpuinfo flags of the units OpenVINO's bfloat16 kernels run on.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def openvino_installed() -> bool:
    """Whether the openvino package can be imported."""
    return importlib.util.find_spec("openvino") is not None


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bfloat16 natively here (its BF16 capability); cached."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def bf16_problem() -> str | None:
    """Why bfloat16 cannot run here, or None when it can (OpenVINO must be installed)."""
    if not cpu_has_bf16():
        return (
            "this processor has neither AMX nor AVX-512 BF16 units (OpenVINO's CPU plugin "
            f"lists no BF16 capability; the bfloat16 flags are {', '.join(BF16_FLAGS)} in "
            "/proc/cpuinfo)"
        )
    return None


def check_precision(precision: object) -> str:
    """`precision` if it is one of PRECISIONS, else an OptionError saying which are."""
    if precision not in PRECISIONS:
        raise OptionError(
            f"precision must be {' or '.join(repr(p) for p in PRECISIONS)}, not {precision!r}: "
            "'float32' (the default, ONNX Runtime) or 'bf16' (bfloat16 through OpenVINO, on "
            "processors with AVX-512 BF16 or AMX)"
        )
    return str(precision)


def precision_note() -> str:
    """What a model loaded in bfloat16 says about its activations."""
    return (
        "Activations computed in bfloat16 (OpenVINO), not float32: at some positions the top "
        "channels differ from float32's (docs/performance.md gives the agreement measured)."
    )


def top_k_agreement(candidate: np.ndarray, reference: np.ndarray, k: int) -> tuple[float, float]:
    """Shares of positions whose top-k channels agree with the reference's: as sets; in order.

    Both are [..., channels]; ties rank the lower channel first, as _ranking.top_k_channels.
    """
    flat_ref = reference.reshape(-1, reference.shape[-1])
    flat_cand = candidate.reshape(-1, candidate.shape[-1])
    top_ref = np.argsort(-flat_ref, axis=1, kind="stable")[:, :k]
    top_cand = np.argsort(-flat_cand, axis=1, kind="stable")[:, :k]
    in_order = float(np.all(top_ref == top_cand, axis=1).mean())
    as_sets = float(np.all(np.sort(top_ref, axis=1) == np.sort(top_cand, axis=1), axis=1).mean())
    return as_sets, in_order


def page_note(candidate: np.ndarray, reference: np.ndarray, k: int, layer: str) -> str:
    """A page's note on bfloat16 activations: how its top-k compare with float32's there."""
    as_sets, in_order = top_k_agreement(candidate, reference, k)
    return (
        f"Activations computed in bfloat16 (OpenVINO), not float32. Against float32 on this "
        f"image, {as_sets:.1%} of the {layer} positions keep the same top-{k} channels "
        f"({in_order:.1%} in the same order)."
    )


class OpenVINORunner:
    """Runs output sets of an ONNX model through OpenVINO's CPU plugin in bfloat16."""

    speedups = False  # none of _runner.py's: OpenVINO schedules its own threads

    def __init__(self, source: Path | bytes) -> None:
        """`source`: the ONNX file, or a network prepared in memory (its bytes)."""
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY"}
        if isinstance(source, bytes):
            with tempfile.TemporaryDirectory(prefix="semdict-bf16-") as folder:
                path = Path(folder) / "prepared.onnx"
                path.write_bytes(source)
                network = core.read_model(str(path))
        else:
            network = core.read_model(str(source))
        self.compiled = core.compile_model(network, "CPU", config)
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self._outputs = {
            name: output for output in self.compiled.outputs for name in output.get_names()
        }
        self._local = threading.local()

    def _request(self) -> Any:
        """This thread's infer request (requests are not thread-safe; the compiled model is)."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request

    def run(self, names: list[str], batch: np.ndarray) -> list[np.ndarray]:
        """The outputs `names` computed on `batch`, in that order, as float32 arrays."""
        result = self._request().infer({0: np.ascontiguousarray(batch, np.float32)})
        return [np.array(result[self._outputs[name]], np.float32) for name in names]
