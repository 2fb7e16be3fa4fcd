"""Input sizes: the size rule, the model card's allowed sizes, and grids that follow them.

The replica of GoogLeNet (tests/conftest.py) is exported with a symbolic height and width, so
it runs at any size; the tiny model (tests/tiny_model.py) stands for a file exported before
that, fixed at its one size. A wide photo made of two different halves shows rows and columns
are never swapped: the grid is 14 x 28 at mixed4d, and the columns whose receptive field lies
inside one half equal that half's own activations.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tiny_model
from PIL import Image
from semdict_helpers import reference_top_k

from semdict_onnx import load_model
from semdict_onnx._images import check_input_size, input_size_for, to_batch
from semdict_onnx._metadata import InputInfo, ModelInfo
from semdict_onnx._pipeline import semantic_dict
from semdict_onnx._receptive_field import receptive_fields
from semdict_onnx.errors import ImageError, ModelFormatError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "semdict_onnx" / "examples"
LAYER = "mixed4d"
TOLERANCE = 1e-4  # of a layer's largest activation, as in the export parity tests
BAD_SIZES = [True, 0, -5, 2.5, "224", (224,), (224, 0), (224.0, 320), [1, 2, 3], {"h": 1}]


def two_halves(path: Path, height: int = 224, side: int = 224) -> Path:
    """A wide photo: the cat on the left half, the coffee cup on the right (height x 2*side)."""
    left = Image.open(EXAMPLES / "chelsea.jpg").convert("RGB").resize((side, height))
    right = Image.open(EXAMPLES / "coffee.jpg").convert("RGB").resize((side, height))
    wide = Image.new("RGB", (2 * side, height))
    wide.paste(left, (0, 0))
    wide.paste(right, (side, 0))
    wide.save(path)
    return path


def assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal up to float32 rounding between two runs of ONNX Runtime at different sizes."""
    assert actual.shape == expected.shape
    scale = float(np.abs(expected).max())
    assert scale > 0
    assert float(np.abs(actual - expected).max()) <= TOLERANCE * scale


# --- the size rule (images.input_size_for) ----------------------------------------------------


@pytest.mark.parametrize(
    ("image", "size", "multiple", "expected"),
    [
        ((480, 640), 224, 32, (224, 288)),  # 298.7 rounds to 288
        ((640, 480), 224, 32, (288, 224)),  # portrait: rows and columns stay where they are
        ((500, 500), 224, 32, (224, 224)),  # square: S x S
        ((224, 448), 224, 32, (224, 448)),
        ((100, 101), 224, 32, (224, 224)),  # the longer side never drops below S
        ((300, 450), 200, 32, (200, 288)),  # S itself need not be a multiple
        ((300, 450), 200, 1, (200, 300)),
        ((480, 640), (100, 300), 32, (100, 300)),  # a pair is taken as it is
        ((480, 640), None, 32, (7, 9)),  # None: the default
    ],
)
def test_input_size_for(image, size, multiple, expected):
    assert input_size_for(image, size, (7, 9), multiple) == expected


@pytest.mark.parametrize("size", BAD_SIZES)
def test_bad_sizes_say_what_a_size_is(size):
    with pytest.raises(ImageError, match=r"size must be None \(the model's default\), a positive"):
        check_input_size(size)


def test_numpy_integers_are_sizes():
    assert check_input_size(np.int64(224)) == 224
    assert check_input_size((np.int32(224), 320)) == (224, 320)


# --- the model card ---------------------------------------------------------------------------


def old_style_json() -> str:
    """The tiny model's card as a file written before variable sizes existed (no new keys)."""
    raw = json.loads(tiny_model.tiny_info().to_json())
    for key in ("variable_size", "min_side", "stride"):
        del raw["input"][key]
    return json.dumps(raw)


def test_old_cards_load_as_fixed_size_and_refuse_other_sizes():
    info = ModelInfo.from_json(old_style_json()).input
    assert (info.variable_size, info.default_size) == (False, (20, 16))
    assert info.check_size(20, 16) == (20, 16)
    with pytest.raises(ImageError) as caught:
        info.check_size(40, 32)
    message = str(caught.value)
    assert "this model takes only 20x16 images, not 40x32" in message
    assert "Re-export it with this version's `python scripts/export.py`" in message


