"""Dataset-example spritemaps on a model with planted channels, plus the mergeable top lists."""

from __future__ import annotations

import gc
import json
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from onnx_builders import (
    BLOCK,
    BLUE,
    DEAD,
    GREEN,
    MODEL_SIZE,
    RED,
    WHITE,
    build_planted_model,
    square,
)
from PIL import Image

import semdict_onnx
from semdict_onnx._dataset_examples import (
    build_spritemap,
    scan_examples,
    spritemap_from_examples,
)
from semdict_onnx._image_scan import PREFETCH_BATCHES
from semdict_onnx._model import load_model
from semdict_onnx._spritemap import BLANK_COLOUR, Spritemap
from semdict_onnx._top_examples import Example, TopExamples
from semdict_onnx.errors import ImageError, SemdictError


@pytest.fixture(scope="module")
def planted_model(tmp_path_factory):
    return load_model(build_planted_model(tmp_path_factory.mktemp("planted") / "planted.onnx"))


def save_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def planted_folder(tmp_path):
    """Photos (64x64: the model sees them at 32x32) with coloured squares at known blocks."""
    folder = tmp_path / "photos"
    for i, (row, col, level) in enumerate([(1, 1, 120), (6, 3, 200), (0, 7, 90)]):
        save_png(folder / f"red_{i}.png", square(MODEL_SIZE, row, col, (level, 0, 0)))
    save_png(folder / "nested" / "deeper" / "red_best.png", square(MODEL_SIZE, 5, 2, (250, 0, 0)))
    save_png(folder / "green.png", square(MODEL_SIZE, 3, 6, (0, 240, 0)))
    save_png(folder / "blue.png", square(MODEL_SIZE, 7, 0, (0, 0, 230)))
    save_png(folder / "white.jpg", square(MODEL_SIZE, 4, 4, (255, 255, 255)))
    return folder


def test_planted_channels_come_from_exactly_the_planted_places(planted_model, planted_folder):
    spritemap = build_spritemap(
        planted_folder, "blocks", planted_model, sprite_size=16, progress=False
    )
    sprites = spritemap.manifest["sprites"]
    expected = {
        RED: ("nested/deeper/red_best.png", 5, 2, (250, 0, 0)),
        GREEN: ("green.png", 3, 6, (0, 240, 0)),
        BLUE: ("blue.png", 7, 0, (0, 0, 230)),
        WHITE: ("white.jpg", 4, 4, None),
    }
    for channel, (name, row, col, colour) in expected.items():
        entry = sprites[channel]
        assert entry["source"] == str(planted_folder / name), channel
        assert (entry["row"], entry["col"], entry["dead"]) == (row, col, False), channel
        side = 2 * BLOCK  # the block in original pixels (the photos are twice the model size)
        assert entry["examples"][0]["box"] == [
            col * side,
            row * side,
            (col + 1) * side,
            (row + 1) * side,
        ]
        sprite = np.asarray(spritemap.sprite(channel))
        assert sprite.shape == (16, 16, 3)
        if colour is not None:  # the crop is exactly the planted square, nothing around it
            assert (sprite == colour).all(), channel
        else:  # JPEG: white within compression noise
            assert sprite.min() > 235
    red_acts = planted_model.activations(sprites[RED]["source"], ["blocks"])["blocks"]
    assert sprites[RED]["activation"] == red_acts[0, 5, 2, RED] == red_acts[..., RED].max()
    assert spritemap.manifest["images_seen"] == 7
    assert spritemap.manifest["skipped_count"] == 0


