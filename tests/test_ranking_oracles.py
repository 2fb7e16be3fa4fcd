"""Top-k ranking at GoogLeNet's real shape (14 x 14 x 528) against hand-written orders.

The activations are sparse and ReLU-like: mostly exact zeros, many exact ties, a few values one
float32 step apart. At a few positions every value is planted by hand and the expected channel
lists are written out literally (strongest first, equal values in channel order), for k of 4
(k passes of argmax), 17 and 33 (a sort). Every other position is checked against Python's own
`sorted`, which shares no code with numpy's sorts.
"""

from __future__ import annotations

import numpy as np
import pytest

from semdict_onnx._ranking import top_k_channels

ROWS, COLS, CHANNELS = 14, 14, 528
ABOVE = float(np.nextafter(np.float32(0.75), np.float32(1)))  # one float32 step above 0.75
BELOW = float(np.nextafter(np.float32(0.75), np.float32(0)))  # one float32 step below 0.75


def sparse_background(seed: int = 3) -> np.ndarray:
    """ReLU-like activations: about 70% exact zeros, ties at 0.75 and 2.5, the rest positive."""
    rng = np.random.default_rng(seed)
    acts = np.maximum(rng.normal(0.0, 1.0, (ROWS, COLS, CHANNELS)), 0.0).astype(np.float32)
    acts[rng.random(acts.shape) < 0.45] = 0.0
    acts[rng.random(acts.shape) < 0.05] = np.float32(0.75)
    acts[rng.random(acts.shape) < 0.01] = np.float32(2.5)  # ties near the top of most positions
    return acts


def planted_activations() -> np.ndarray:
    """The background with five positions whose every value is set by hand."""
    acts = sparse_background()
    # (0, 0): nothing fires; every channel is an exact zero.
    acts[0, 0] = 0.0
    # (3, 7): a three-way tie on top, a two-way tie below it, then exact zeros.
    acts[3, 7] = 0.0
    acts[3, 7, [500, 7, 250]] = 2.5
    acts[3, 7, [527, 0]] = 1.0
    acts[3, 7, 100] = 0.5
    # (13, 0): dense ties at 0.75, one value a float32 step above and one a step below.
    acts[13, 0] = 0.75
    acts[13, 0, 300] = 1.0
    acts[13, 0, 400] = ABOVE
    acts[13, 0, 5] = BELOW
    acts[13, 0, [20, 21]] = 0.0
    # (6, 13): four levels by channel modulo 4 (132 channels tied on each), one above them all.
    acts[6, 13] = 0.25 * (np.arange(CHANNELS) % 4)
    acts[6, 13, 17] = 5.0
    # (13, 13): three positive values, in reverse channel order, then zeros.
    acts[13, 13] = 0.0
    acts[13, 13, [10, 9, 8]] = [0.1, 0.2, 0.3]
    return acts


# position -> k -> the expected channels, worked out by hand from planted_activations().
EXPECTED = {
    (0, 0): {
        4: [0, 1, 2, 3],
        17: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
        33: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
             23, 24, 25, 26, 27, 28, 29, 30, 31, 32],
    },
    (3, 7): {
        4: [7, 250, 500, 0],
        17: [7, 250, 500, 0, 527, 100, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12],
        33: [7, 250, 500, 0, 527, 100, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
             18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28],
    },
    (13, 0): {
        4: [300, 400, 0, 1],
        17: [300, 400, 0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        33: [300, 400, 0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 22,
             23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33],
    },
    (6, 13): {
        4: [17, 3, 7, 11],
        17: [17, 3, 7, 11, 15, 19, 23, 27, 31, 35, 39, 43, 47, 51, 55, 59, 63],
        33: [17, 3, 7, 11, 15, 19, 23, 27, 31, 35, 39, 43, 47, 51, 55, 59, 63, 67, 71, 75, 79,
             83, 87, 91, 95, 99, 103, 107, 111, 115, 119, 123, 127],
    },
    (13, 13): {
        4: [8, 9, 10, 0],
        17: [8, 9, 10, 0, 1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 14, 15, 16],
        33: [8, 9, 10, 0, 1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
             23, 24, 25, 26, 27, 28, 29, 30, 31, 32],
    },
}  # fmt: skip

# position -> the expected values of its top 33, strongest first (the first k of them for k).
EXPECTED_VALUES = {
    (0, 0): [0.0] * 33,
    (3, 7): [2.5, 2.5, 2.5, 1.0, 1.0, 0.5] + [0.0] * 27,
    (13, 0): [1.0, ABOVE] + [0.75] * 31,
    (6, 13): [5.0] + [0.75] * 32,
    (13, 13): [0.3, 0.2, 0.1] + [0.0] * 30,
}


@pytest.fixture(scope="module")
def acts() -> np.ndarray:
    return planted_activations()


def test_the_planted_activations_look_like_a_relu_layer(acts):
    assert acts.shape == (ROWS, COLS, CHANNELS) and acts.dtype == np.float32
    assert acts.min() == 0.0
    assert 0.55 < (acts == 0).mean() < 0.8  # mostly exact zeros
    assert (acts == np.float32(0.75)).sum() > 5000  # and plenty of exact ties
    assert ABOVE > 0.75 > BELOW and np.float32(ABOVE) != np.float32(0.75)


@pytest.mark.parametrize("k", [4, 17, 33])
def test_planted_positions_rank_exactly_as_written_by_hand(acts, k):
    channels, values = top_k_channels(acts, k)
    assert channels.shape == values.shape == (ROWS, COLS, k)
    for (row, col), by_k in EXPECTED.items():
        assert channels[row, col].tolist() == by_k[k], (row, col, k)
        expected_values = np.float32(EXPECTED_VALUES[(row, col)][:k])
        assert values[row, col].tolist() == expected_values.tolist(), (row, col, k)


@pytest.mark.parametrize("k", [4, 17, 33])
def test_every_position_agrees_with_pythons_own_sort(acts, k):
    """Ties inside the top k everywhere: Python's sorted() on (-value, channel) as the oracle."""
    channels, values = top_k_channels(acts, k)
    tied_inside = 0
    for row in range(ROWS):
        for col in range(COLS):
            column = acts[row, col].tolist()
            order = sorted(range(CHANNELS), key=lambda c: (-column[c], c))[:k]
            assert channels[row, col].tolist() == order, (row, col, k)
            assert values[row, col].tolist() == [column[c] for c in order], (row, col, k)
            tied_inside += len(set(values[row, col].tolist())) < k
    assert tied_inside >= 100  # the oracle really saw ties within the top k
