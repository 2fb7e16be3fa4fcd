"""Dataset examples' running top-k (TopExamples) against brute force over every position.

The activations here are distinct floats (no two values equal anywhere), so a running top list
that drops or misorders one candidate cannot hide behind a tie. Images come in several grid
shapes, in batches smaller and larger than k, split into parts that are scanned in different
orders and merged in different groupings. The streamed planted-colour scan is checked winner
by winner (value, image id, row, column) against the model's activations of every image.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from onnx_builders import BLOCK, MODEL_SIZE, RED, build_planted_model

from semdict_onnx._dataset_examples import scan_examples
from semdict_onnx._model import load_model
from semdict_onnx._top_examples import Example, TopExamples

CHANNELS = 7
GRIDS = [(1, 2), (2, 3), (3, 1), (1, 1)]

Image = tuple[str, np.ndarray]  # (image id, activations [rows, cols, channels])


def distinct_images(count: int, seed: int) -> list[Image]:
    """`count` images of varied grids whose activations are all different float32 values.

    The first two are 1x1 and 1x2; then grids come in runs of up to 11 images, so batches of one
    grid can be large. About a third of the values are negative; channel 0 never fires, channel
    1 fires at one position only, so some channels have fewer winners than k.
    """
    rng = np.random.default_rng(seed)
    shapes: list[tuple[int, int]] = [(1, 1), (1, 2)]  # batches of 1 and 2 positions
    while len(shapes) < count:
        shapes += [GRIDS[rng.integers(len(GRIDS))]] * int(rng.integers(1, 12))
    shapes = shapes[:count]
    total = sum(rows * cols for rows, cols in shapes) * CHANNELS
    pool = ((rng.permutation(total) - total // 3) / 7.0).astype(np.float32)
    assert len(np.unique(pool)) == total
    images, used = [], 0
    for index, (rows, cols) in enumerate(shapes):
        size = rows * cols * CHANNELS
        acts = pool[used : used + size].reshape(rows, cols, CHANNELS).copy()
        used += size
        acts[..., 0] = -1.0 - np.abs(acts[..., 0])  # dead, and still distinct
        acts[..., 1] = -np.abs(acts[..., 1]) - 0.5
        images.append((f"s{seed}-img{index:03d}", acts))
    images[count // 2][1][0, 0, 1] = 1e6  # channel 1's only positive value
    return images


def brute_force(images: Sequence[Image], channel: int, k: int) -> list[Example]:
    """The k best positive values of `channel` over every position of every image."""
    everything = sorted(
        (-float(acts[row, col, channel]), image_id, row, col)
        for image_id, acts in images
        for row, col in np.ndindex(acts.shape[:2])
        if acts[row, col, channel] > 0
    )
    return [Example(-value, image_id, row, col) for value, image_id, row, col in everything[:k]]


def batches(images: Sequence[Image], size: int) -> Iterator[tuple[np.ndarray, list[str]]]:
    """Runs of up to `size` consecutive images of one grid, as (activations [N, H, W, C], ids)."""
    for _, run in itertools.groupby(images, key=lambda item: item[1].shape):
        run = list(run)
        for start in range(0, len(run), size):
            chunk = run[start : start + size]
            yield np.stack([acts for _, acts in chunk]), [image_id for image_id, _ in chunk]


def scanned(images: Sequence[Image], k: int, batch_size: int) -> TopExamples:
    """The TopExamples state after folding in `images` batch by batch."""
    state = TopExamples(CHANNELS, k, "L")
    for acts, ids in batches(images, batch_size):
        state.update(acts, ids)
    return state


def assert_matches_brute_force(state: TopExamples, images: Sequence[Image], k: int) -> None:
    """Every channel's winners are exactly brute force's; so are the dead channels and the count."""
    assert state.images_seen == len(images)
    for channel in range(CHANNELS):
        assert state.examples(channel) == brute_force(images, channel, k), (channel, k)
    assert state.dead == [c for c in range(CHANNELS) if not brute_force(images, c, 1)]
    assert 0 in state.dead


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("batch_size", [1, 2, 4, 64])
def test_running_top_k_equals_brute_force_over_distinct_values(k, batch_size):
    """Batches of one 1x1 image (1 position) up to whole runs of a grid (dozens of positions)."""
    images = distinct_images(40, seed=k * 10 + batch_size)
    positions = [acts.size // CHANNELS for acts, _ in batches(images, batch_size)]
    assert min(positions) < k < max(positions)
    state = scanned(images, k, batch_size)
    assert_matches_brute_force(state, images, k)
    assert len(state.examples(1)) == 1 and state.examples(1)[0].value == 1e6


@pytest.mark.parametrize("k", [2, 3, 5])
def test_parts_scanned_in_any_order_merge_in_any_grouping_into_brute_force(k):
    images = distinct_images(60, seed=100 + k)
    rng = np.random.default_rng(k)
    shuffled = [images[i] for i in rng.permutation(len(images))]
    whole = scanned(images, k, 3)
    assert_matches_brute_force(whole, images, k)
    assert scanned(shuffled, k, 5) == whole  # the order of the images does not matter
    assert scanned(images[::-1], k, 64) == whole
    cuts = sorted(rng.choice(np.arange(1, len(images)), 3, replace=False))
    parts = [shuffled[a:b] for a, b in itertools.pairwise([0, *cuts, len(images)])]
    states = [scanned(part, k, size) for part, size in zip(parts, [1, 2, 7, 64], strict=True)]
    for state, part in zip(states, parts, strict=True):
        assert_matches_brute_force(state, part, k)
    a, b, c, d = states
    groupings = [
        a.merge(b).merge(c).merge(d),
        d.merge(c).merge(b).merge(a),
        a.merge(b.merge(c.merge(d))),
        a.merge(c).merge(b.merge(d)),
        (d.merge(a)).merge(c.merge(b)),
    ]
    for merged in groupings:
        assert merged == whole
        assert_matches_brute_force(merged, images, k)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_a_batch_of_fewer_positions_than_k_keeps_all_of_them(k):
    """One 1x1 image per batch, then a single 1x2 image: every positive value is a candidate."""
    images = distinct_images(9, seed=200 + k)
    tiny = [(image_id, acts[:1, :1]) for image_id, acts in images]
    state = scanned(tiny, k, 1)
    assert_matches_brute_force(state, tiny, k)
    pair = [(images[0][0], images[0][1][:1, :1]), (images[1][0], images[1][1][:1, :1])]
    assert_matches_brute_force(scanned(pair, k, 2), pair, k)


# --- the streamed planted-colour scan, winner by winner ---------------------------------------

STREAM = 600
STREAM_BATCH = 32
# Images with the reddest square, identical copies of one another: an exact tie, broken by image
# id as text, where "image #150" comes before "image #7" (not the first in stream order).
BEST_COPIES = (7, 150, 433)


def stream_images() -> list[np.ndarray]:
    """Noise with one red square each (red level by index), the best one copied three times."""
    rng = np.random.default_rng(11)
    images = []
    for i in range(STREAM):
        image = rng.integers(0, 60, (MODEL_SIZE, MODEL_SIZE, 3), np.uint8)
        row, col = divmod((i * 37) % 64, 8)
        level = 100 + i % 140
        image[row * BLOCK : (row + 1) * BLOCK, col * BLOCK : (col + 1) * BLOCK, 0] = level
        images.append(image)
    best = images[BEST_COPIES[0]].copy()
    best[4 * BLOCK : 5 * BLOCK, 2 * BLOCK : 3 * BLOCK] = (250, 0, 0)  # block (4, 2), pure red
    for index in BEST_COPIES:
        images[index] = best.copy()
    return images


@pytest.fixture(scope="module")
def planted_model(tmp_path_factory):
    return load_model(build_planted_model(tmp_path_factory.mktemp("planted") / "planted.onnx"))


def test_streamed_winners_are_exactly_those_of_brute_force(planted_model):
    images = stream_images()
    top = scan_examples(
        iter(images), "blocks", planted_model, 2, batch_size=STREAM_BATCH, progress=False
    )
    every = []  # the model's activations of every image, in the scan's own batches
    for start in range(0, STREAM, STREAM_BATCH):
        acts = planted_model.activations(images[start : start + STREAM_BATCH], "blocks")["blocks"]
        every += [(f"image #{start + i}", a) for i, a in enumerate(acts)]
    assert top.images_seen == STREAM
    for channel in range(5):
        assert top.examples(channel) == brute_force(every, channel, 2), channel
    best = top.examples(RED)  # the tie goes to the first id as text, not in stream order
    winners = [(e.image_id, e.row, e.col) for e in best]
    assert winners == [("image #150", 4, 2), ("image #433", 4, 2)]
    assert best[0].value == best[1].value == max(float(a[..., RED].max()) for _, a in every)
