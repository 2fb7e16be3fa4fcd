"""Upper bounds on sizes (docs/spritemaps.md, docs/runtime.md): refused before anything of
that size is allocated or any image is read, with the limit named, in the API and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_runs import semdict
from semdict_helpers import picture
from tiny_model import tiny_info, write_tiny_model

from semdict_onnx._dataset_examples import build_spritemap
from semdict_onnx._limits import MAX_INPUT_PIXELS
from semdict_onnx._metadata import InputInfo
from semdict_onnx._model import load_model
from semdict_onnx.errors import ImageError, ModelFormatError, OptionError


class NeverRead:
    """Images that fail the test if anything starts reading them."""

    def __iter__(self):
        raise AssertionError("the images were read before the sizes were checked")

    def __len__(self) -> int:
        return 4


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"per_row": 100000}, "the spritemap grid would be 9600000x96 = 921,600,000 pixels, over "
                              "the limit of 89,478,485 pixels (Pillow's MAX_IMAGE_PIXELS"),
        ({"sprite_size": 100000}, "a sprite size of 100000 px is over the limit of 1024 px"),
    ],
)  # fmt: skip
def test_build_spritemap_refuses_oversized_grids_before_reading_an_image(
    tiny_path, options, message
):
    """Bug: --per-row 100000 used 6.5 GB for 4 images and wrote a PNG the library then
    refused to load; --sprite-size 100000 ended in MemoryError."""
    with pytest.raises(OptionError) as caught:
        build_spritemap(NeverRead(), "late", tiny_path, **options)
    assert message in str(caught.value)


def test_input_sizes_over_the_limit_are_refused_before_any_allocation(tiny_path):
    """Bug: --size 20000 ended in MemoryError."""
    info = InputInfo("x", 224, 224, variable_size=True, min_side=32, stride=32)
    assert info.check_size(2048, 2048) == (2048, 2048)
    with pytest.raises(ImageError, match=r"2049x2048 pixels is over the limit of 4,194,304"):
        info.check_size(2049, 2048)
    with pytest.raises(ImageError, match="over the limit"):
        info.check_size(20000, 20000)
    assert MAX_INPUT_PIXELS == 2048 * 2048


def test_an_extreme_panorama_at_a_shorter_side_is_refused(replica_model):
    """A 1 x 200 strip at shorter side 224 would go in at 224 x 44800 pixels."""
    strip = np.zeros((1, 200, 3), np.uint8)
    with pytest.raises(ImageError, match="224x44800 pixels is over the limit of 4,194,304"):
        replica_model.activations(strip, "mixed4d", size=224)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["spritemap", "--images", "{photo}", "--out", "{tmp}/m.png", "--per-row", "100000"],
         "over the limit of 89,478,485 pixels"),
        (["spritemap", "--images", "{photo}", "--out", "{tmp}/m.jpg", "--per-row", "700",
          "--sprite-size", "100"], "a JPEG side is at most 65535 pixels; save it as .png"),
        (["spritemap", "--images", "{photo}", "--out", "{tmp}/m.png", "--sprite-size", "100000"],
         "over the limit of 1024 px"),
        (["{photo}", "--out", "{tmp}/pages", "--size", "20000"], "over the limit of 4,194,304"),
    ],
    ids=["per-row", "jpeg side", "sprite size", "input size"],
)  # fmt: skip
def test_the_cli_names_the_limit_in_one_line(replica_model_path, tmp_path, args, message):
    photo = tmp_path / "photo.png"
    picture(60, 40).save(photo)
    filled = [a.format(photo=photo, tmp=tmp_path) for a in args]
    result = semdict(*filled, "--layer", "mixed4d", "--model", replica_model_path)
    assert result.returncode == 1
    assert message in result.stderr and len(result.stderr.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_a_model_card_whose_default_size_is_over_the_limit_does_not_load(tmp_path):
    card = tiny_info().to_json().replace('"height": 20', '"height": 300000')
    path = write_tiny_model(tmp_path / "huge.onnx", metadata=card)
    with pytest.raises(ModelFormatError, match="over the limit of 4,194,304 pixels"):
        load_model(path)