def test_crop_size_overrides_the_field_around_the_same_centre(planted_model, planted_folder):
    spritemap = build_spritemap(
        planted_folder, "blocks", planted_model, sprite_size=16, progress=False, crop_size=8
    )
    red = spritemap.manifest["sprites"][RED]
    # Block (5, 2) is centred at model pixel (22, 10); 8 px around it, times 2 in the photo.
    assert red["examples"][0]["box"] == [12, 36, 28, 52]
    assert spritemap.manifest["crop_size"] == [8, 8]
    assert spritemap.manifest["receptive_field"]["size"] == [4, 4]
    sprite = np.asarray(spritemap.sprite(RED))  # the red block in the middle, black around it
    assert (sprite[5:11, 5:11] == (250, 0, 0)).all()
    assert (sprite[:3] == 0).all() and (sprite[:, -3:] == 0).all()
    with pytest.raises(SemdictError, match="crop_size must be a positive integer, not 0"):
        build_spritemap(planted_folder, "blocks", planted_model, progress=False, crop_size=0)


def test_a_channel_that_never_fires_is_dead_and_blank(planted_model, planted_folder):
    spritemap = build_spritemap(
        planted_folder, "blocks", planted_model, sprite_size=8, progress=False
    )
    manifest = spritemap.manifest
    assert manifest["dead_channels"] == [DEAD]
    assert manifest["sprites"][DEAD] == {
        "channel": DEAD,
        "dead": True,
        "activation": 0.0,
        "source": None,
        "row": None,
        "col": None,
        "examples": [],
    }
    assert (np.asarray(spritemap.sprite(DEAD)) == BLANK_COLOUR).all()
    for channel in (RED, GREEN, BLUE, WHITE):
        assert not (np.asarray(spritemap.sprite(channel)) == BLANK_COLOUR).all()


def test_spritemap_layout_and_manifest_round_trip(planted_model, planted_folder, tmp_path):
    spritemap = build_spritemap(
        planted_folder, "blocks", planted_model, sprite_size=12, per_row=2, progress=False
    )
    assert (spritemap.per_row, spritemap.sprite_size, spritemap.channels) == (2, 12, 5)
    assert spritemap.image().size == (24, 36) and spritemap.layer == "blocks"
    spritemap.validate_for("blocks", 5)
    path = spritemap.save(tmp_path / "out" / "blocks.png")
    loaded = Spritemap.load(path)
    loaded.validate_for("blocks", 5)
    assert loaded.manifest["sprites"] == json.loads(json.dumps(spritemap.manifest["sprites"]))
    assert loaded.manifest["model"]["network"] == "TestNet"
    assert loaded.manifest["crop_size"] == [4, 4]
    assert loaded.manifest["receptive_field"] == {
        "size": [4, 4],
        "jump": [4, 4],
        "start": [2.0, 2.0],
    }
    assert (np.asarray(loaded.image()) == np.asarray(spritemap.image())).all()
    with pytest.raises(SemdictError, match="pictures layer 'blocks', not 'other'"):
        loaded.validate_for("other", 5)


def test_several_examples_per_channel_share_the_sprite_best_first(planted_model, planted_folder):
    spritemap = build_spritemap(
        planted_folder,
        "blocks",
        planted_model,
        sprite_size=16,
        examples_per_channel=4,
        progress=False,
    )
    red = spritemap.manifest["sprites"][RED]["examples"]
    assert [(e["row"], e["col"]) for e in red] == [(5, 2), (6, 3), (1, 1), (0, 7)]
    values = [e["activation"] for e in red]
    assert values == sorted(values, reverse=True)
    sprite = np.asarray(spritemap.sprite(RED))  # a 2x2 mosaic of 8 px tiles, best top left
    assert (sprite[:8, :8] == (250, 0, 0)).all() and (sprite[:8, 8:] == (200, 0, 0)).all()
    assert (sprite[8:, :8] == (120, 0, 0)).all() and (sprite[8:, 8:] == (90, 0, 0)).all()
    green = spritemap.manifest["sprites"][GREEN]["examples"]  # resampling bleeds a little
    assert (green[0]["row"], green[0]["col"]) == (3, 6)
    assert all(abs(e["row"] - 3) <= 1 and abs(e["col"] - 6) <= 1 for e in green)
    assert all(e["source"].endswith("green.png") for e in green)