def test_variable_size_cards_check_sides_and_round_trip():
    info = InputInfo("image", 224, 224, variable_size=True, min_side=32, stride=32)
    assert info.check_size(224, 320) == (224, 320)
    assert info.check_size(np.int64(33), 32) == (33, 32)
    with pytest.raises(ImageError, match=r"16x320 is too small: .* at least 32 pixels"):
        info.check_size(16, 320)
    with pytest.raises(ImageError, match="two integers"):
        info.check_size(224.0, 320)
    card = tiny_model.tiny_info()
    card = ModelInfo(**{**card.__dict__, "input": info})
    assert ModelInfo.from_json(card.to_json()).input == info


# --- the replica at other sizes -----------------------------------------------------------------


def test_the_replica_takes_any_size_from_its_stride(replica_model):
    info = replica_model.info.input
    assert (info.variable_size, info.min_side, info.stride) == (True, 32, 32)
    assert replica_model.input_size == (224, 224)
    assert replica_model.input_size_for((480, 640), 224) == (224, 288)


def test_activations_at_the_default_size_stretch_every_image_to_it(replica_model):
    photo = EXAMPLES / "coffee.jpg"
    default = replica_model.activations(photo, [LAYER, "softmax2"])
    assert default[LAYER].shape == (1, 14, 14, 528)
    squashed = to_batch(photo, 224, 224)  # the whole photo stretched to 224x224, as always
    np.testing.assert_array_equal(default[LAYER], replica_model.activations(squashed, LAYER)[LAYER])
    exact = replica_model.activations(photo, [LAYER, "softmax2"], size=(224, 224))
    for name in default:
        np.testing.assert_array_equal(exact[name], default[name])
    square = semantic_dict(photo, LAYER, replica_model, size=(224, 224))  # asked for: square
    assert (square.rows, square.cols, square.input_size) == (14, 14, (224, 224))
    np.testing.assert_array_equal(square.values, reference_top_k(default[LAYER][0], 4)[1])


def test_a_dictionary_keeps_the_images_aspect_ratio_by_default(replica_model):
    """Issue 10: a wide photo was stretched to 224x224 by default (size=None)."""
    photo = EXAMPLES / "coffee.jpg"  # 512x341 px: 224 high, 336.3 -> 352 (a multiple of 32) wide
    assert replica_model.input_size_for((341, 512)) == (224, 352)
    assert replica_model.input_size_for((341, 512), 224) == (224, 352)  # size=None == size=224
    assert replica_model.input_size_for((600, 600)) == (224, 224)  # a square one: as before
    kept = replica_model.activations(photo, [LAYER, "softmax2"], size=224)
    assert kept[LAYER].shape == (1, 14, 22, 528)
    sd = semantic_dict(photo, LAYER, replica_model)
    assert (sd.rows, sd.cols, sd.input_size) == (14, 22, (224, 352))
    channels, values = reference_top_k(kept[LAYER][0], 4)
    np.testing.assert_array_equal(sd.channels, channels)
    np.testing.assert_array_equal(sd.values, values)
    tall = semantic_dict(photo.parent / "chelsea.jpg", LAYER, replica_model, size=None)
    assert (tall.rows, tall.cols) == (14, 22)  # 451x300 px, also wider than high
    rotated = Image.open(photo).transpose(Image.Transpose.ROTATE_90)  # 341x512: tall
    upright = semantic_dict(rotated, LAYER, replica_model)
    assert (upright.rows, upright.cols, upright.input_size) == (22, 14, (352, 224))


def test_an_exact_size_sets_every_layer_and_the_class_output(replica_model):
    images = [EXAMPLES / "chelsea.jpg", EXAMPLES / "rocket.jpg"]
    outputs = replica_model.activations(
        images, ["mixed3a", LAYER, "mixed5b", "softmax2"], size=(224, 320)
    )
    assert outputs["mixed3a"].shape == (2, 28, 40, 256)
    assert outputs[LAYER].shape == (2, 14, 20, 528)
    assert outputs["mixed5b"].shape == (2, 7, 10, 1024)
    assert outputs["softmax2"].shape == (2, 1008)  # one row per image, not one per pooled cell
    np.testing.assert_allclose(outputs["softmax2"].sum(axis=1), 1.0, rtol=1e-5)


