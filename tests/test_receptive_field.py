"""Receptive fields from the ONNX graph: hand-computed nets, measured support, GoogLeNet replica."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from onnx_builders import GraphBuilder

from semdict_onnx._receptive_field import Box, layer_fields_table, receptive_fields
from semdict_onnx.errors import ModelFormatError, UnknownLayerError

SIZE = 32


def positive(*shape: int, seed: int = 0) -> np.ndarray:
    """Weights in [0.5, 1): with inputs >= 0 nothing cancels, so support = receptive field."""
    return np.random.default_rng(seed).uniform(0.5, 1.0, shape).astype(np.float32)


def build_net(tmp_path, pool: str):
    """A net exercising strides, SAME/explicit/VALID pads, dilation, Pad, Concat, 1x3 kernels."""
    g = GraphBuilder(SIZE, SIZE)
    c1 = g.conv("image_nchw", "c1", positive(2, 3, 3, 3, seed=1), pads=[1, 1, 1, 1])
    p1 = g.node(pool, [c1], "p1", kernel_shape=[2, 2], strides=[2, 2])
    g.layer("early", p1, 2)
    c2 = g.conv(p1, "c2", positive(2, 2, 5, 5, seed=2), strides=[2, 2], auto_pad="SAME_UPPER")
    c3 = g.conv(c2, "c3", positive(2, 2, 3, 3, seed=3), dilations=[2, 2], pads=[2, 2, 2, 2])
    c4 = g.conv(c2, "c4", positive(1, 2, 1, 1, seed=4))
    cat = g.node("Concat", [c3, c4], "cat", axis=1)
    g.layer("late", cat, 3)
    c5 = g.conv(cat, "c5", positive(2, 3, 1, 3, seed=5), strides=[1, 2], pads=[0, 1, 0, 1])
    g.layer("wide", c5, 2)
    g.initializers.append(numpy_helper.from_array(np.array([0, 0, 2, 0, 0, 0, 0, 0]), "pads"))
    padded = g.node("Pad", [p1, "pads"], "padded")
    shifted = g.node(pool, [padded], "pool_valid", kernel_shape=[3, 3], auto_pad="VALID")
    g.layer("shifted", shifted, 2)
    return g.save(tmp_path / f"net_{pool}.onnx")


# Worked by hand, layer by layer: size += (extent - 1) * jump; jump *= stride;
# start += ((extent - 1) / 2 - pad_before) * jump; the input has size 1, jump 1, start 0.5.
HAND = {
    # c1 3x3 pad 1: size 3, start 0.5. p1 2x2 s2: size 3 + 1 = 4, jump 2, start 0.5 + 0.5 = 1.
    "early": dict(size=(4, 4), jump=(2, 2), start=(1.0, 1.0), grid=(16, 16)),
    # c2 5x5 s2 SAME_UPPER on 16: 8 out, total pad 7*2 + 5 - 16 = 3, before 1:
    #   size 4 + 4*2 = 12, jump 4, start 1 + (2 - 1)*2 = 3.
    # c3 3x3 dilation 2 (extent 5) pad 2: size 12 + 4*4 = 28, start 3 + (2 - 2)*4 = 3.
    # c4 1x1: size 12, same centres; the concat covers both: 28.
    "late": dict(size=(28, 28), jump=(4, 4), start=(3.0, 3.0), grid=(8, 8)),
    # c5 1x3 stride (1, 2) pads 0/1: rows unchanged; cols size 28 + 2*4 = 36, jump 8, start 3.
    "wide": dict(size=(28, 36), jump=(4, 8), start=(3.0, 3.0), grid=(8, 4)),
    # Pad 2 rows on top: start 1 - 2*2 = -3 (rows only). 3x3 VALID: size 4 + 2*2 = 8,
    #   start -3 + 1*2 = -1 (rows), 1 + 1*2 = 3 (cols); 18 - 2 = 16 rows, 16 - 2 = 14 cols.
    "shifted": dict(size=(8, 8), jump=(2, 2), start=(-1.0, 3.0), grid=(16, 14)),
}


@pytest.mark.parametrize("pool", ["MaxPool", "AveragePool"])
def test_fields_match_the_hand_computation(tmp_path, pool):
    fields = receptive_fields(build_net(tmp_path, pool))
    assert list(fields) == list(HAND)
    for name, expected in HAND.items():
        field = fields[name]
        got = dict(size=field.size, jump=field.jump, start=field.start, grid=field.grid)
        assert got == expected, name
        assert field.input_size == (SIZE, SIZE)


def test_fields_match_the_measured_support_of_each_position(tmp_path):
    """Feed one lit pixel at a time through a linear positive net: what each position sees."""
    path = build_net(tmp_path, "AveragePool")
    fields = receptive_fields(path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probes = np.zeros((SIZE * SIZE, SIZE, SIZE, 3), np.float32)
    probes[
        np.arange(SIZE * SIZE), np.arange(SIZE * SIZE) // SIZE, np.arange(SIZE * SIZE) % SIZE
    ] = 1
    outputs = dict(zip(list(HAND), session.run(list(HAND), {"image": probes}), strict=True))
    for name, out in outputs.items():
        seen = (out > 0).any(axis=3).reshape(SIZE, SIZE, *out.shape[1:3])  # pixel y, x, row, col
        field = fields[name]
        exact = 0
        for row in range(out.shape[1]):
            for col in range(out.shape[2]):
                ys, xs = np.nonzero(seen[:, :, row, col])
                box = field.input_box(row, col)
                for low, high, pixels in ((box.left, box.right, xs), (box.top, box.bottom, ys)):
                    support = (pixels.min(), pixels.max() + 1)
                    if 0 <= low and high <= SIZE:
                        exact += 1
                        assert support == (low, high), (name, row, col)
                    else:  # at the border, padding taps (and dilation gaps) may see less
                        assert low <= support[0] and support[1] <= high, (name, row, col)
        assert exact > 0, name


def test_boxes_scale_to_the_original_image_and_clip(tmp_path):
    field = receptive_fields(build_net(tmp_path, "MaxPool"), ["late"])["late"]
    assert field.input_box(2, 5) == Box(left=3 + 20 - 14, top=3 + 8 - 14, right=37, bottom=25)
    # The runtime stretches the whole image to 32x32: a 64 x 96 (w x h) image scales by 2 and 3.
    assert field.image_box(2, 5, (64, 96)) == Box(18, 0, 64, 75)
    assert field.image_box(0, 0, (64, 96)) == Box(0, 0, 34, 51)
    # Boxes never leave the image and never collapse, even for a 1-pixel image.
    assert field.image_box(7, 7, (1, 1)) == Box(0, 0, 1, 1)


def test_other_input_sizes_move_same_padding(tmp_path):
    path = build_net(tmp_path, "MaxPool")
    fields = receptive_fields(path, ["late"], input_size=(36, 40))
    late = fields["late"]
    # p1: 18 x 20; c2 SAME s2 on 18: total 8*2 + 5 - 18 = 3 -> before 1; on 20: 9*2+5-20 = 3.
    assert late.grid == (9, 10) and late.start == (3.0, 3.0) and late.size == (28, 28)
    assert late.input_size == (36, 40)


def test_unknown_layer_and_unfollowable_graphs_are_refused(tmp_path):
    path = build_net(tmp_path, "MaxPool")
    with pytest.raises(UnknownLayerError, match="unknown layer 'nope'"):
        receptive_fields(path, ["nope"])

    g = GraphBuilder(SIZE, SIZE)
    g.layer("mixed", g.node("Einsum", ["image_nchw"], "summed", equation="nchw->nchw"), 3)
    with pytest.raises(
        ModelFormatError, match="layer 'mixed'.*Einsum node .summed.*not one the walker.*crop"
    ):
        receptive_fields(g.save(tmp_path / "einsum.onnx"))

    g = GraphBuilder(SIZE, SIZE)
    g.layer("ident", g.node("Identity", ["image_nchw"], "same"), 3)
    model = onnx.load(g.save(tmp_path / "plain.onnx"))
    del model.metadata_props[:]
    with pytest.raises(ModelFormatError, match="no 'semdict_onnx' metadata"):
        receptive_fields(model)
    helper.set_model_props(model, {"semdict_onnx": "{}"})
    with pytest.raises(ModelFormatError, match="metadata"):
        receptive_fields(model)

    not_onnx = tmp_path / "junk.onnx"
    not_onnx.write_bytes(b"\x00junk" * 10)
    with pytest.raises(ModelFormatError, match="not a readable ONNX model"):
        receptive_fields(not_onnx)


def test_table_lists_each_layer(tmp_path):
    table = layer_fields_table(receptive_fields(build_net(tmp_path, "MaxPool")))
    assert "| late | 8 x 8 | 28 | 4 | 3 |" in table
    assert "| wide | 8 x 4 | 28 x 36 | 4 x 8 | 3 |" in table
    assert "| shifted | 16 x 14 | 8 | 2 | -1 x 3 |" in table


# GoogLeNet by hand (facts file): conv2d0 7x7 s2 -> size 7, jump 2; maxpool0 3x3 s2 -> 11, 4;
# conv2d1 1x1; conv2d2 3x3 -> 19; maxpool1 3x3 s2 -> 27, jump 8. mixed3a's widest branch is
# the 5x5: 27 + 4*8 = 59. Each later module adds 4 * jump through its 5x5 branch:
# mixed3b 91; maxpool4 3x3 s2 -> 107, jump 16; mixed4a 171, 4b 235, 4c 299, 4d 363, 4e 427;
# maxpool10 -> 459, jump 32; mixed5a 587, 5b 715.
# Centres at 224 with TF SAME padding (pad before = total // 2): conv2d0 total 5, before 2:
# 0.5 + (3 - 2) = 1.5; maxpool0 total 1, before 0: 1.5 + 1*2 = 3.5; conv2d2 centred: 3.5;
# maxpool1: 3.5 + 1*4 = 7.5; maxpool4: 7.5 + 1*8 = 15.5; maxpool10: 15.5 + 16 = 31.5.
GOOGLENET = {
    "mixed3a": (59, 8, 7.5, 28),
    "mixed3b": (91, 8, 7.5, 28),
    "mixed4a": (171, 16, 15.5, 14),
    "mixed4b": (235, 16, 15.5, 14),
    "mixed4c": (299, 16, 15.5, 14),
    "mixed4d": (363, 16, 15.5, 14),
    "mixed4e": (427, 16, 15.5, 14),
    "mixed5a": (587, 32, 31.5, 7),
    "mixed5b": (715, 32, 31.5, 7),
}


def test_googlenet_replica_fields_match_the_hand_computation(replica_model):
    fields = receptive_fields(replica_model)
    assert list(fields) == list(GOOGLENET)
    for name, (size, jump, start, grid) in GOOGLENET.items():
        field = fields[name]
        assert (field.size, field.jump, field.start, field.grid) == (
            (size, size),
            (jump, jump),
            (start, start),
            (grid, grid),
        ), name