def test_channels_with_fewer_winners_than_asked_leave_blank_tiles(planted_model):
    at_model_size = [square(MODEL_SIZE, 3, 6, (0, 240, 0), scale=1)]  # no resampling, no bleed
    spritemap = build_spritemap(
        at_model_size, "blocks", planted_model, 16, examples_per_channel=4, progress=False
    )
    assert len(spritemap.manifest["sprites"][GREEN]["examples"]) == 1
    green = np.asarray(spritemap.sprite(GREEN))
    assert (green[:8, :8] == (0, 240, 0)).all()
    assert (green[8:] == BLANK_COLOUR).all() and (green[:8, 8:] == BLANK_COLOUR).all()


def tied_batches(seed: int, count: int, channels: int = 6):
    """Activation batches full of exact ties (small integers, many zeros and negatives)."""
    rng = np.random.default_rng(seed)
    for b in range(count):
        acts = rng.integers(-3, 4, (5, 3, 4, channels)).astype(np.float32)
        acts[:, :, :, 0] = -1.0  # a dead channel
        yield acts, [f"img{seed}-{b}-{i}" for i in range(5)]


def test_top_examples_merge_equals_the_union_exactly():
    batches = list(tied_batches(1, 6)) + list(tied_batches(2, 5))
    for k in (1, 3):
        union = TopExamples(6, k, "L")
        for acts, ids in batches:
            union.update(acts, ids)
        left, right = TopExamples(6, k, "L"), TopExamples(6, k, "L")
        for acts, ids in batches[:4]:
            left.update(acts, ids)
        for acts, ids in reversed(batches[4:]):  # order does not matter either
            right.update(acts, ids)
        assert left.merge(right) == union
        assert right.merge(left) == union
        assert union.images_seen == 55 and union.dead == [0]
        for channel in range(1, 6):
            examples = union.examples(channel)
            assert len(examples) == k and all(e.value > 0 for e in examples)
            everything = sorted(
                (-acts[i, r, c, channel], ids[i], r, c)
                for acts, ids in batches
                for i, r, c in np.ndindex(acts.shape[:3])
                if acts[i, r, c, channel] > 0
            )[:k]
            assert examples == [Example(-v, image_id, r, c) for v, image_id, r, c in everything]


def test_top_examples_serialize_exactly_and_refuse_mismatches(tmp_path):
    state = TopExamples(6, 2, "L")
    for acts, ids in tied_batches(3, 3):
        state.update(acts * np.float32(0.1234567), ids)
    path = state.save(tmp_path / "part.json")
    assert TopExamples.load(path) == state
    assert TopExamples.load(path).values.tobytes() == state.values.tobytes()
    with pytest.raises(SemdictError, match=r"cannot merge top examples of layer 'M' \(6 channels"):
        state.merge(TopExamples(6, 2, "M"))
    with pytest.raises(SemdictError, match=r"activations \[N, H, W, 6\] for N image ids"):
        state.update(np.zeros((2, 3, 3, 5), np.float32), ["a", "b"])
    with pytest.raises(SemdictError, match=r"activations \[N, H, W, 6\] for N image ids"):
        state.update(np.zeros((2, 3, 3, 6), np.float32), ["a"])
    (tmp_path / "bad.json").write_text('{"kind": "something else"}')
    with pytest.raises(SemdictError, match="not version-1 top examples"):
        TopExamples.load(tmp_path / "bad.json")
    with pytest.raises(SemdictError, match="cannot read top examples"):
        TopExamples.load(tmp_path / "missing.json")


