"""Receptive-field boxes and dataset-example crops where rows and columns differ everywhere.

Non-square model inputs, non-square kernels and strides, and images stretched by different
factors across and down: a box that mixes up x and y (scale, jump, start or size) lands
somewhere else. Every expected box is worked out by hand from the layer's field, in comments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_builders import BLUE, GREEN, RED, GraphBuilder, build_planted_model
from PIL import Image

from semdict_onnx._dataset_examples import build_spritemap
from semdict_onnx._model import load_model
from semdict_onnx._pipeline import semantic_dict
from semdict_onnx._receptive_field import Box, receptive_fields

HEIGHT, WIDTH = 24, 40


def build_oblong_net(path: Path) -> Path:
    """A 24 x 40 (h x w) input, a 3x5 conv with strides (2, 4), then a 2x3 max pool (2, 1)."""
    g = GraphBuilder(HEIGHT, WIDTH)
    weights = np.full((2, 3, 3, 5), 0.1, np.float32)
    c1 = g.conv("image_nchw", "c1", weights, strides=[2, 4], pads=[1, 2, 1, 2])
    g.layer("oblong", c1, 2)
    p1 = g.node("MaxPool", [c1], "p1", kernel_shape=[2, 3], strides=[2, 1])
    g.layer("pooled", p1, 2)
    return g.save(path)


# By hand (size += (extent - 1) * jump; jump *= stride; start += ((extent - 1) / 2 - pad) * jump,
# from size 1, jump 1, start 0.5 on each axis of the input):
# oblong rows: 3x conv pad 1 stride 2 -> size 3, jump 2, start 0.5 + (1 - 1) = 0.5;
#   grid floor((24 + 2 - 3) / 2) + 1 = 12.
# oblong cols: 5x conv pad 2 stride 4 -> size 5, jump 4, start 0.5 + (2 - 2) = 0.5;
#   grid floor((40 + 4 - 5) / 4) + 1 = 10.
# pooled rows: 2x pool stride 2 -> size 3 + 1 * 2 = 5, jump 4, start 0.5 + 0.5 * 2 = 1.5; 6 rows.
# pooled cols: 3x pool stride 1 -> size 5 + 2 * 4 = 13, jump 4, start 0.5 + 1 * 4 = 4.5; 8 cols.
FIELDS = {
    "oblong": dict(size=(3, 5), jump=(2, 4), start=(0.5, 0.5), grid=(12, 10)),
    "pooled": dict(size=(5, 13), jump=(4, 4), start=(1.5, 4.5), grid=(6, 8)),
}


@pytest.fixture(scope="module")
def oblong_path(tmp_path_factory) -> Path:
    return build_oblong_net(tmp_path_factory.mktemp("oblong") / "oblong.onnx")


def test_oblong_fields_match_the_hand_computation(oblong_path):
    fields = receptive_fields(oblong_path)
    for name, expected in FIELDS.items():
        field = fields[name]
        got = dict(size=field.size, jump=field.jump, start=field.start, grid=field.grid)
        assert got == expected, name
        assert field.input_size == (HEIGHT, WIDTH)


def test_input_boxes_keep_rows_and_columns_apart(oblong_path):
    fields = receptive_fields(oblong_path)
    pooled, oblong = fields["pooled"], fields["oblong"]
    # pooled (2, 3): centre y 1.5 + 2 * 4 = 9.5, x 4.5 + 3 * 4 = 16.5; half 2.5 tall, 6.5 wide.
    assert pooled.input_box(2, 3) == Box(left=10, top=7, right=23, bottom=12)
    # pooled (0, 0): centre (1.5, 4.5): y -1 .. 4, x -2 .. 11 (unclipped in input pixels).
    assert pooled.input_box(0, 0) == Box(left=-2, top=-1, right=11, bottom=4)
    # oblong (11, 9): centre y 0.5 + 22 = 22.5, x 0.5 + 36 = 36.5; half 1.5 tall, 2.5 wide.
    assert oblong.input_box(11, 9) == Box(left=34, top=21, right=39, bottom=24)
    # oblong (1, 2): centre y 2.5, x 8.5.
    assert oblong.input_box(1, 2) == Box(left=6, top=1, right=11, bottom=4)


# Image boxes: input pixels scale by (image width / 40) across and (image height / 24) down,
# then left and top are floored, right and bottom ceiled, and all clipped to the image.
IMAGE_BOXES = [
    # A wide 100 x 48 image: x * 2.5, y * 2.
    ("pooled", 2, 3, (100, 48), Box(25, 14, 58, 24)),  # 10*2.5, 7*2, 23*2.5 -> 58, 12*2
    ("pooled", 0, 0, (100, 48), Box(0, 0, 28, 8)),  # -5 -> 0, -2 -> 0, 27.5 -> 28, 8
    ("pooled", 5, 7, (100, 48), Box(65, 38, 98, 48)),  # x 26..39, y 19..24
    ("oblong", 11, 9, (100, 48), Box(85, 42, 98, 48)),  # 34*2.5, 21*2, 97.5 -> 98, 48
    # A tall 30 x 90 image: x * 0.75, y * 3.75.
    ("pooled", 2, 3, (30, 90), Box(7, 26, 18, 45)),  # 7.5 -> 7, 26.25 -> 26, 17.25 -> 18, 45
    ("oblong", 1, 2, (30, 90), Box(4, 3, 9, 15)),  # 4.5 -> 4, 3.75 -> 3, 8.25 -> 9, 15
    # The model's own size: nothing scales.
    ("pooled", 2, 3, (40, 24), Box(10, 7, 23, 12)),
]


@pytest.mark.parametrize(("layer", "row", "col", "image_size", "expected"), IMAGE_BOXES)
def test_image_boxes_scale_across_and_down_separately(
    oblong_path, layer, row, col, image_size, expected
):
    field = receptive_fields(oblong_path, [layer])[layer]
    assert field.image_box(row, col, image_size) == expected


def test_another_non_square_input_size_scales_by_its_own_height_and_width(oblong_path):
    field = receptive_fields(oblong_path, ["pooled"], input_size=(32, 24))["pooled"]
    # Taller than wide now: oblong 16 x 6, pooled floor((16 - 2) / 2) + 1 = 8 rows, 6 - 2 = 4 cols.
    assert field.grid == (8, 4) and field.input_size == (32, 24)
    assert field.input_box(2, 3) == Box(10, 7, 23, 12)  # no SAME padding: the same geometry
    # A 100 x 48 image on a 24 x 32 (w x h) input: x * 100 / 24, y * 1.5.
    # 10 * 4.1667 = 41.67 -> 41; 7 * 1.5 = 10.5 -> 10; 23 * 4.1667 = 95.8 -> 96; 12 * 1.5 = 18.
    assert field.image_box(2, 3, (100, 48)) == Box(41, 10, 96, 18)


# --- dataset-example crops on a non-square planted model --------------------------------------

ROWS, COLS = 4, 12  # the planted colour channels on a 16 x 48 input: one position per block


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("wide") / "wide.onnx"
    return load_model(build_planted_model(path, rows=ROWS, cols=COLS))


PURE = {RED: (255, 0, 0), GREEN: (0, 255, 0), BLUE: (0, 0, 255)}
# Each place is valid one way round only on a 4 x 12 grid.
PLACES = {RED: (1, 9), GREEN: (3, 2), BLUE: (0, 11)}


def blocks_photo(path: Path, width: int, height: int, places: dict[int, tuple[int, int]]) -> Path:
    """A black width x height photo with pure colour blocks (one block = 1/12 wide, 1/4 tall)."""
    array = np.zeros((height, width, 3), np.uint8)
    bw, bh = width // COLS, height // ROWS
    for channel, (row, col) in places.items():
        array[row * bh : (row + 1) * bh, col * bw : (col + 1) * bw] = PURE[channel]
    Image.fromarray(array).save(path)
    return path


# The field of "blocks" is block (row, col) itself: input x 4col .. 4col + 4, y 4row .. 4row + 4.
CROPS = [
    # 96 x 64: x * 2, y * 4 -> block (row, col) is [8col, 16row, 8col + 8, 16row + 16].
    (96, 64, {RED: [72, 16, 80, 32], GREEN: [16, 48, 24, 64], BLUE: [88, 0, 96, 16]}),
    # 24 x 128: x * 0.5, y * 8 -> [2col, 32row, 2col + 2, 32row + 32].
    (24, 128, {RED: [18, 32, 20, 64], GREEN: [4, 96, 6, 128], BLUE: [22, 0, 24, 32]}),
]


@pytest.mark.parametrize(("width", "height", "boxes"), CROPS)
def test_dataset_example_crops_are_the_planted_blocks(wide_model, tmp_path, width, height, boxes):
    folder = tmp_path / "photos"
    folder.mkdir()
    for channel, place in PLACES.items():
        blocks_photo(folder / f"{channel}.png", width, height, {channel: place})
    spritemap = build_spritemap(folder, "blocks", wide_model, sprite_size=16, progress=False)
    for channel, box in boxes.items():
        entry = spritemap.manifest["sprites"][channel]
        assert (entry["row"], entry["col"]) == PLACES[channel], channel
        assert entry["examples"][0]["box"] == box, channel
        assert (np.asarray(spritemap.sprite(channel)) == PURE[channel]).all(), channel


def test_crop_size_is_square_in_model_pixels_and_stretches_with_the_image(wide_model, tmp_path):
    photo = blocks_photo(tmp_path / "red.png", 96, 64, {RED: PLACES[RED]})
    spritemap = build_spritemap([photo], "blocks", wide_model, 16, progress=False, crop_size=8)
    # Block (1, 9) is centred at input (x 38, y 6); 8 px around it is x 34..42, y 2..10,
    # in the photo x * 2 and y * 4: [68, 8, 84, 40].
    assert spritemap.manifest["sprites"][RED]["examples"][0]["box"] == [68, 8, 84, 40]
    sprite = np.asarray(spritemap.sprite(RED))  # red in the middle half, black around it
    assert (sprite[5:11, 5:11] == PURE[RED]).all()
    assert (sprite[:3] == 0).all() and (sprite[:, :3] == 0).all()


def test_own_patches_of_nmf_groups_crop_the_planted_blocks(wide_model, tmp_path):
    photo = blocks_photo(tmp_path / "three.png", 96, 64, PLACES)
    sd = semantic_dict(photo, "blocks", wide_model, 2, basis="nmf", n_groups=3)
    view = sd.views[0]
    found = {}
    for group, entry in enumerate(view.spritemap.manifest["sprites"]):
        channel = int(np.argmax(view.basis.components[group]))  # each group is one colour
        found[channel] = entry["examples"][0]["box"]
        assert (entry["row"], entry["col"]) == PLACES[channel]
        assert (np.asarray(view.spritemap.sprite(group)) == PURE[channel]).all()
    assert found == CROPS[0][2]
