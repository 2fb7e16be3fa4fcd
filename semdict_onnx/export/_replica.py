"""A replica of Lucid's GoogLeNet (InceptionV1) GraphDef with seeded random weights.

Same node names, op types, attributes and shapes as the real `InceptionV1.pb`, built node by
node as NodeDef protos so nothing TensorFlow-version-specific sneaks in. Its weights are
random: it exists for machines that cannot download the real graph, and for the tests. It
marks itself with the Const node `REPLICA_MARKER`, which the export looks for.
`python scripts/replica.py --output PATH` writes one from a clone.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from semdict_onnx._atomic import write_bytes_atomic

from ._googlenet import CLASS_OUTPUT, CLASS_POOL, INPUT_SIZE, NUM_CLASSES, SOURCE_INPUT
from ._tf_env import import_tensorflow

tf = import_tensorflow()

REPLICA_MARKER = "semdict_onnx_replica"
DEFAULT_SEED = 20180306

# (name, 1x1, 3x3 bottleneck, 3x3, 5x5 bottleneck, 5x5, pool reduce), in network order.
MODULES = (
    ("mixed3a", 64, 96, 128, 16, 32, 32),
    ("mixed3b", 128, 128, 192, 32, 96, 64),
    ("mixed4a", 192, 96, 204, 16, 48, 64),
    ("mixed4b", 160, 112, 224, 24, 64, 64),
    ("mixed4c", 128, 128, 256, 24, 64, 64),
    ("mixed4d", 112, 144, 288, 32, 64, 64),
    ("mixed4e", 256, 160, 320, 32, 128, 128),
    ("mixed5a", 256, 160, 320, 48, 128, 128),
    ("mixed5b", 384, 192, 384, 48, 128, 128),
)
# A max pool (3x3, stride 2) follows these modules.
POOL_AFTER = {"mixed3b": "maxpool4", "mixed4e": "maxpool10"}
# Auxiliary classifier heads: (head index, the module they read).
AUX_HEADS = ((0, "mixed4a"), (1, "mixed4d"))
LRN_ATTRS = {"depth_radius": 4, "bias": 1.0, "alpha": 1e-4, "beta": 0.5}


class _Builder:
    """Appends NodeDefs to a GraphDef and draws the seeded random weights."""

    def __init__(self, seed: int) -> None:
        self.graph_def = tf.compat.v1.GraphDef()
        self.rng = np.random.default_rng(seed)

    def node(self, name: str, op: str, inputs: list[str], **attrs) -> str:
        """Add one node; attrs are AttrValue keyword arguments, e.g. `T=float32_attr`."""
        node = self.graph_def.node.add(name=name, op=op)
        node.input.extend(inputs)
        for key, value in attrs.items():
            node.attr[key].CopyFrom(value)
        return name

    def const(self, name: str, value: np.ndarray | str) -> str:
        """A Const node holding `value`."""
        tensor = tf.make_tensor_proto(value)
        return self.node(
            name,
            "Const",
            [],
            dtype=tf.compat.v1.AttrValue(type=tensor.dtype),
            value=tf.compat.v1.AttrValue(tensor=tensor),
        )

    def weights(self, name: str, shape: tuple[int, ...], fan_in: int, gain: float = 2.0) -> str:
        """He-style normal weights: std sqrt(gain / fan_in), so ReLU layers keep their scale."""
        std = np.float32(np.sqrt(gain / fan_in))
        return self.const(name, self.rng.standard_normal(shape, dtype=np.float32) * std)

    def bias(self, name: str, size: int) -> str:
        """Small random biases, so that BiasAdd is exercised with non-zero values."""
        return self.const(name, self.rng.normal(0.0, 0.1, size).astype(np.float32))


def _type_attr() -> tf.compat.v1.AttrValue:
    return tf.compat.v1.AttrValue(type=tf.float32.as_datatype_enum)


def _ints(values: list[int]) -> tf.compat.v1.AttrValue:
    return tf.compat.v1.AttrValue(list=tf.compat.v1.AttrValue.ListValue(i=values))


def _str(value: str) -> tf.compat.v1.AttrValue:
    return tf.compat.v1.AttrValue(s=value.encode())


def _bias_add(b: _Builder, name: str, source: str, bias: str) -> str:
    return b.node(name, "BiasAdd", [source, bias], T=_type_attr(), data_format=_str("NHWC"))


def _conv(b: _Builder, name: str, source: str, cin: int, cout: int, k: int, stride: int = 1) -> str:
    """`NAME_w`, `NAME_b`, `NAME_pre_relu/conv` (Conv2D SAME), `NAME_pre_relu`, `NAME` (Relu)."""
    w = b.weights(f"{name}_w", (k, k, cin, cout), fan_in=k * k * cin)
    bias = b.bias(f"{name}_b", cout)
    conv = b.node(
        f"{name}_pre_relu/conv",
        "Conv2D",
        [source, w],
        T=_type_attr(),
        strides=_ints([1, stride, stride, 1]),
        padding=_str("SAME"),
        data_format=_str("NHWC"),
        dilations=_ints([1, 1, 1, 1]),
        use_cudnn_on_gpu=tf.compat.v1.AttrValue(b=True),
    )
    return b.node(name, "Relu", [_bias_add(b, f"{name}_pre_relu", conv, bias)], T=_type_attr())


def _pool(b: _Builder, name: str, op: str, source: str, k: int, stride: int, padding: str) -> str:
    return b.node(
        name,
        op,
        [source],
        T=_type_attr(),
        ksize=_ints([1, k, k, 1]),
        strides=_ints([1, stride, stride, 1]),
        padding=_str(padding),
        data_format=_str("NHWC"),
    )


def _lrn(b: _Builder, name: str, source: str) -> str:
    a = LRN_ATTRS
    return b.node(
        name,
        "LRN",
        [source],
        T=_type_attr(),
        depth_radius=tf.compat.v1.AttrValue(i=a["depth_radius"]),
        bias=tf.compat.v1.AttrValue(f=a["bias"]),
        alpha=tf.compat.v1.AttrValue(f=a["alpha"]),
        beta=tf.compat.v1.AttrValue(f=a["beta"]),
    )


def _dense(
    b: _Builder, name: str, suffix: str, source: str, fan_in: int, units: int, gain: float
) -> str:
    """`NAME_w`, `NAME_b`, `NAME{suffix}/matmul` (MatMul), `NAME{suffix}` (BiasAdd)."""
    w = b.weights(f"{name}_w", (fan_in, units), fan_in=fan_in, gain=gain)
    bias = b.bias(f"{name}_b", units)
    matmul = b.node(
        f"{name}{suffix}/matmul",
        "MatMul",
        [source, w],
        T=_type_attr(),
        transpose_a=tf.compat.v1.AttrValue(b=False),
        transpose_b=tf.compat.v1.AttrValue(b=False),
    )
    return _bias_add(b, f"{name}{suffix}", matmul, bias)


def _reshape(b: _Builder, name: str, source: str, size: int) -> str:
    shape = b.const(f"{name}/shape", np.array([-1, size], dtype=np.int32))
    return b.node(
        name,
        "Reshape",
        [source, shape],
        T=_type_attr(),
        Tshape=tf.compat.v1.AttrValue(type=tf.int32.as_datatype_enum),
    )


def _classifier(b: _Builder, name: str, source: str, fan_in: int) -> str:
    """`NAME_pre_activation/matmul` + `NAME_pre_activation` + `NAME` (Softmax).

    The gain is kept small so that the random logits stay in a range where softmax
    does not saturate to exact zeros (which would make top-k comparisons meaningless).
    """
    logits = _dense(b, name, "_pre_activation", source, fan_in, NUM_CLASSES, gain=1e-3)
    return b.node(name, "Softmax", [logits], T=_type_attr())


def _aux_head(b: _Builder, index: int, source: str, cin: int) -> None:
    """head{i}_pool (AvgPool 5x5/3) -> head{i}_bottleneck -> nn{i} (1024) -> softmax{i}."""
    pool = _pool(b, f"head{index}_pool", "AvgPool", source, 5, 3, "VALID")
    bottleneck = _conv(b, f"head{index}_bottleneck", pool, cin, 128, 1)
    flat = _reshape(b, f"head{index}_bottleneck/reshape", bottleneck, 4 * 4 * 128)
    pre = _dense(b, f"nn{index}", "_pre_relu", flat, 4 * 4 * 128, 1024, gain=2.0)
    hidden = b.node(f"nn{index}", "Relu", [pre], T=_type_attr())
    _classifier(b, f"softmax{index}", hidden, 1024)


def _module(b: _Builder, spec: tuple, source: str, cin: int) -> tuple[str, int]:
    name, c1, c3r, c3, c5r, c5, cp = spec
    branch1 = _conv(b, f"{name}_1x1", source, cin, c1, 1)
    bottleneck3 = _conv(b, f"{name}_3x3_bottleneck", source, cin, c3r, 1)
    branch3 = _conv(b, f"{name}_3x3", bottleneck3, c3r, c3, 3)
    bottleneck5 = _conv(b, f"{name}_5x5_bottleneck", source, cin, c5r, 1)
    branch5 = _conv(b, f"{name}_5x5", bottleneck5, c5r, c5, 5)
    pool = _pool(b, f"{name}_pool", "MaxPool", source, 3, 1, "SAME")
    branch_pool = _conv(b, f"{name}_pool_reduce", pool, cin, cp, 1)
    axis = b.const(f"{name}/concat_dim", np.array(3, dtype=np.int32))
    out = b.node(
        name,
        "Concat",
        [axis, branch1, branch3, branch5, branch_pool],
        N=tf.compat.v1.AttrValue(i=4),
        T=_type_attr(),
    )
    return out, c1 + c3 + c5 + cp


def build_replica(seed: int = DEFAULT_SEED) -> tf.compat.v1.GraphDef:
    """The replica GraphDef: Lucid's InceptionV1 structure with weights drawn from `seed`."""
    b = _Builder(seed)
    b.const(
        REPLICA_MARKER,
        f"REPLICA of Lucid's InceptionV1 with RANDOM weights (seed {seed}); "
        "its activations and classes mean nothing.",
    )
    shape = tf.TensorShape([None, INPUT_SIZE, INPUT_SIZE, 3]).as_proto()
    x = b.node(
        SOURCE_INPUT,
        "Placeholder",
        [],
        dtype=tf.compat.v1.AttrValue(type=tf.float32.as_datatype_enum),
        shape=tf.compat.v1.AttrValue(shape=shape),
    )
    x = _conv(b, "conv2d0", x, 3, 64, 7, stride=2)
    x = _pool(b, "maxpool0", "MaxPool", x, 3, 2, "SAME")
    x = _lrn(b, "localresponsenorm0", x)
    x = _conv(b, "conv2d1", x, 64, 64, 1)
    x = _conv(b, "conv2d2", x, 64, 192, 3)
    x = _lrn(b, "localresponsenorm1", x)
    x = _pool(b, "maxpool1", "MaxPool", x, 3, 2, "SAME")
    channels = 192
    heads = dict((module, index) for index, module in AUX_HEADS)
    for spec in MODULES:
        x, channels = _module(b, spec, x, channels)
        if spec[0] in heads:
            _aux_head(b, heads[spec[0]], x, channels)
        if spec[0] in POOL_AFTER:
            x = _pool(b, POOL_AFTER[spec[0]], "MaxPool", x, 3, 2, "SAME")
    x = _pool(b, CLASS_POOL, "AvgPool", x, 7, 1, "VALID")
    x = _reshape(b, f"{CLASS_POOL}/reshape", x, channels)
    _classifier(b, CLASS_OUTPUT, x, channels)
    return b.graph_def


def is_replica(graph_def: tf.compat.v1.GraphDef) -> bool:
    """Whether `graph_def` is a replica built here (it carries the marker node)."""
    return any(node.name == REPLICA_MARKER for node in graph_def.node)


def write_replica(path: str | os.PathLike[str], seed: int = DEFAULT_SEED) -> Path:
    """Build the replica and write it to `path` atomically; the same seed gives the same bytes."""
    return write_bytes_atomic(path, build_replica(seed).SerializeToString(deterministic=True))