def test_split_scans_merge_into_the_spritemap_of_the_union(planted_model, planted_folder):
    files = sorted(p for p in planted_folder.rglob("*") if p.is_file())
    whole = scan_examples(files, "blocks", planted_model, examples_per_channel=2, progress=False)
    first = scan_examples(files[:3], "blocks", planted_model, 2, batch_size=2, progress=False)
    second = scan_examples(files[3:], "blocks", planted_model, 2, progress=False)
    merged = first.merge(second)
    assert merged == whole
    from_parts = spritemap_from_examples(merged, planted_model, sprite_size=16)
    direct = build_spritemap(
        files, "blocks", planted_model, 16, examples_per_channel=2, progress=False
    )
    assert (np.asarray(from_parts.image()) == np.asarray(direct.image())).all()
    assert from_parts.manifest["sprites"] == direct.manifest["sprites"]


def test_in_memory_winners_cannot_be_reread_later(planted_model):
    arrays = [square(MODEL_SIZE, 2, 2, (200, 0, 0))]
    top = scan_examples(arrays, "blocks", planted_model, progress=False)
    assert top.examples(RED)[0].image_id == "image #0"
    with pytest.raises(ImageError, match="cannot re-read winning image 'image #0'"):
        spritemap_from_examples(top, planted_model, sprite_size=8)
    built = build_spritemap(arrays, "blocks", planted_model, sprite_size=8, progress=False)
    assert (np.asarray(built.sprite(RED)) == (200, 0, 0)).all()


def many_images(count: int):
    """A generator of small in-memory images: noise with a red square somewhere."""
    rng = np.random.default_rng(7)
    for i in range(count):
        image = rng.integers(0, 60, (MODEL_SIZE, MODEL_SIZE, 3), np.uint8)
        row, col = divmod(i % 64, 8)
        image[row * BLOCK : (row + 1) * BLOCK, col * BLOCK : (col + 1) * BLOCK, 0] = 100 + i % 150
        yield image


def peak_memory(model, count: int) -> tuple[int, TopExamples]:
    """Peak traced Python/numpy memory of a scan over `count` streamed images, and its state."""
    gc.collect()
    tracemalloc.start()
    try:
        top = scan_examples(many_images(count), "blocks", model, 2, batch_size=32, progress=False)
        return tracemalloc.get_traced_memory()[1], top
    finally:
        tracemalloc.stop()


def test_memory_stays_bounded_over_many_images(planted_model):
    peak_memory(planted_model, 50)  # first-use allocations (imports, caches) out of the way
    small_peak, small = peak_memory(planted_model, 200)
    large_peak, large = peak_memory(planted_model, 2000)
    assert large.images_seen == 2000
    for name in ("values", "image_ids", "rows", "cols"):
        assert getattr(large, name).shape == getattr(small, name).shape == (5, 2)
    # The scan decodes up to PREFETCH_BATCHES batches ahead in a thread: whether a peak
    # catches them all queued depends on thread timing, not on the number of images.
    queued = (PREFETCH_BATCHES + 1) * 32 * MODEL_SIZE * MODEL_SIZE * 3 * 4  # float32 batches
    assert large_peak < small_peak * 1.25 + 200_000 + queued, (small_peak, large_peak)
    # The winner is the reddest square of all 2000 (exact winners, ties included:
    # test_dataset_example_oracles.py).
    best = large.examples(RED)[0]
    assert best.value == pytest.approx((249 - 30) / 255, abs=0.15)


def test_building_keeps_only_winning_images(planted_model, monkeypatch):
    """build_spritemap on a stream holds shrunk copies of winners' images only."""
    import semdict_onnx._dataset_examples as module

    largest = []
    real_kept = module._Kept

    class CountingKept(real_kept):
        instances = 0

        def __init__(self, *args):
            super().__init__(*args)
            CountingKept.instances += 1

    monkeypatch.setattr(module, "_Kept", CountingKept)
    real_update = TopExamples.update

    def update(self, acts, image_ids):
        real_update(self, acts, image_ids)
        largest.append(len(self.referenced_ids()))

    monkeypatch.setattr(TopExamples, "update", update)
    spritemap = build_spritemap(many_images(300), "blocks", planted_model, 8, progress=False)
    assert max(largest) <= 5  # channels x examples per channel
    assert spritemap.manifest["images_seen"] == 300