def test_a_wide_image_never_swaps_rows_and_columns(replica_model, tmp_path):
    wide = two_halves(tmp_path / "wide.png")
    acts = replica_model.activations(wide, LAYER, size=224)[LAYER][0]
    assert acts.shape == (14, 28, 528)  # 14 rows down, 28 columns across
    halves = replica_model.activations(
        [Image.open(wide).crop((0, 0, 224, 224)), Image.open(wide).crop((224, 0, 448, 224))],
        LAYER,
        size=224,
    )[LAYER]
    assert halves.shape == (2, 14, 14, 528)
    # Columns whose receptive field stays inside one half see exactly that half's pixels.
    field = receptive_fields(replica_model, [LAYER], (224, 448))[LAYER]
    assert field.grid == (14, 28)
    left = [col for col in range(28) if field.input_box(0, col).right <= 224]
    right = [col for col in range(28) if field.input_box(0, col).left >= 224]
    assert left and right, "the field is too wide for the test to say anything"
    for col in left:
        assert_close(acts[:, col], halves[0][:, col])
    for col in right:
        assert_close(acts[:, col], halves[1][:, col - 14])
    # The halves differ, so a swap or a mirror would show.
    assert not np.allclose(halves[0][:, left[0]], halves[1][:, left[0]], rtol=0.1)

    sd = semantic_dict(wide, LAYER, replica_model, size=224)
    assert (sd.rows, sd.cols, sd.input_size) == (14, 28, (224, 448))
    assert sd.image.size == (448, 224)
    channels, values = reference_top_k(acts, 4)
    for row, col in [(0, 0), (13, 27), (0, 27), (13, 0), (3, 20)]:
        expected = list(zip(channels[row, col].tolist(), values[row, col].tolist(), strict=True))
        assert sd.entries(row, col) == expected, (row, col)
    data = sd.to_dict()
    assert (data["rows"], data["cols"], data["input_size"]) == (14, 28, [224, 448])
    assert np.shape(data["total_activation"]) == (14, 28)
    assert "grid 14x28 (rows x cols) at input 224x448" in repr(sd)


def test_a_tall_image_gets_more_rows(replica_model, tmp_path):
    tall = tmp_path / "tall.png"
    Image.open(two_halves(tmp_path / "wide.png")).transpose(Image.Transpose.ROTATE_90).save(tall)
    acts = replica_model.activations(tall, LAYER, size=224)[LAYER]
    assert acts.shape == (1, 28, 14, 528)
    sd = semantic_dict(tall, LAYER, replica_model, size=224, basis="nmf", n_groups=3)
    assert (sd.rows, sd.cols) == (28, 14)


def test_own_patches_are_cut_at_the_size_the_image_went_in(replica_model, tmp_path):
    wide = two_halves(tmp_path / "wide.png")
    sd = semantic_dict(wide, LAYER, replica_model, size=224, basis="nmf", n_groups=4)
    field = receptive_fields(replica_model, [LAYER], (224, 448))[LAYER]
    half = min(field.size[0], 224 // 2) / 2  # crops are capped at half the shorter side
    examples = [e for s in sd.views[0].spritemap.manifest["sprites"] for e in s["examples"]]
    assert examples
    for example in examples:
        box = field.input_box(example["row"], example["col"])
        centre_x, centre_y = (box.left + box.right) / 2, (box.top + box.bottom) / 2
        assert example["box"] == [
            max(np.floor(centre_x - half), 0),
            max(np.floor(centre_y - half), 0),
            min(np.ceil(centre_x + half), 448),
            min(np.ceil(centre_y + half), 224),
        ]


def test_a_list_of_mixed_aspect_ratios_is_refused_at_one_shorter_side(replica_model, tmp_path):
    wide = two_halves(tmp_path / "wide.png")
    square = Image.open(wide).crop((0, 0, 224, 224))
    with pytest.raises(ImageError) as caught:
        replica_model.activations([square, wide], LAYER, size=224)
    message = str(caught.value)
    assert "image 1 of 2: it is 448x224 px and goes into the model at 224x448" in message
    assert "first image went in at 224x224: one call runs one input size" in message
    assert "size=(height, width)" in message
    # Images of one aspect ratio share a call (and a batch), the same as one by one.
    two = replica_model.activations([wide, wide], LAYER, size=224, batch_size=1)[LAYER]
    assert two.shape == (2, 14, 28, 528)
    np.testing.assert_array_equal(two[0], two[1])


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (16, "16x32 is too small"),  # the photo is 451x300: 16 rows, 24 rounded up to 32
        ((224, 20), "224x20 is too small"),
        ("large", "size must be None"),
    ],
)
def test_sizes_the_replica_cannot_take(replica_model, size, message):
    with pytest.raises(ImageError, match=message):
        replica_model.activations(EXAMPLES / "chelsea.jpg", LAYER, size=size)
    with pytest.raises(ImageError, match=message):
        semantic_dict(EXAMPLES / "chelsea.jpg", LAYER, replica_model, size=size)


