"""One side of benchmarks/bench.py, alone in its own process so thread pools never mix.

    python benchmarks/bench_worker.py tensorflow --graphdef PB --images NPY --layer mixed4d
    python benchmarks/bench_worker.py runtime --model ONNX --images NPY --image-file JPG
    python benchmarks/bench_worker.py openvino --model ONNX --images NPY --layers L1,L2
    python benchmarks/bench_worker.py bf16 --model ONNX --images NPY
    python benchmarks/bench_worker.py variant --model ONNX --images NPY --spec JSON
    python benchmarks/bench_worker.py matmul --size 2048

It sets its cases up, warms each one, prints one JSON line {"ready": true, "info": {...}},
then answers each request line {"case": NAME, "iterations": N} on stdin with one JSON line
{"case": NAME, "seconds": [...]}: the wall time of each call. End of input ends it. The
parent alternates its requests between the sides, so a busy moment on the machine falls on
both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

WARMUP_CALLS = 2
# The network's pixel values: 255 * x - 117 for an image x in [0, 1] (the facts file).
NETWORK_SCALE, NETWORK_OFFSET = 255.0, -117.0

Case = Callable[[], object]


def tensorflow_cases(
    graphdef: Path, images: np.ndarray, layer: str, layers: list[str]
) -> tuple[dict[str, Case], dict[str, Any]]:
    """The original notebook's pattern, and a graph imported once with a cached session."""
    from semdict_onnx.export._tf_env import import_tensorflow

    tf = import_tensorflow()
    graph_def = tf.compat.v1.GraphDef.FromString(graphdef.read_bytes())
    height, width = images.shape[1:3]

    def import_scaled(shape: list[int | None], names: list[str]) -> tuple[Any, list[Any]]:
        """A placeholder in [0, 1], scaled to the network's range and fed to a fresh import."""
        image = tf.compat.v1.placeholder(tf.float32, shape)
        scaled = image * NETWORK_SCALE + NETWORK_OFFSET
        if len(shape) == 3:
            scaled = tf.expand_dims(scaled, 0)
        outputs = tf.import_graph_def(
            graph_def, input_map={"input:0": scaled}, return_elements=[f"{n}:0" for n in names]
        )
        return image, outputs

    def notebook_call() -> object:
        """As the notebook's googlenet_semantic_dict(): new graph, import, session, eval."""
        with tf.Graph().as_default(), tf.compat.v1.Session() as session:
            image, (output,) = import_scaled([height, width, 3], [layer])
            return session.run(output, {image: images[0]})

    graph = tf.Graph()
    with graph.as_default():
        cached_input, cached_outputs = import_scaled([None, height, width, 3], layers)
    session = tf.compat.v1.Session(graph=graph)
    one, many = images[:1], images
    cases = {
        "tf_notebook": notebook_call,
        "tf_b1": lambda: session.run(cached_outputs, {cached_input: one}),
        "tf_bN": lambda: session.run(cached_outputs, {cached_input: many}),
    }
    return cases, {"tensorflow": tf.__version__}


def runtime_cases(
    model_path: Path, images: np.ndarray, image_file: Path, layer: str
) -> tuple[dict[str, Case], dict[str, Any]]:
    """This library: activations at batch 1 and N, for one photo, and semantic_dict to HTML."""
    import onnxruntime as ort

    from semdict_onnx import load_model, semantic_dict
    from semdict_onnx._providers import session_options

    model = load_model(model_path)
    one, many = images[:1], images
    # What semantic_dict() asks the model for: its layer, and the classes when it has labels.
    asked = [layer] + (
        [model.info.class_output] if model.info.class_output and model.labels else []
    )
    cases = {
        "ort_b1": lambda: model.activations(one),
        "ort_bN": lambda: model.activations(many, batch_size=len(many)),
        "ort_photo": lambda: model.activations(image_file, layers=asked),
        "semdict": lambda: semantic_dict(image_file, layer, model=model).to_html(),
    }
    options = session_options()
    info = {
        "onnxruntime": ort.__version__,
        "provider": model.provider,
        "options": (
            f"{options.graph_optimization_level.name}, {options.execution_mode.name}, "
            f"intra-op threads {options.intra_op_num_threads or 'default (one per core)'}"
        ),
        "replica": model.is_replica,
        "layers": list(model.layers),
        "asked": asked,
    }
    return cases, info


