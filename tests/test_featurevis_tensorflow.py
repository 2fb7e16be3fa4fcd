"""The gradient model of the GoogLeNet replica against TensorFlow's own gradient of its GraphDef.

The gradient of a ReLU network is piecewise: it jumps where a ReLU input crosses 0 or two
values of a max-pool window swap places. TensorFlow's forward pass and ONNX Runtime's differ
by float32 rounding (about 1e-6 of each layer's scale), so at the few units that sit within
that rounding of a kink the two engines take different sides, and the image gradient then
differs by up to a few per cent near them (docs/featurevis.md, "Near-ties"). To compare the
backward passes themselves, TensorFlow takes those decisions from ONNX Runtime's forward
values: its own ReluGrad and MaxPoolGrad kernels run on ONNX Runtime's ReLU outputs and
max-pool inputs and outputs (gradient_override_map), everything else is TensorFlow's. Then
the gradients must agree to 1e-5 of their scale for every image and objective. The plain
comparison (TensorFlow's own forward values throughout) is printed for the record.
"""

from __future__ import annotations

import contextlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from semdict_onnx._featurevis._gradient_model import gradient_session

SIZE = 128
TOLERANCE = 1e-5
LAYERS = ["mixed3b", "mixed4d", "mixed5b"]
# ONNX Runtime's forward values that TensorFlow's ReLU and max-pool gradients read, by op name.
_FORWARD: dict[str, np.ndarray] = {}


@pytest.fixture(scope="module")
def tf():
    """TensorFlow with the gradient overrides registered, kept off any GPU."""
    from semdict_onnx.export._tf_env import import_tensorflow

    tf = import_tensorflow()
    with contextlib.suppress(RuntimeError):
        tf.config.set_visible_devices([], "GPU")

    @tf.RegisterGradient("SemdictReluOnRuntimeValues")
    def _relu(op, grad):
        return tf.raw_ops.ReluGrad(gradients=grad, features=tf.constant(_FORWARD[op.name]))

    @tf.RegisterGradient("SemdictMaxPoolOnRuntimeValues")
    def _max_pool(op, grad):
        source, pooled = _FORWARD[op.name]
        return tf.raw_ops.MaxPoolGrad(
            orig_input=tf.constant(source),
            orig_output=tf.constant(pooled),
            grad=grad,
            ksize=op.get_attr("ksize"),
            strides=op.get_attr("strides"),
            padding=op.get_attr("padding"),
        )

    return tf


@pytest.fixture(scope="module")
def graph_def(tf, replica_graphdef_path):
    return tf.compat.v1.GraphDef.FromString(replica_graphdef_path.read_bytes())


def objectives(mean_activations: np.ndarray) -> np.ndarray:
    """Three live objectives, one per image: the channel its image excites most, a group of
    the next three, and a dense non-negative direction."""
    channels = mean_activations.shape[1]
    ranked = np.argsort(-mean_activations, axis=1)
    weights = np.zeros((3, channels), np.float32)
    weights[0, ranked[0, 0]] = 1.0
    weights[1, ranked[1, 1:4]] = 1.0
    weights[2] = np.random.default_rng(5).random(channels).astype(np.float32)
    return weights


def images() -> np.ndarray:
    """Three 128x128 images: coarse noise, fine noise and a smooth gradient."""
    rng = np.random.default_rng(11)
    coarse = np.repeat(np.repeat(rng.random((16, 16, 3)), 8, 0), 8, 1)
    fine = rng.random((SIZE, SIZE, 3))
    ramp = np.linspace(0, 1, SIZE)
    smooth = np.stack([ramp[:, None] * ramp[None, :], ramp[None, :].repeat(SIZE, 0),
                       ramp[:, None].repeat(SIZE, 1)], -1)  # fmt: skip
    return np.stack([coarse, fine, smooth]).astype(np.float32)


def tensorflow_gradient(tf, graph_def, layer, pictures, weights, runtime_kinks):
    """TensorFlow's objective and image gradient; ReLU and max-pool decisions from ONNX Runtime
    when `runtime_kinks`."""
    graph = tf.Graph()
    overrides = (
        {"Relu": "SemdictReluOnRuntimeValues", "MaxPool": "SemdictMaxPoolOnRuntimeValues"}
        if runtime_kinks
        else {}
    )
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
        with graph.gradient_override_map(overrides):
            (activations,) = tf.import_graph_def(
                graph_def,
                input_map={"input:0": image * 255.0 - 117.0},
                return_elements=[f"{layer}:0"],
                name="",
            )
        objective = tf.reduce_sum(tf.reduce_mean(activations, [1, 2]) * weights, 1)
        (grad,) = tf.gradients(tf.reduce_sum(objective), [image])
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run([objective, grad], {image: pictures})


def runtime_forward(model_path, layer, pictures) -> dict[str, np.ndarray]:
    """ONNX Runtime's ReLU outputs and max-pool inputs/outputs (NHWC), by TensorFlow op name."""
    model = onnx.load(model_path)
    wanted: dict[str, list[str]] = {}
    for node in model.graph.node:
        name = node.name.removeprefix("source/")
        if node.op_type == "Relu":
            wanted[name] = [node.output[0]]
        elif node.op_type == "MaxPool":
            wanted[name] = [node.input[0], node.output[0]]
    tensors = sorted({t for names in wanted.values() for t in names})
    model.graph.output.extend(helper.make_empty_tensor_value_info(t) for t in tensors)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = dict(zip(tensors, session.run(tensors, {"image": pictures}), strict=True))
    nhwc = {t: np.ascontiguousarray(v.transpose(0, 2, 3, 1)) for t, v in values.items()}
    return {
        name: nhwc[names[0]] if len(names) == 1 else tuple(nhwc[t] for t in names)
        for name, names in wanted.items()
    }


@pytest.mark.parametrize("layer", LAYERS)
def test_gradient_matches_tensorflow(tf, graph_def, replica_model, replica_model_path, layer):
    pictures = images()
    weights = objectives(replica_model.activations(pictures, [layer])[layer].mean(axis=(1, 2)))
    session = gradient_session(replica_model, layer)
    session.set_weights(weights)
    objective, grad = session(pictures)
    _FORWARD.clear()
    _FORWARD.update(runtime_forward(replica_model_path, layer, pictures))
    reference, matched = tensorflow_gradient(tf, graph_def, layer, pictures, weights, True)
    own_objective, own = tensorflow_gradient(tf, graph_def, layer, pictures, weights, False)
    # The forward parity bar of the export: 1e-4 of the scale.
    np.testing.assert_allclose(objective, own_objective, atol=1e-4 * np.abs(own_objective).max())
    for index in range(len(pictures)):
        scale = np.abs(matched[index]).max()
        assert scale > 0
        kinks_shared = np.abs(grad[index] - matched[index]).max() / scale
        own_kinks = np.abs(grad[index] - own[index]).max() / np.abs(own[index]).max()
        print(
            f"{layer} objective {index}: {kinks_shared:.1e} of the scale with TensorFlow on ONNX "
            f"Runtime's kink decisions, {own_kinks:.1e} with TensorFlow's own"
        )
        assert kinks_shared <= TOLERANCE, (layer, index, kinks_shared)
