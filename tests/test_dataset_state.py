"""Dataset states merge exactly: the laws that let blocks be computed anywhere, in any order.

Random blocks of activations (values on a coarse grid, so top lists have ties to break) are
turned into partial states, which must merge associatively and commutatively into exactly
the state one pass over all of them computes; a state merged with itself (a retried block)
is itself, and states sharing only some images are refused. The parts are checked against
answers computed here independently: the maximum, the exact mean (with fractions), the
nearest-rank quantiles (within the stated bound), and the sample's vectors.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from semdict_onnx._activation_sample import ActivationSample
from semdict_onnx._channel_stats import QUANTILE_RELATIVE_ERROR, ChannelStats
from semdict_onnx._checkpoint import Checkpoint
from semdict_onnx._dataset_state import DatasetState, StateKind
from semdict_onnx._top_examples import TopExamples
from semdict_onnx.errors import CheckpointError, ExamplesError

ROWS, COLS, CHANNELS = 3, 4, 6
KIND = StateKind(
    layer="mixed9z",
    channels=CHANNELS,
    layer_channels=CHANNELS,
    examples_per_channel=3,
    basis="neurons",
    model="0123456789abcdef",
    sample_size=25,
    seed=5,
)


def random_blocks(seed: int, blocks: int = 6) -> list[tuple[list[str], np.ndarray, list[str]]]:
    """Blocks of (image ids, activations [n, ROWS, COLS, CHANNELS], skipped ids)."""
    rng = np.random.default_rng(seed)
    out, number = [], 0
    for _ in range(blocks):
        count = int(rng.integers(1, 6))
        ids = [f"photos/{number + i:04d}.jpg" for i in range(count)]
        acts = rng.integers(-8, 20, (count, ROWS, COLS, CHANNELS)).astype(np.float32) / 4
        # Half the channels on a grid (ties to break), half continuous (sums that round).
        acts[..., CHANNELS // 2 :] = rng.normal(0, 1e3, (count, ROWS, COLS, CHANNELS // 2))
        skipped = [f"photos/broken-{number}.jpg"] if rng.random() < 0.5 else []
        number += count
        out.append((ids, acts, skipped))
    return out


def state_of(blocks, kind: StateKind = KIND) -> DatasetState:
    """One state folded over `blocks` in order, one update per block."""
    state = DatasetState(kind)
    for ids, acts, skipped in blocks:
        state.update(acts, ids)
        for name in skipped:
            state.skip(name, f"{name} is not an image PIL can read")
    return state


@pytest.mark.parametrize("seed", range(4))
def test_merges_in_any_order_and_grouping_equal_one_pass_over_the_union(seed):
    blocks = random_blocks(seed)
    one_pass = state_of(blocks)
    parts = [state_of([block]) for block in blocks]
    rng = np.random.default_rng(seed)
    for _ in range(4):
        order = rng.permutation(len(parts))
        shuffled = [parts[i] for i in order]
        assert DatasetState.merged(shuffled) == one_pass
        cut = int(rng.integers(1, len(parts)))
        left, right = DatasetState.merged(shuffled[:cut]), DatasetState.merged(shuffled[cut:])
        assert right.merge(left) == left.merge(right) == one_pass
    a, b, c = (DatasetState.merged(parts[i : i + 2]) for i in (0, 2, 4))
    assert a.merge(b).merge(c) == a.merge(b.merge(c)) == one_pass
    # The whole union in one update (one batch) gives the same state as well.
    ids = [name for block in blocks for name in block[0]]
    single = DatasetState(KIND)
    single.update(np.concatenate([block[1] for block in blocks]), ids)
    for name in (name for block in blocks for name in block[2]):
        single.skip(name, f"{name} is not an image PIL can read")
    assert single == one_pass


def test_a_state_merged_with_itself_is_itself_and_partial_overlaps_are_refused():
    blocks = random_blocks(11)
    a, b = state_of(blocks[:3]), state_of(blocks[3:])
    assert a.merge(a) == a
    assert DatasetState.merged([a, b, a, b]) == a.merge(b)  # repeated blocks count once
    overlapping = state_of(blocks[2:4])
    with pytest.raises(ExamplesError, match="more than one of the states merged"):
        a.merge(overlapping)
    with pytest.raises(ExamplesError, match="given more than once"):
        a.update(blocks[0][1][:1], blocks[0][0][:1])


def test_each_part_is_idempotent_where_it_should_be():
    blocks = random_blocks(3)
    state = state_of(blocks)
    top = state.top.merge(state.top)
    assert [top.examples(c) for c in range(CHANNELS)] == [
        state.top.examples(c) for c in range(CHANNELS)
    ]
    sample = state.sample.merge(state.sample)
    assert np.array_equal(sample.keys, state.sample.keys)
    assert np.array_equal(sample.vectors, state.sample.vectors)
    # Counts add up on their own: only the covered-image rule makes the whole state idempotent.
    assert state.stats.merge(state.stats).count == 2 * state.stats.count
    assert np.array_equal(state.stats.merge(state.stats).maximum, state.stats.maximum)


def test_states_of_different_scans_do_not_merge():
    other = StateKind(**{**KIND.__dict__, "basis": "f" * 16})
    with pytest.raises(ExamplesError, match="basis: 'neurons' vs 'ffff"):
        DatasetState(KIND).merge(DatasetState(other))


def test_statistics_against_answers_computed_here():
    rng = np.random.default_rng(0)
    maxima = rng.gamma(2.0, 3.0, (997, 4)).astype(np.float32)
    maxima[:, 1] -= 4  # negative observations too
    maxima[:300, 2] = 0  # and many exact zeros
    stats = ChannelStats(4)
    for chunk in np.array_split(maxima, 7):
        stats.update(chunk)
    assert stats.count == 997
    assert np.array_equal(stats.maximum, maxima.max(axis=0))
    exact_means = [float(sum(map(Fraction, maxima[:, c].tolist())) / 997) for c in range(4)]
    assert stats.mean().tolist() == exact_means  # correctly rounded, not merely close
    ordered = np.sort(maxima, axis=0)
    for q in (0.0, 0.1, 0.5, 0.9, 0.99, 1.0):
        exact = ordered[max(1, int(np.ceil(q * 997))) - 1]
        error = np.abs(stats.quantile(q).astype(np.float64) - exact)
        assert (error <= QUANTILE_RELATIVE_ERROR * np.abs(exact) + 1e-30).all(), (q, error)
    assert np.array_equal(stats.quantile(1.0), maxima.max(axis=0))
    summary = stats.summary()
    assert summary["images"] == 997 and set(summary["quantiles"]) == {"0.5", "0.9", "0.99"}
    assert summary["quantile_relative_error"] == QUANTILE_RELATIVE_ERROR == 2**-8


def test_the_sample_holds_the_activations_of_the_positions_it_names():
    blocks = random_blocks(7)
    state = state_of(blocks)
    sample = state.sample
    positions = set(zip(sample.image_ids, sample.rows, sample.cols, strict=True))
    assert len(sample) == KIND.sample_size == len(positions)
    by_id = {name: acts[i] for ids, acts, _ in blocks for i, name in enumerate(ids)}
    for name, row, col, vector in zip(
        sample.image_ids, sample.rows, sample.cols, sample.vectors, strict=True
    ):
        assert np.array_equal(vector, by_id[name][row, col])
    assert sample.images_seen == state.images_seen == len(by_id)
    # Fewer positions than asked for: the sample is all of them.
    small = ActivationSample(1000, CHANNELS, "mixed9z")
    small.update(blocks[0][1], blocks[0][0])
    assert len(small) == blocks[0][1].shape[0] * ROWS * COLS
    with pytest.raises(ExamplesError, match=rf"a sample takes activations \[N, H, W, {CHANNELS}\]"):
        small.update(np.zeros((1, ROWS, COLS, CHANNELS + 1), np.float32), ["x"])


def test_the_sample_is_uniform_over_positions():
    acts = np.zeros((6, ROWS, COLS, CHANNELS), np.float32)
    ids = [f"image {i}" for i in range(6)]
    counts = np.zeros(6 * ROWS * COLS)
    draws = 600
    for seed in range(draws):
        sample = ActivationSample(8, CHANNELS, "x", seed=seed)
        sample.update(acts, ids)
        where = [ids.index(i) * ROWS * COLS + r * COLS + c for i, r, c in zip(
            sample.image_ids, sample.rows, sample.cols, strict=True
        )]  # fmt: skip
        counts[where] += 1
    expected = draws * 8 / len(counts)  # 66.7 per position
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 120, chi2  # 71 degrees of freedom: p < 1e-4 beyond 120


def test_top_examples_keep_one_copy_of_a_repeated_position():
    top = TopExamples(2, 3, "x")
    acts = np.zeros((1, 1, 2, 2), np.float32)
    acts[0, 0, :, 0] = [3, 1]
    top.update(acts, ["a"])
    doubled = top.merge(top)
    assert [(e.value, e.col) for e in doubled.examples(0)] == [(3.0, 0), (1.0, 1)]


def test_bytes_and_checkpoint_round_trips_are_exact(tmp_path):
    state = state_of(random_blocks(5))
    assert DatasetState.from_bytes(state.to_bytes()) == state
    state.save(tmp_path / "state.npz")
    assert DatasetState.load(tmp_path / "state.npz") == state
    store = Checkpoint(tmp_path / "ckpt", KIND)
    assert store.load() is None
    store.save(state)
    assert store.load() == state
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["dataset-state.npz"]
    other = StateKind(**{**KIND.__dict__, "layer": "mixed3a"})
    with pytest.raises(CheckpointError, match="is of another scan .*layer: 'mixed3a' vs"):
        Checkpoint(tmp_path / "ckpt", other).load()
    (tmp_path / "ckpt" / "dataset-state.npz").write_bytes(b"half a file")
    with pytest.raises(CheckpointError, match="not a readable dataset state"):
        store.load()


def test_merging_many_states_at_once_equals_merging_them_pairwise():
    parts = [state_of([block]) for block in random_blocks(9, blocks=8)]
    pairwise = parts[0]
    for part in parts[1:]:
        pairwise = pairwise.merge(part)
    assert DatasetState.merged(parts) == pairwise
    for order in itertools.islice(itertools.permutations(range(8)), 0, 40000, 9973):
        assert DatasetState.merged([parts[i] for i in order]) == pairwise
