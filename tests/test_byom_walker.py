"""The receptive-field walk through the ops residual, normalized and upsampling networks use.

Each net is fed one lit pixel at a time (weights positive, so nothing cancels): the pixels a
position answers are its measured support, which must sit inside the field the walk computes
(exactly where no padding or upsampling blurs it). Ops the walk cannot see through get a
message naming the op and node and saying to give a crop size.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from onnx_builders import GraphBuilder

from semdict_onnx import receptive_fields
from semdict_onnx._graph_walker import known_op_types
from semdict_onnx.errors import ModelFormatError

SIZE = 24


def ints(g: GraphBuilder, name: str, values: list[int]) -> str:
    """An int64 constant of the graph (GraphBuilder.weight makes float32 ones)."""
    g.initializers.append(numpy_helper.from_array(np.array(values, np.int64), name))
    return name


def positive(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.5, 1.0, shape).astype(np.float32)


def measured_support(path, layers: list[str]) -> dict[str, np.ndarray]:
    """Per layer: seen[y, x, row, col], whether position (row, col) changes when pixel (y, x)
    is lit (against a black image)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probes = np.zeros((SIZE * SIZE + 1, SIZE, SIZE, 3), np.float32)
    index = np.arange(SIZE * SIZE)
    probes[index, index // SIZE, index % SIZE] = 1
    outs = session.run(layers, {"image": probes})
    return {
        name: (np.abs(out[:-1] - out[-1:]) > 1e-5).any(axis=3).reshape(SIZE, SIZE, *out.shape[1:3])
        for name, out in zip(layers, outs, strict=True)
    }


def check_fields(path, layers: list[str], exact: set[str]) -> dict:
    """Every position's support lies inside its field; in `exact` layers, equal to it (in the
    image's interior)."""
    fields = receptive_fields(path, [*layers, *exact - set(layers)])
    for name, seen in measured_support(path, layers).items():
        field = fields[name]
        assert field.grid == seen.shape[2:], name
        for row in range(seen.shape[2]):
            for col in range(seen.shape[3]):
                ys, xs = np.nonzero(seen[:, :, row, col])
                if len(ys) == 0:
                    continue
                box = field.input_box(row, col)
                for low, high, pixels in ((box.left, box.right, xs), (box.top, box.bottom, ys)):
                    support = (pixels.min(), pixels.max() + 1)
                    assert low <= support[0] and support[1] <= high, (name, row, col, box)
                    if name in exact and 0 <= low and high <= SIZE:
                        assert support == (low, high), (name, row, col, box)
    return fields


def test_residual_normalized_net_fields(tmp_path):
    """Conv + BatchNorm + Add (identity and strided 1x1 shortcut), Clip, HardSwish, Pad,
    Concat, Sum, Sub, Div, InstanceNormalization, and a squeeze-excitation gate."""
    g = GraphBuilder(SIZE, SIZE)
    ones = np.ones(4, np.float32)
    x = g.conv("image_nchw", "stem", positive(4, 3, 3, 3), pads=[1, 1, 1, 1], strides=[2, 2])
    x = g.node(
        "BatchNormalization",
        [
            x,
            g.weight("s", ones),
            g.weight("b", 0 * ones),
            g.weight("m", 0 * ones),
            g.weight("v", ones),
        ],
        "bn",
    )
    x = g.node("Clip", [x, g.weight("lo", np.float32(0)), g.weight("hi", np.float32(6))], "relu6")
    branch = g.conv(x, "branch", positive(4, 4, 3, 3, seed=1), pads=[1, 1, 1, 1])
    res = g.node("Add", [branch, x], "res")
    g.layer("residual", res, 4)
    # a squeeze-excitation gate: global context, not counted in the field
    squeeze = g.node("GlobalAveragePool", [res], "squeeze")
    gate = g.node("Sigmoid", [g.conv(squeeze, "excite", positive(4, 4, 1, 1, seed=2))], "gate")
    excited = g.node("Mul", [res, gate], "gated")
    g.layer("excited", excited, 4)
    down = g.conv(excited, "down", positive(4, 4, 1, 1, seed=3), strides=[2, 2])
    deep = g.conv(excited, "deep", positive(4, 4, 3, 3, seed=4), strides=[2, 2], pads=[1, 1, 1, 1])
    summed = g.node("Sum", [deep, down], "summed")
    swish = g.node(
        "HardSwish", [g.node("Sub", [summed, g.weight("z", np.float32(-3))], "shift")], "hs"
    )
    padded = g.node("Pad", [swish, ints(g, "pads", [0, 0, 1, 1, 0, 0, 1, 1])], "pad")
    pooled = g.node("MaxPool", [padded], "pool", kernel_shape=[3, 3])
    normed = g.node(
        "InstanceNormalization", [pooled, g.weight("is", ones), g.weight("ib", 0 * ones)], "in"
    )
    both = g.node(
        "Concat",
        [pooled, g.node("Div", [pooled, g.weight("two", np.float32(2))], "half")],
        "cat",
        axis=1,
    )
    g.layer("pooled", pooled, 4)
    g.layer("normed", normed, 4)
    g.layer("both", both, 8)
    path = g.save(tmp_path / "residual.onnx")
    fields = check_fields(path, ["residual", "excited", "pooled", "both"], exact={"residual"})
    fields.update(receptive_fields(path, ["normed"]))
    # by hand: stem 3 (jump 2); branch 3x3 adds 2*2 -> 7; the 3x3 s2 "deep" path adds 2*2 -> 11
    # (jump 4), pool 3x3 adds 2*4 -> 19 (jump 4)
    assert fields["residual"].size == (7, 7) and fields["residual"].jump == (2, 2)
    assert fields["excited"].size == (7, 7)
    assert fields["pooled"].size == (19, 19) and fields["pooled"].jump == (4, 4)
    assert fields["normed"] == dataclasses.replace(fields["pooled"], layer="normed")


def test_upsampling_fields_contain_their_support(tmp_path):
    """Resize (nearest and linear) and ConvTranspose: the field contains each position's
    measured support, and the jump halves."""
    g = GraphBuilder(SIZE, SIZE)
    x = g.conv("image_nchw", "c1", positive(2, 3, 3, 3), pads=[1, 1, 1, 1], strides=[2, 2])
    x = g.node("AveragePool", [x], "p1", kernel_shape=[2, 2], strides=[2, 2])  # jump 4, 6x6
    scales = g.weight("scales", np.array([1, 1, 2, 2], np.float32))
    near = g.node("Resize", [x, "", scales], "nearest", mode="nearest")
    lin = g.node("Resize", [x, "", scales], "linear", mode="linear")
    up = g.node(
        "ConvTranspose",
        [x, g.weight("tw", positive(2, 2, 4, 4, seed=5))],
        "transposed",
        strides=[2, 2],
        pads=[1, 1, 1, 1],
    )
    for name, tensor in (("near", near), ("lin", lin), ("up", up)):
        g.layer(name, tensor, 2)
    path = g.save(tmp_path / "up.onnx")
    fields = check_fields(path, ["near", "lin", "up"], exact=set())
    for name in ("near", "lin", "up"):
        assert fields[name].jump == (2, 2) and fields[name].grid == (12, 12)


def test_reshapes_that_keep_the_grid_are_followed_and_others_named(tmp_path):
    """A channel shuffle (Reshape, Transpose, Reshape) keeps rows and columns; flattening
    them into tokens does not, and the message names the node and asks for a crop size."""
    g = GraphBuilder(SIZE, SIZE)
    x = g.conv("image_nchw", "c1", positive(4, 3, 3, 3), pads=[1, 1, 1, 1], strides=[2, 2])
    split = g.node("Reshape", [x, ints(g, "s1", [0, 2, 2, 12, 12])], "groups")
    moved = g.node("Transpose", [split], "shuffle", perm=[0, 2, 1, 3, 4])
    shuffled = g.node("Reshape", [moved, ints(g, "s2", [0, 4, 12, 12])], "reshaped")
    cropped = g.node(
        "Slice",
        [shuffled, ints(g, "st", [2]), ints(g, "en", [10]), ints(g, "ax", [3])],
        "sliced",
    )
    g.layer("shuffled", shuffled, 4)
    g.layer("cropped", cropped, 4)
    flat = g.node("Reshape", [x, ints(g, "s3", [0, 4, 144, 1])], "flattened")
    g.layer("flat", flat, 4)
    path = g.save(tmp_path / "shuffle.onnx")
    fields = check_fields(path, ["shuffled", "cropped"], exact={"shuffled", "cropped"})
    assert fields["cropped"].grid == (12, 8)
    assert fields["cropped"].start == (fields["shuffled"].start[0], fields["shuffled"].start[1] + 4)
    with pytest.raises(ModelFormatError) as caught:
        receptive_fields(path, ["flat"])
    message = str(caught.value)
    assert "Reshape node 'flattened'" in message and "merges or splits" in message
    assert "crop_sizes={'flat': PIXELS}" in message


def test_the_op_table_covers_what_the_issue_names():
    known = set(known_op_types())
    wanted = {
        "Add",
        "Sum",
        "Mul",
        "Sub",
        "Div",
        "BatchNormalization",
        "InstanceNormalization",
        "Pad",
        "Concat",
        "Clip",
        "Relu",
        "LeakyRelu",
        "Sigmoid",
        "HardSwish",
        "Resize",
        "Upsample",
        "Transpose",
        "Reshape",
        "Conv",
        "ConvTranspose",
        "MaxPool",
        "AveragePool",
    }
    assert wanted <= known
