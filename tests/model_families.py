"""Three small raw ONNX networks, one per family users bring, built with onnx.helper and numpy.

Each is what an exporter writes (no semdict_onnx metadata), with seeded random weights and one
planted channel (channel 0 of every listed layer) that answers a known picture at a known
place, so tests can check that a prepared model's positions and crops land where they should:

- `resnet`: torchvision style. NCHW input of open height and width, ImageNet mean/std,
  Conv + BatchNormalization + Relu, a max pool, two residual blocks (Add, one with a strided
  1x1 downsample), a global pool and a Gemm to logits. Channel 0 answers bright pixels.
- `keras`: tf2onnx style from a Keras VGG-like net. NHWC input fixed at 48 x 64, Caffe
  preprocessing (0-255, BGR, mean subtracted), a Transpose to NCHW for the convolutions and
  back to NHWC (a Clip there gives an NHWC layer), a ReduceMean head and a Softmax. Channel 0
  answers pure red (in RGB), which the network sees in its third (BGR) channel.
- `vit`: a ViT-style transformer. NCHW 32 x 32 input, mean = std = 0.5, an 8 x 8 patch-embedding
  Conv (4 x 4 patches), a class token, position embeddings, two pre-norm blocks (one with
  LayerNormalization, one with it decomposed) of multi-head attention (MatMul, Softmax) and an
  MLP, outputs of [N, 17, 16] tokens, and a class head on the class token. Channel 0 of the
  residual stream carries the patch embedding's bright-patch detector untouched.

    python tests/model_families.py resnet|keras|vit OUT.onnx   # one raw file, e.g. for README
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


@dataclass
class Net:
    """Nodes and weights of a graph under construction; `save` writes it without metadata."""

    seed: int
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    weights: list[onnx.TensorProto] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def const(self, name: str, array: np.ndarray, dtype=np.float32) -> str:
        """Add a weight and return its name."""
        self.weights.append(numpy_helper.from_array(np.asarray(array, dtype), name))
        return name

    def op(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        """Add a node named like its output, as torch.onnx names them, and return the output."""
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def random(self, *shape: int, scale: float = 0.3) -> np.ndarray:
        return (self.rng.normal(0, scale, shape)).astype(np.float32)

    def save(self, path: Path, inputs, outputs, opset: int = 17) -> Path:
        graph = helper.make_graph(self.nodes, "net", inputs, outputs, self.weights)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(path))
        return path


# --- resnet: NCHW, mean/std, BatchNormalization + Add -----------------------------------------

RESNET_LAYERS = {
    "stem": "/stem/relu/Relu_output_0",  # 3x3 s2 conv: stride 2
    "layer1": "/layer1/layer1.0/relu_1/Relu_output_0",  # after the max pool: stride 4
    "layer2": "/layer2/layer2.0/relu_1/Relu_output_0",  # stride 8
}
RESNET_LOGITS = "logits"
RESNET_CLASSES = 5
# Channel 0 of the stem: the mean of a 3x3 patch of normalized values, minus 1.5: only bright
# (near-white) patches exceed it.
BRIGHT_BIAS = -1.5


def _bn(net: Net, x: str, name: str, channels: int, planted: bool = False) -> str:
    scale, bias = 1 + net.random(channels, scale=0.1), net.random(channels, scale=0.1)
    mean, var = net.random(channels, scale=0.1), 1 + np.abs(net.random(channels, scale=0.1))
    if planted:  # channel 0 passes unchanged
        scale[0], bias[0], mean[0], var[0] = 1, 0, 0, 1 - 1e-5
    return net.op(
        "BatchNormalization",
        [
            x,
            net.const(f"{name}.weight", scale),
            net.const(f"{name}.bias", bias),
            net.const(f"{name}.running_mean", mean),
            net.const(f"{name}.running_var", var),
        ],
        f"/{name}/BatchNormalization_output_0",
        epsilon=1e-5,
    )


def _conv(net: Net, x: str, name: str, weights: np.ndarray, **attrs) -> str:
    return net.op(
        "Conv", [x, net.const(f"{name}.weight", weights)], f"/{name}/Conv_output_0", **attrs
    )


def build_resnet(path: Path, seed: int = 0) -> Path:
    """The torchvision-style residual network (see the module docstring)."""
    net = Net(seed)
    stem_w = net.random(8, 3, 3, 3)
    stem_w[0] = 1 / 27  # channel 0: the mean of the normalized 3x3x3 patch
    x = _conv(net, "input", "stem/conv", stem_w, pads=[1, 1, 1, 1], strides=[2, 2])
    x = net.op(
        "Add",
        [x, net.const("stem.bright", np.r_[BRIGHT_BIAS, np.zeros(7)].reshape(1, 8, 1, 1))],
        "/stem/Add_output_0",
    )
    x = _bn(net, x, "stem/bn", 8, planted=True)
    stem = net.op("Relu", [x], RESNET_LAYERS["stem"])
    x = net.op(
        "MaxPool",
        [stem],
        "/maxpool/MaxPool_output_0",
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=[1, 1, 1, 1],
    )
    # layer1: a residual block whose branch writes nothing into channel 0
    w1, w2 = net.random(8, 8, 3, 3), net.random(8, 8, 3, 3)
    w2[0] = 0
    y = _conv(net, x, "layer1/layer1.0/conv1", w1, pads=[1, 1, 1, 1])
    y = net.op(
        "Relu", [_bn(net, y, "layer1/layer1.0/bn1", 8)], "/layer1/layer1.0/relu/Relu_output_0"
    )
    y = _bn(
        net,
        _conv(net, y, "layer1/layer1.0/conv2", w2, pads=[1, 1, 1, 1]),
        "layer1/layer1.0/bn2",
        8,
        planted=True,
    )
    x = net.op("Add", [y, x], "/layer1/layer1.0/Add_output_0")
    layer1 = net.op("Relu", [x], RESNET_LAYERS["layer1"])
    # layer2: strided, with a 1x1 downsample that carries channel 0
    w1, w2, down = net.random(16, 8, 3, 3), net.random(16, 8 * 2, 3, 3), net.random(16, 8, 1, 1)
    w2[0] = 0
    down[0] = 0
    down[0, 0] = 1
    y = _conv(net, layer1, "layer2/layer2.0/conv1", w1, pads=[1, 1, 1, 1], strides=[2, 2])
    y = net.op(
        "Relu", [_bn(net, y, "layer2/layer2.0/bn1", 16)], "/layer2/layer2.0/relu/Relu_output_0"
    )
    y = _bn(
        net,
        _conv(net, y, "layer2/layer2.0/conv2", w2, pads=[1, 1, 1, 1]),
        "layer2/layer2.0/bn2",
        16,
        planted=True,
    )
    d = _conv(net, layer1, "layer2/layer2.0/downsample.0", down, strides=[2, 2])
    d = _bn(net, d, "layer2/layer2.0/downsample.1", 16, planted=True)
    x = net.op("Add", [y, d], "/layer2/layer2.0/Add_output_0")
    layer2 = net.op("Relu", [x], RESNET_LAYERS["layer2"])
    x = net.op("GlobalAveragePool", [layer2], "/avgpool/GlobalAveragePool_output_0")
    x = net.op("Flatten", [x], "/Flatten_output_0", axis=1)
    fc_w, fc_b = net.random(RESNET_CLASSES, 16), net.random(RESNET_CLASSES)
    net.op(
        "Gemm",
        [x, net.const("fc.weight", fc_w), net.const("fc.bias", fc_b)],
        RESNET_LOGITS,
        transB=1,
    )
    image = helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, ["batch", 3, "height", "width"]
    )
    logits = helper.make_tensor_value_info(
        RESNET_LOGITS, TensorProto.FLOAT, ["batch", RESNET_CLASSES]
    )
    return net.save(path, [image], [logits])


# --- keras: NHWC input, Caffe preprocessing, NCHW inside ---------------------------------------

KERAS_SIZE = (48, 64)
KERAS_LAYERS = {
    "block1_conv1": "model/block1_conv1/Relu:0",  # NCHW inside, stride 1
    "block2_conv1": "model/block2_conv1/Relu:0",  # NCHW, after a 2x2 pool: stride 2
    "block2_relu6": "model/block2_relu6/Relu6:0",  # NHWC, after the transpose back
}
KERAS_PROBS = "predictions"
KERAS_CLASSES = 4
# Channel 0 of block1_conv1 sees BGR channel 2 (red) minus the others, Caffe-centred: pure red
# gives about 255 - 123.68 + 103.94 + 116.78 ~ 352 per tap before the bias, anything else less.
RED_WEIGHTS_BGR = np.array([-1.0, -1.0, 1.0], np.float32)
RED_BIAS = -250.0


def build_keras(path: Path, seed: int = 1) -> Path:
    """The Keras-style NHWC network converted the tf2onnx way (see the module docstring)."""
    net = Net(seed)
    x = net.op("Transpose", ["input_1"], "model/block1_conv1/Conv2D__6:0", perm=[0, 3, 1, 2])
    w = net.random(6, 3, 3, 3, scale=0.02)
    w[0] = 0
    w[0, :, 1, 1] = RED_WEIGHTS_BGR  # the centre tap only
    b = net.random(6, scale=0.5)
    b[0] = RED_BIAS
    x = net.op(
        "Conv",
        [x, net.const("model/block1_conv1/weights", w), net.const("model/block1_conv1/bias", b)],
        "model/block1_conv1/BiasAdd:0",
        pads=[1, 1, 1, 1],
    )
    block1 = net.op("Relu", [x], KERAS_LAYERS["block1_conv1"])
    x = net.op(
        "MaxPool", [block1], "model/block1_pool/MaxPool:0", kernel_shape=[2, 2], strides=[2, 2]
    )
    w = net.random(8, 6, 3, 3)
    w[0] = 0
    w[0, 0, 1, 1] = 1.0
    x = net.op(
        "Conv",
        [x, net.const("model/block2_conv1/weights", w)],
        "model/block2_conv1/Conv2D:0",
        pads=[1, 1, 1, 1],
    )
    scale = np.ones((1, 8, 1, 1), np.float32)
    x = net.op("Mul", [x, net.const("model/block2_bn/scale", scale)], "model/block2_bn/mul:0")
    block2 = net.op("Relu", [x], KERAS_LAYERS["block2_conv1"])
    x = net.op("Transpose", [block2], "model/block2_conv1/Relu__20:0", perm=[0, 2, 3, 1])
    relu6 = net.op(
        "Clip",
        [x, net.const("zero", np.float32(0)), net.const("six", np.float32(6))],
        KERAS_LAYERS["block2_relu6"],
    )
    x = net.op("ReduceMean", [relu6], "model/gap/Mean:0", axes=[1, 2], keepdims=0)
    x = net.op(
        "MatMul",
        [x, net.const("model/dense/kernel", net.random(8, KERAS_CLASSES))],
        "model/dense/MatMul:0",
    )
    net.op("Softmax", [x], KERAS_PROBS, axis=-1)
    height, width = KERAS_SIZE
    image = helper.make_tensor_value_info(
        "input_1", TensorProto.FLOAT, ["unk__1", height, width, 3]
    )
    probs = helper.make_tensor_value_info(KERAS_PROBS, TensorProto.FLOAT, ["unk__2", KERAS_CLASSES])
    return net.save(path, [image], [probs])


# --- vit: patch embedding, class token, attention blocks --------------------------------------

VIT_SIZE = 32
VIT_PATCH = 8
VIT_DIM = 16
VIT_HEADS = 2
VIT_TOKENS = 1 + (VIT_SIZE // VIT_PATCH) ** 2
VIT_LAYERS = {
    "embed": "/embeddings/Add_output_0",  # class token + patches + positions
    "block0": "/encoder/layer.0/Add_1_output_0",
    "block1": "/encoder/layer.1/Add_1_output_0",
}
VIT_LOGITS = "logits"
VIT_CLASSES = 3
# Channel 0 of the patch embedding: the mean of the patch (normalized by 0.5/0.5, so in
# [-1, 1]) minus 0.5: positive only for mostly bright patches.
PATCH_BIAS = -0.5


def _layer_norm(net: Net, x: str, name: str, decomposed: bool) -> str:
    gamma, beta = 1 + net.random(VIT_DIM, scale=0.1), net.random(VIT_DIM, scale=0.1)
    if not decomposed:
        return net.op(
            "LayerNormalization",
            [x, net.const(f"{name}.weight", gamma), net.const(f"{name}.bias", beta)],
            f"/{name}/LayerNormalization_output_0",
            axis=-1,
            epsilon=1e-6,
        )
    mean = net.op("ReduceMean", [x], f"/{name}/ReduceMean_output_0", axes=[-1], keepdims=1)
    centred = net.op("Sub", [x, mean], f"/{name}/Sub_output_0")
    square = net.op(
        "Pow", [centred, net.const(f"{name}.two", np.float32(2))], f"/{name}/Pow_output_0"
    )
    var = net.op("ReduceMean", [square], f"/{name}/ReduceMean_1_output_0", axes=[-1], keepdims=1)
    std = net.op(
        "Sqrt",
        [net.op("Add", [var, net.const(f"{name}.eps", np.float32(1e-6))], f"/{name}/Add_output_0")],
        f"/{name}/Sqrt_output_0",
    )
    normed = net.op("Div", [centred, std], f"/{name}/Div_output_0")
    scaled = net.op("Mul", [normed, net.const(f"{name}.weight", gamma)], f"/{name}/Mul_output_0")
    return net.op("Add", [scaled, net.const(f"{name}.bias", beta)], f"/{name}/Add_1_output_0")


def _block(net: Net, x: str, index: int) -> str:
    """A pre-norm transformer block whose writes into channel 0 are zero."""
    p = f"encoder/layer.{index}"
    head = VIT_DIM // VIT_HEADS
    h = _layer_norm(net, x, f"{p}/layernorm_before", decomposed=index == 1)
    qkv = net.op(
        "MatMul",
        [h, net.const(f"{p}.qkv", net.random(VIT_DIM, 3 * VIT_DIM))],
        f"/{p}/attention/qkv/MatMul_output_0",
    )
    qkv = net.op(
        "Reshape",
        [qkv, net.const(f"{p}.qkv_shape", [0, VIT_TOKENS, 3, VIT_HEADS, head], np.int64)],
        f"/{p}/attention/Reshape_output_0",
    )
    qkv = net.op("Transpose", [qkv], f"/{p}/attention/Transpose_output_0", perm=[2, 0, 3, 1, 4])
    q, k, v = (
        net.op(
            "Gather",
            [qkv, net.const(f"{p}.idx{i}", np.int64(i), np.int64)],
            f"/{p}/attention/Gather_{i}_output_0",
            axis=0,
        )
        for i in range(3)
    )
    kt = net.op("Transpose", [k], f"/{p}/attention/Transpose_1_output_0", perm=[0, 1, 3, 2])
    scores = net.op("MatMul", [q, kt], f"/{p}/attention/MatMul_output_0")
    scores = net.op(
        "Mul",
        [scores, net.const(f"{p}.scale", np.float32(head**-0.5))],
        f"/{p}/attention/Mul_output_0",
    )
    probs = net.op("Softmax", [scores], f"/{p}/attention/Softmax_output_0", axis=-1)
    ctx = net.op("MatMul", [probs, v], f"/{p}/attention/MatMul_1_output_0")
    ctx = net.op("Transpose", [ctx], f"/{p}/attention/Transpose_2_output_0", perm=[0, 2, 1, 3])
    ctx = net.op(
        "Reshape",
        [ctx, net.const(f"{p}.ctx_shape", [0, VIT_TOKENS, VIT_DIM], np.int64)],
        f"/{p}/attention/Reshape_1_output_0",
    )
    proj = net.random(VIT_DIM, VIT_DIM)
    proj[:, 0] = 0
    ctx = net.op(
        "MatMul", [ctx, net.const(f"{p}.proj", proj)], f"/{p}/attention/output/MatMul_output_0"
    )
    x = net.op("Add", [ctx, x], f"/{p}/Add_output_0")
    h = _layer_norm(net, x, f"{p}/layernorm_after", decomposed=index == 1)
    h = net.op(
        "MatMul",
        [h, net.const(f"{p}.fc1", net.random(VIT_DIM, 2 * VIT_DIM))],
        f"/{p}/intermediate/MatMul_output_0",
    )
    gate = net.op(
        "Sigmoid",
        [
            net.op(
                "Mul",
                [h, net.const(f"{p}.k", np.float32(1.702))],
                f"/{p}/intermediate/Mul_output_0",
            )
        ],
        f"/{p}/intermediate/Sigmoid_output_0",
    )
    h = net.op("Mul", [h, gate], f"/{p}/intermediate/Mul_1_output_0")
    fc2 = net.random(2 * VIT_DIM, VIT_DIM)
    fc2[:, 0] = 0
    h = net.op("MatMul", [h, net.const(f"{p}.fc2", fc2)], f"/{p}/output/MatMul_output_0")
    return net.op("Add", [h, x], VIT_LAYERS[f"block{index}"])


def build_vit(path: Path, seed: int = 2) -> Path:
    """The ViT-style network (see the module docstring)."""
    net = Net(seed)
    patch_w = net.random(VIT_DIM, 3, VIT_PATCH, VIT_PATCH, scale=0.05)
    patch_w[0] = 1 / (3 * VIT_PATCH * VIT_PATCH)
    patch_b = net.random(VIT_DIM, scale=0.1)
    patch_b[0] = PATCH_BIAS
    x = net.op(
        "Conv",
        ["pixel_values", net.const("patch.weight", patch_w), net.const("patch.bias", patch_b)],
        "/embeddings/patch_embeddings/projection/Conv_output_0",
        kernel_shape=[VIT_PATCH] * 2,
        strides=[VIT_PATCH] * 2,
    )
    x = net.op(
        "Relu", [x], "/embeddings/patch_embeddings/Relu_output_0"
    )  # keeps the planted channel >= 0
    flat = net.const("flat_shape", [0, VIT_DIM, -1], np.int64)
    x = net.op("Reshape", [x, flat], "/embeddings/patch_embeddings/Flatten_output_0")
    x = net.op("Transpose", [x], "/embeddings/patch_embeddings/Transpose_output_0", perm=[0, 2, 1])
    cls = net.random(1, 1, VIT_DIM)
    cls[..., 0] = 0
    batch = net.op("Shape", [x], "/embeddings/Shape_output_0", start=0, end=1)
    target = net.op(
        "Concat",
        [batch, net.const("cls_rest", [1, VIT_DIM], np.int64)],
        "/embeddings/Concat_1_output_0",
        axis=0,
    )
    cls_all = net.op("Expand", [net.const("cls_token", cls), target], "/embeddings/Expand_output_0")
    x = net.op("Concat", [cls_all, x], "/embeddings/Concat_output_0", axis=1)
    pos = net.random(1, VIT_TOKENS, VIT_DIM, scale=0.1)
    pos[..., 0] = 0
    x = net.op("Add", [x, net.const("position_embeddings", pos)], VIT_LAYERS["embed"])
    for index in range(2):
        x = _block(net, x, index)
    cls_out = net.op(
        "Gather", [x, net.const("zero_index", np.int64(0), np.int64)], "/Gather_output_0", axis=1
    )
    cls_out = _layer_norm(net, cls_out, "layernorm", decomposed=False)
    net.op(
        "MatMul", [cls_out, net.const("classifier", net.random(VIT_DIM, VIT_CLASSES))], VIT_LOGITS
    )
    image = helper.make_tensor_value_info(
        "pixel_values", TensorProto.FLOAT, ["batch", 3, VIT_SIZE, VIT_SIZE]
    )
    logits = helper.make_tensor_value_info(VIT_LOGITS, TensorProto.FLOAT, ["batch", VIT_CLASSES])
    return net.save(path, [image], [logits])


BUILDERS = {"resnet": build_resnet, "keras": build_keras, "vit": build_vit}

if __name__ == "__main__":  # python tests/model_families.py resnet|keras|vit OUT.onnx
    import sys

    family, output = sys.argv[1:3]
    print(f"wrote {BUILDERS[family](Path(output))}: a raw {family}-style network (no card)")