def openvino_cases(
    model_path: Path, images: np.ndarray, layers: list[str]
) -> tuple[dict[str, Case], dict[str, Any]]:
    """OpenVINO float32 on the same ONNX file, compiled for each batch size, as its docs advise.

    Batch 1 and the whole batch in one request use the LATENCY hint (one request on all
    cores); "ov_bN_streams" runs the batch as one-image requests on the THROUGHPUT hint's
    streams (OpenVINO's own way of giving each core whole images, like _parallel.py).
    """
    import openvino as ov

    core = ov.Core()
    one, many = images[:1], images

    def compiled(batch: int, hint: str) -> Any:
        model = core.read_model(str(model_path))
        model.reshape({model.inputs[0].get_any_name(): [batch, *images.shape[1:]]})
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": hint}
        return core.compile_model(model, "CPU", config)

    def outputs_of(model: Any) -> list[Any]:
        return [model.output(name) for name in layers]

    latency_one = compiled(1, "LATENCY")
    latency_many = compiled(len(many), "LATENCY")
    streams = compiled(1, "THROUGHPUT")
    request_one, request_many = (
        latency_one.create_infer_request(),
        latency_many.create_infer_request(),
    )
    wanted_one, wanted_many = outputs_of(latency_one), outputs_of(latency_many)
    queue = ov.AsyncInferQueue(streams, streams.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    wanted_streams = outputs_of(streams)
    kept: dict[int, list[np.ndarray]] = {}

    def keep(request: Any, index: int) -> None:  # copied out, as infer() copies its outputs
        kept[index] = [request.get_tensor(output).data.copy() for output in wanted_streams]

    queue.set_callback(keep)

    def per_image_streams() -> dict[int, list[np.ndarray]]:
        kept.clear()
        for index, image in enumerate(many):
            queue.start_async({0: image[None]}, index)
        queue.wait_all()
        return kept

    def infer(request: Any, batch: np.ndarray, wanted: list[Any]) -> list[np.ndarray]:
        result = request.infer({0: batch})
        return [result[output] for output in wanted]

    cases = {
        "ov_b1": lambda: infer(request_one, one, wanted_one),
        "ov_bN": lambda: infer(request_many, many, wanted_many),
        "ov_bN_streams": per_image_streams,
    }
    info = {
        "openvino": ov.__version__,
        "streams": streams.get_property("NUM_STREAMS"),
        "precision": latency_one.get_property("INFERENCE_PRECISION_HINT").to_string(),
    }
    return cases, info


def bf16_cases(model_path: Path, images: np.ndarray) -> tuple[dict[str, Case], dict[str, Any]]:
    """This library with precision="bf16" (OpenVINO bfloat16): batch 1 and N, all layers."""
    from semdict_onnx import load_model

    model = load_model(model_path, precision="bf16")
    one, many = images[:1], images
    cases = {
        "bf16_b1": lambda: model.activations(one),
        "bf16_bN": lambda: model.activations(many, batch_size=len(many)),
    }
    return cases, {"precision": model.precision}


def variant_cases(
    model_path: Path, images: np.ndarray, spec: dict[str, Any]
) -> tuple[dict[str, Case], dict[str, Any]]:
    """Plain ONNX Runtime on one model file with the runtime's options changed as `spec` says.

    spec keys: "outputs" (names to compute), "config" (session config entries),
    "intra_op_threads", "parallel" (bool), "level" (a GraphOptimizationLevel name),
    "io_binding" (bool), "per_core" (bool: the batch as one-thread runs, one per core, as
    semdict_onnx/_parallel.py runs CPU batches; "intra_op_threads" is then that of the rest).
    """
    import onnxruntime as ort

    from semdict_onnx._providers import session_options

    options = session_options()
    for key, value in spec.get("config", {}).items():
        options.add_session_config_entry(key, str(value))
    if "intra_op_threads" in spec:
        options.intra_op_num_threads = spec["intra_op_threads"]
    if spec.get("parallel"):
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        options.inter_op_num_threads = 2
    if "level" in spec:
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, spec["level"])
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    names = spec["outputs"]
    input_name = session.get_inputs()[0].name
    feed = {input_name: images}
    if spec.get("per_core"):
        from semdict_onnx._parallel import ParallelRunner, usable_cores

        options.intra_op_num_threads = 1
        twin = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        runner = ParallelRunner(usable_cores())
        return {"run": lambda: runner.run(twin, session, names, input_name, images)}, {}
    if spec.get("io_binding"):
        binding = session.io_binding()
        binding.bind_cpu_input(input_name, images)
        for name in names:
            binding.bind_output(name, "cpu")
        return {"run": lambda: session.run_with_iobinding(binding)}, {}
    return {"run": lambda: session.run(names, feed)}, {}


def matmul_cases(size: int) -> tuple[dict[str, Case], dict[str, Any]]:
    """A float32 matrix multiply of two size x size matrices, on numpy's BLAS."""
    from threadpoolctl import threadpool_info

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty_like(a)
    pools = [
        {key: pool.get(key) for key in ("internal_api", "architecture", "num_threads", "version")}
        for pool in threadpool_info()
        if pool.get("user_api") == "blas"
    ]
    info = {
        "numpy": np.__version__,
        "blas": pools,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "flop_per_call": 2 * size**3,
    }
    return {"matmul": lambda: np.matmul(a, b, out=out)}, info


def serve(cases: dict[str, Case], info: dict[str, Any]) -> None:
    """Warm every case, say ready, then time the requested calls until stdin closes."""
    for case in cases.values():
        for _ in range(WARMUP_CALLS):
            case()
    print(json.dumps({"ready": True, "info": info}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        case = cases[request["case"]]
        seconds = []
        for _ in range(request["iterations"]):
            start = time.perf_counter()
            case()
            seconds.append(time.perf_counter() - start)
        print(json.dumps({"case": request["case"], "seconds": seconds}), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Set up one side's cases and serve timing requests."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "side", choices=("tensorflow", "runtime", "openvino", "bf16", "variant", "matmul")
    )
    parser.add_argument("--graphdef", type=Path)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--images", type=Path, help=".npy float32 [N, H, W, 3] in [0, 1]")
    parser.add_argument("--image-file", type=Path, help="an image file for semantic_dict")
    parser.add_argument("--layer", default="mixed4d")
    parser.add_argument("--layers", default="", help="comma-separated layers (TF, OpenVINO)")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--spec", default="{}", help="variant: JSON, see variant_cases")
    args = parser.parse_args(argv)
    if args.side == "matmul":
        cases, info = matmul_cases(args.size)
    else:
        images = np.load(args.images)
        if args.side == "tensorflow":
            cases, info = tensorflow_cases(
                args.graphdef, images, args.layer, args.layers.split(",")
            )
        elif args.side == "bf16":
            cases, info = bf16_cases(args.model, images)
        elif args.side == "openvino":
            cases, info = openvino_cases(args.model, images, args.layers.split(","))
        elif args.side == "variant":
            cases, info = variant_cases(args.model, images, json.loads(args.spec))
        else:
            cases, info = runtime_cases(args.model, images, args.image_file, args.layer)
    serve(cases, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