# --- a file exported before variable sizes ---------------------------------------------------


def test_an_old_fixed_size_file_runs_its_size_and_refuses_others(tmp_path):
    model = load_model(tiny_model.write_tiny_model(tmp_path / "old.onnx", old_style_json()))
    image = np.random.default_rng(0).integers(0, 256, (40, 32, 3), dtype=np.uint8)
    assert model.activations(image, "late")["late"].shape == (1, 5, 4, 12)
    # A shorter side that gives the model's own size is that size.
    assert model.activations(image, "late", size=16)["late"].shape == (1, 5, 4, 12)
    for size in [(40, 32), 32]:
        with pytest.raises(ImageError, match="exported with a fixed input size. Re-export"):
            model.activations(image, "late", size=size)
    with pytest.raises(ImageError, match="only 20x16 images, not 40x32"):
        semantic_dict(image, "late", model, size=(40, 32))
    # A dictionary's default on a fixed-size model: that size, whatever the image's shape.
    wide = np.random.default_rng(1).integers(0, 256, (30, 90, 3), dtype=np.uint8)
    sd = semantic_dict(wide, "late", model)
    assert (sd.rows, sd.cols, sd.input_size) == (5, 4, (20, 16))
    assert model.input_size_for((30, 90)) == (20, 16)
    expected = model.activations(wide, "late")["late"][0]  # stretched to 20x16
    np.testing.assert_array_equal(sd.values, reference_top_k(expected, 4)[1])
    with pytest.raises(ImageError, match="only 20x16 images, not 16x48"):
        semantic_dict(wide, "late", model, size=16)  # a shorter side asked for is checked


def test_a_card_claiming_sizes_its_graph_does_not_take_is_refused(tmp_path):
    card = tiny_model.tiny_info()
    lying = ModelInfo(
        **{**card.__dict__, "input": InputInfo(**{**card.input.__dict__, "variable_size": True})}
    )
    path = tiny_model.write_tiny_model(tmp_path / "lying.onnx", lying.to_json())
    with pytest.raises(ModelFormatError, match="is fixed at .*re-export it"):
        load_model(path)


# --- the command line --------------------------------------------------------------------------


def semdict(*args: object) -> subprocess.CompletedProcess[str]:
    """Run `semdict ARGS...` as a user does."""
    return subprocess.run(
        [sys.executable, "-m", "semdict_onnx", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def test_the_command_line_takes_a_size(replica_model_path, tmp_path):
    wide = two_halves(tmp_path / "wide.png")
    out = tmp_path / "pages"
    common = ["--model", replica_model_path, "--out", out, "--tables", "json", "--no-progress"]
    for size in (["--size", "224"], []):  # the default keeps the aspect ratio too
        result = semdict(wide, *size, *common)
        assert result.returncode == 0, result.stderr
        data = json.loads((out / "wide-mixed4d.json").read_text("utf-8"))
        assert (data["rows"], data["cols"], data["input_size"]) == (14, 28, [224, 448])
        (out / "wide-mixed4d.json").unlink()
    result = semdict(wide, "--size", "160x320", "--layer", "mixed5b", *common)
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "wide-mixed5b.json").read_text("utf-8"))
    assert (data["rows"], data["cols"], data["input_size"]) == (5, 10, [160, 320])


def test_the_command_line_refuses_bad_sizes(replica_model_path, tmp_path):
    bad = semdict(EXAMPLES / "chelsea.jpg", "--out", tmp_path, "--size", "224x", "--model", "x")
    assert bad.returncode == 2 and "HEIGHTxWIDTH such as 224x320, not '224x'" in bad.stderr
    small = semdict(
        EXAMPLES / "chelsea.jpg", "--out", tmp_path, "--size", "8", "--model", replica_model_path
    )
    assert small.returncode == 1 and "8x8 is too small" in small.stderr
    assert list(tmp_path.iterdir()) == []