def test_bad_folders_explain_or_summarise(planted_model, planted_folder, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageError, match=r"no images in folder .*empty.*found 0 other files"):
        build_spritemap(empty, "blocks", planted_model, progress=False)
    (empty / "notes.txt").write_text("hello")
    with pytest.raises(ImageError, match="found 1 other files"):
        build_spritemap(empty, "blocks", planted_model, progress=False)

    (planted_folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (planted_folder / "notes.txt").write_text("not an image")
    good = save_png(tmp_path / "cut.png", square(MODEL_SIZE, 1, 1, (9, 9, 9)))
    (planted_folder / "cut.png").write_bytes(good.read_bytes()[:60])
    with pytest.warns(UserWarning, match=r"7 images read; skipped 3 that could not be read"):
        spritemap = build_spritemap(planted_folder, "blocks", planted_model, 8, progress=False)
    skipped = spritemap.manifest["skipped"]
    assert spritemap.manifest["skipped_count"] == 3
    names = sorted(item["source"].rsplit("/", 1)[1] for item in skipped)
    assert names == ["broken.jpg", "cut.png", "notes.txt"]
    assert spritemap.manifest["sprites"][RED]["source"].endswith("red_best.png")

    with pytest.raises(ImageError, match="none of the images could be read.*missing.png"):
        build_spritemap([tmp_path / "missing.png"], "blocks", planted_model, progress=False)


def test_lists_iterables_and_single_images(planted_model, planted_folder, tmp_path):
    red = str(planted_folder / "nested" / "deeper" / "red_best.png")
    mixed = [red, tmp_path / "absent.png", Image.open(planted_folder / "green.png"), b"junk"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spritemap = build_spritemap(iter(mixed), "blocks", planted_model, 8, progress=False)
    assert "skipped 2" in str(caught[0].message) and "image #3" in str(caught[0].message)
    sprites = spritemap.manifest["sprites"]
    assert sprites[RED]["source"] == red and sprites[GREEN]["source"] == "image #2"
    single = build_spritemap(red, "blocks", planted_model, 8, progress=False)
    assert single.manifest["images_seen"] == 1 and single.manifest["dead_channels"] == [1, 2, 3, 4]
    with pytest.raises(ImageError, match="cannot read images from a int"):
        build_spritemap(5, "blocks", planted_model, progress=False)
    with pytest.raises(SemdictError, match="unknown layer 'nope'"):
        build_spritemap(red, "nope", planted_model, progress=False)
    with pytest.raises(SemdictError, match="sprite_size must be a positive integer"):
        build_spritemap(red, "blocks", planted_model, sprite_size=0, progress=False)


def test_progress_bar_counts_images_per_second(planted_model, planted_folder, capsys):
    build_spritemap(planted_folder, "blocks", planted_model, 8, batch_size=3)
    err = capsys.readouterr().err
    assert "dataset examples blocks" in err and "7/7" in err and "img/s" in err


def test_replica_spritemap_from_shipped_examples_loads_and_validates(replica_model, tmp_path):
    examples = sorted(
        str(p) for p in (Path(semdict_onnx.__file__).parent / "examples").glob("*.jpg")
    )
    assert len(examples) >= 3
    spritemap = build_spritemap(examples, "mixed4d", replica_model, sprite_size=32, progress=False)
    path = spritemap.save(tmp_path / "mixed4d.jpg")
    loaded = Spritemap.load(path)
    loaded.validate_for("mixed4d", replica_model.layers["mixed4d"])
    assert loaded.manifest["model"]["replica"] is True
    assert loaded.manifest["receptive_field"]["size"] == [363, 363]
    assert loaded.manifest["crop_size"] == [112, 112]  # capped at half the 224 px input
    live = [s for s in loaded.manifest["sprites"] if not s["dead"]]
    assert live and all(s["source"] in examples for s in live)
