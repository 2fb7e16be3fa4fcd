"""Parity of an exported ONNX model with its source TensorFlow graph.

TensorFlow runs a GraphDef (the untouched source, or at other input sizes the source made
size-independent by _convert.variable_size_graphdef) on `255 * x - 117`; ONNX Runtime (CPU)
runs the exported model on `x`. For every exported layer the maximum absolute difference must
stay within `tolerance` times the layer's activation scale (its largest absolute value
under TensorFlow), and the top-k channels, in order, must be identical at every position.

Two channels whose TensorFlow values lie closer together than the engines' measured
difference for that layer are a tie: float32 rounding may order them either way (seen at
about 1 position in 2,000, with gaps of ~1e-7 of the scale), and no exporter can decide
such an order. A position whose top-k differ only by such a swap is counted and reported
as a tie; any other difference fails.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from semdict_onnx._providers import CPU, session_options
from semdict_onnx._ranking import top_k_channels

from ._errors import ParityError
from ._googlenet import INPUT_SIZE, SOURCE_INPUT, to_network_range
from ._tf_env import import_tensorflow

tf = import_tensorflow()

TOLERANCE = 1e-4
TOP_K = 4


def parity_images(
    count: int, seed: int = 0, height: int = INPUT_SIZE, width: int = INPUT_SIZE
) -> np.ndarray:
    """Seeded test images in [0, 1], float32 [count, height, width, 3] (default 224x224).

    They cycle through noise at three grain sizes (32, 8 and 1 pixels), so both smooth and
    busy inputs are covered.
    """
    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        grain = (32, 8, 1)[index % 3]
        cells = rng.uniform(0.0, 1.0, (-(-height // grain), -(-width // grain), 3))
        grains = np.repeat(np.repeat(cells, grain, axis=0), grain, axis=1)
        images.append(grains[:height, :width])
    return np.stack(images).astype(np.float32)


def tensorflow_outputs(
    graph_def: tf.compat.v1.GraphDef, images: np.ndarray, names: list[str]
) -> dict[str, np.ndarray]:
    """The source graph's tensors `names` for `images` in [0, 1], run by TensorFlow."""
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        values = session.run(
            [f"{name}:0" for name in names], {f"{SOURCE_INPUT}:0": to_network_range(images)}
        )
    return dict(zip(names, values, strict=True))


def onnxruntime_outputs(
    model: bytes | str | os.PathLike[str], images: np.ndarray, names: list[str]
) -> dict[str, np.ndarray]:
    """The exported model's outputs `names` for `images` in [0, 1], on the CPU provider.

    A plain session with the runtime's options: the file as written, not the runtime's Model.
    """
    source = model if isinstance(model, bytes) else os.fspath(model)
    session = ort.InferenceSession(source, session_options(), providers=[CPU])
    input_name = session.get_inputs()[0].name
    values = session.run(names, {input_name: images.astype(np.float32)})
    return dict(zip(names, values, strict=True))


@dataclass(frozen=True)
class LayerParity:
    """How closely one layer of the exported model follows TensorFlow."""

    name: str
    shape: tuple[int, ...]
    max_abs_diff: float
    scale: float
    positions: int
    top_k_ties: int
    top_k_mismatches: int

    @property
    def relative_diff(self) -> float:
        """The largest difference as a fraction of the layer's activation scale."""
        return self.max_abs_diff / self.scale if self.scale else float("inf")

    def passes(self, tolerance: float = TOLERANCE) -> bool:
        """Within tolerance, and the same top-k channels everywhere (up to ties)."""
        return self.relative_diff <= tolerance and self.top_k_mismatches == 0


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """[positions, k]: the runtime's top-k channel order at every position of any batch.

    The runtime ranks one image's [rows, cols, channels]; every position here is one row.
    It refuses NaN and infinity, which fail the parity check through the difference instead,
    so those are ranked here as the extreme finite values.
    """
    finite = np.nan_to_num(values.astype(np.float32), nan=np.finfo(np.float32).min)
    channels, _ = top_k_channels(finite.reshape(-1, 1, values.shape[-1]), k)
    return channels.reshape(-1, k)


def compare_layer(
    name: str, reference: np.ndarray, candidate: np.ndarray, k: int = TOP_K
) -> LayerParity:
    """Measure `candidate` (ONNX Runtime) against `reference` (TensorFlow) for one layer."""
    if reference.shape != candidate.shape:
        raise ParityError(
            f"{name}: ONNX Runtime gives shape {candidate.shape}, TensorFlow {reference.shape}"
        )
    flat = reference.reshape(-1, reference.shape[-1])
    ref_top = _top_k(reference, k)
    cand_top = _top_k(candidate, k)
    max_abs_diff = float(np.max(np.abs(reference.astype(np.float64) - candidate)))
    differs = np.any(ref_top != cand_top, axis=-1)
    # The candidate's picks, valued by TensorFlow, against TensorFlow's own top k.
    gaps = np.abs(
        np.take_along_axis(flat, cand_top, axis=-1) - np.take_along_axis(flat, ref_top, axis=-1)
    )
    real = differs & np.any(gaps > 2 * max_abs_diff, axis=-1)
    return LayerParity(
        name=name,
        shape=tuple(reference.shape),
        max_abs_diff=max_abs_diff,
        scale=float(np.max(np.abs(reference))),
        positions=ref_top.shape[0],
        top_k_ties=int((differs & ~real).sum()),
        top_k_mismatches=int(real.sum()),
    )


def measure_parity(
    graph_def: tf.compat.v1.GraphDef,
    model: bytes | str | os.PathLike[str],
    images: np.ndarray,
    names: list[str],
) -> list[LayerParity]:
    """Run both engines on `images` and compare every layer in `names`."""
    reference = tensorflow_outputs(graph_def, images, names)
    candidate = onnxruntime_outputs(model, images, names)
    return [compare_layer(name, reference[name], candidate[name]) for name in names]


def format_parity(results: list[LayerParity], tolerance: float = TOLERANCE) -> str:
    """A table of the parity numbers, one line per layer."""
    lines = [
        f"{'layer':10s} {'max |diff|':>11s} {'scale':>9s} {'diff/scale':>10s}  "
        f"top-{TOP_K} same/positions (ties)"
    ]
    for r in results:
        same = r.positions - r.top_k_mismatches - r.top_k_ties
        lines.append(
            f"{r.name:10s} {r.max_abs_diff:11.3g} {r.scale:9.4g} {r.relative_diff:10.2e}  "
            f"{same}/{r.positions} ({r.top_k_ties})  {'ok' if r.passes(tolerance) else 'FAIL'}"
        )
    return "\n".join(lines)


def check_parity(
    graph_def: tf.compat.v1.GraphDef,
    model: bytes | str | os.PathLike[str],
    images: np.ndarray,
    names: list[str],
    tolerance: float = TOLERANCE,
) -> list[LayerParity]:
    """`measure_parity`, raising ParityError with the table when any layer fails."""
    results = measure_parity(graph_def, model, images, names)
    if not all(r.passes(tolerance) for r in results):
        raise ParityError(
            "ONNX Runtime does not match TensorFlow on the exported model:\n"
            f"{format_parity(results, tolerance)}\n"
            "Nothing was written. Check that onnxruntime, tensorflow and tf2onnx are the "
            "versions pyproject.toml names, then run the export again."
        )
    return results
