"""What users run, `Model.activations`, matches TensorFlow on the provider the tests use.

test_export.py checks the exported file with plain ONNX Runtime on the CPU. This checks the
runtime on whichever provider `replica_model` was loaded on: the CPU by default, CUDA when
scripts/gpu_check.sh sets SEMDICT_TEST_PROVIDER=CUDAExecutionProvider. Same bar as the
export: within 1e-4 of each layer's scale, the top-4 channels identical at every position.
"""

from __future__ import annotations

import contextlib
import os

import pytest
from conftest import GOOGLENET_LAYERS

from semdict_onnx import _providers as providers

NAMES = [*GOOGLENET_LAYERS, "softmax2"]
PROVIDER = os.environ.get("SEMDICT_TEST_PROVIDER") or providers.CPU


@pytest.fixture(scope="module")
def graph_def(replica_graphdef_path):
    """The replica GraphDef, with TensorFlow kept off any GPU (the runtime's to use)."""
    from semdict_onnx.export._convert import load_graphdef
    from semdict_onnx.export._tf_env import import_tensorflow

    tf = import_tensorflow()
    with contextlib.suppress(RuntimeError):  # devices were already set up in this process
        tf.config.set_visible_devices([], "GPU")
    return load_graphdef(replica_graphdef_path)


def test_the_model_runs_on_the_provider_asked_for(replica_model):
    assert replica_model.provider == PROVIDER


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_runtime_matches_tensorflow(replica_model, graph_def, batch):
    from semdict_onnx.export._parity import (
        compare_layer,
        format_parity,
        parity_images,
        tensorflow_outputs,
    )

    images = parity_images(batch, seed=300 + batch)
    reference = tensorflow_outputs(graph_def, images, NAMES)
    candidate = replica_model.activations(images, layers=NAMES, batch_size=batch)
    results = [compare_layer(name, reference[name], candidate[name]) for name in NAMES]
    table = f"{replica_model.provider}, batch {batch}\n{format_parity(results)}"
    print(table)
    assert all(result.passes() for result in results), table


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (providers.CUDA, (providers.CUDA, {"use_tf32": "0"})),
        (
            (providers.CUDA, {"device_id": "1"}),
            (providers.CUDA, {"use_tf32": "0", "device_id": "1"}),
        ),
        ((providers.CUDA, {"use_tf32": "1"}), (providers.CUDA, {"use_tf32": "1"})),
        (providers.CPU, providers.CPU),
    ],
)
def test_cuda_keeps_full_float32_unless_asked(spec, expected):
    assert providers.with_default_options(spec) == expected
