"""Bases checked against answers that owe nothing to bases.py: planted factors and exact NNLS.

Other tests compare a dictionary's NMF groups and projections with what `factorize` and
`Basis.project` return (they prove the wiring). Here the expected answers come from elsewhere:
the planted colour model's activations are worked out by hand from its weights, so its NMF
groups must be those colours; projections must satisfy the KKT conditions of non-negative
least squares and equal the exact solution found by trying every active set (nnls_oracle.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from chromium_pages import basis_button, cell, launched, opened, shown
from nnls_oracle import kkt_violation, nnls_by_active_sets, ranked
from onnx_builders import BLOCK, BLUE, GREEN, MODEL_SIZE, RED, WHITE, build_planted_model
from PIL import Image
from tiny_model import write_tiny_model

from semdict_onnx._bases import Basis
from semdict_onnx._model import load_model
from semdict_onnx._nmf import factorize
from semdict_onnx._pipeline import semantic_dict

PURE = {RED: (255, 0, 0), GREEN: (0, 255, 0), BLUE: (0, 0, 255), WHITE: (255, 255, 255)}
PLACES = {RED: (1, 1), GREEN: (1, 6), BLUE: (6, 2), WHITE: (5, 6)}
# From the planted weights (onnx_builders.PLANTED, PLANTED_BIAS) on inputs in [0, 1]: pure red
# gives relu(1 - 0 - 0) = 1 on RED and 0 elsewhere, green and blue likewise; white gives
# relu(1 + 1 + 1 - 2.5) = 0.5 on WHITE and relu(1 - 1 - 1) = 0 on the others; black gives 0.
PLANTED_VALUES = {RED: 1.0, GREEN: 1.0, BLUE: 1.0, WHITE: 0.5}
# Three directions with different offsets, so no position's coefficients tie by symmetry.
GIVEN = np.eye(5, dtype=np.float32)[[RED, BLUE, WHITE]] + np.float32([[0.05], [0.1], [0.02]])
BLACK = [(0, 0), (0, 7), (7, 7), (3, 4)]


def hand_activations() -> np.ndarray:
    """The planted model's "blocks" layer for the four-block photo, worked out by hand."""
    acts = np.zeros((8, 8, 5), np.float32)
    for channel, (row, col) in PLACES.items():
        acts[row, col, channel] = PLANTED_VALUES[channel]
    return acts


@pytest.fixture(scope="module")
def planted_model(tmp_path_factory):
    return load_model(build_planted_model(tmp_path_factory.mktemp("planted") / "planted.onnx"))


@pytest.fixture(scope="module")
def four_blocks(tmp_path_factory) -> Path:
    """A photo at the model's size: black, with a red, green, blue and white block at PLACES."""
    array = np.zeros((MODEL_SIZE, MODEL_SIZE, 3), np.uint8)
    for channel, (row, col) in PLACES.items():
        array[row * BLOCK : (row + 1) * BLOCK, col * BLOCK : (col + 1) * BLOCK] = PURE[channel]
    path = tmp_path_factory.mktemp("four") / "four.png"
    Image.fromarray(array).save(path)
    return path


def colour_of_groups(components: np.ndarray) -> list[int]:
    """The planted colour channel each NMF group is, checked to be that unit vector alone."""
    colours = []
    for direction in components:
        channel = int(np.argmax(direction))
        assert direction[channel] > 0.9999, direction  # unit length: nothing left elsewhere
        colours.append(channel)
    return colours


def test_the_planted_model_gives_the_hand_computed_activations(planted_model, four_blocks):
    acts = planted_model.activations(four_blocks, "blocks")["blocks"][0]
    np.testing.assert_array_equal(acts, hand_activations())


def test_nmf_groups_of_a_dictionary_are_the_planted_colours(planted_model, four_blocks):
    sd = semantic_dict(four_blocks, "blocks", planted_model, 2, basis="nmf", n_groups=4)
    view = sd.views[0]
    colours = colour_of_groups(view.basis.components)
    assert sorted(colours) == sorted(PLACES)
    assert colours[3] == WHITE  # the weakest group (0.5 in all) comes last
    for group, channel in enumerate(colours):
        planted = np.zeros((8, 8), np.float32)
        planted[PLACES[channel]] = PLANTED_VALUES[channel]
        np.testing.assert_allclose(view.maps[..., group], planted, atol=1e-4)
        row, col = PLACES[channel]
        assert view.channels[row, col, 0] == group
        assert view.values[row, col, 0] == pytest.approx(PLANTED_VALUES[channel], abs=1e-4)
    for row, col in BLACK:
        assert view.entries(row, col) == [(0, 0.0), (1, 0.0)]


def planted_factors(seed: int, rows: int = 8, cols: int = 10, channels: int = 30, k: int = 5):
    """Non-negative activations = block maps @ sparse directions + a little noise."""
    rng = np.random.default_rng(seed)
    directions = rng.gamma(0.5, 1.0, (k, channels)) * (rng.random((k, channels)) < 0.4)
    maps = np.zeros((rows, cols, k))
    for group in range(k):
        top, left = (group % 2) * 4, (group * 3) % 7
        maps[top : top + 4, left : left + 4, group] = rng.uniform(0.5, 1.5, (4, 4))
    acts = maps.reshape(-1, k) @ directions + rng.uniform(0, 0.01, (rows * cols, channels))
    return acts.reshape(rows, cols, channels).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1])
def test_factorize_coefficients_are_the_nnls_optimum_on_its_groups(seed):
    acts = planted_factors(seed)
    basis, coefficients = factorize(acts, 5)
    for x, c in zip(acts.reshape(-1, 30), coefficients.reshape(-1, basis.k), strict=True):
        assert kkt_violation(basis.components, x, c) < 1e-4
    # Strongest group first: the totals of the coefficients never grow down the groups.
    totals = coefficients.reshape(-1, basis.k).sum(axis=0)
    assert (np.diff(totals) <= 1e-6).all(), totals


def test_a_given_basis_in_a_dictionary_is_the_exact_nnls_solution(planted_model, four_blocks):
    sd = semantic_dict(four_blocks, "blocks", planted_model, 3, basis=[Basis(GIVEN)])
    view = sd.views[0]
    acts = hand_activations()
    for row in range(8):
        for col in range(8):
            oracle = nnls_by_active_sets(GIVEN, acts[row, col])
            np.testing.assert_allclose(view.maps[row, col], oracle, atol=1e-5)
            assert kkt_violation(GIVEN, acts[row, col], view.maps[row, col]) < 1e-5
            assert view.channels[row, col].tolist() == ranked(oracle, 3), (row, col)
    # By hand at the red block: the red direction alone explains it best among non-negative
    # mixes, with coefficient <d, x> / |d|^2 = 1.05 / (1.05^2 + 4 * 0.05^2).
    assert view.values[1, 1, 0] == pytest.approx(1.05 / (1.05**2 + 4 * 0.05**2), rel=1e-5)
    assert view.channels[1, 1].tolist()[0] == 0


def test_mixed_sign_directions_on_real_relu_activations(tmp_path):
    """The tiny model's `late` layer (12 channels, 5 x 4) on 5 directions of both signs."""
    model = load_model(write_tiny_model(tmp_path / "tiny.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(4)
    directions = rng.normal(size=(5, 12)).astype(np.float32)
    image = rng.integers(0, 256, (40, 32, 3), np.uint8)
    acts = model.activations(image, "late")["late"][0]
    assert (acts == 0).any() and (acts > 0).any()  # ReLU: exact zeros and live channels
    sd = semantic_dict(image, "late", model, 5, basis=[Basis(directions, layer="late")])
    maps = sd.views[0].maps
    solved = 0
    for row, col in np.ndindex(acts.shape[:2]):
        oracle = nnls_by_active_sets(directions, acts[row, col])
        np.testing.assert_allclose(maps[row, col], oracle, atol=1e-5, rtol=1e-5)
        assert kkt_violation(directions, acts[row, col], maps[row, col]) < 1e-5
        solved += int((oracle > 0).sum() >= 2)
    assert solved >= 3  # positions where several directions mix, not one alone


# --- the same in the page ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    with launched() as chromium:
        yield chromium


def test_the_page_shows_the_planted_groups_and_the_exact_projection(
    browser, planted_model, four_blocks, tmp_path
):
    sd = semantic_dict(
        four_blocks, "blocks", planted_model, 4, basis=["neurons", "nmf", Basis(GIVEN)], n_groups=4
    )
    acts = hand_activations()
    group_of = {c: g for g, c in enumerate(colour_of_groups(sd.views[1].basis.components))}
    with opened(browser, sd.save(tmp_path / "bases.html")) as run:
        root = run.root()
        for index in (1, 2, 0, 2, 1):
            basis_button(root, index).click()
            for channel, (row, col) in PLACES.items():
                cell(root, row, col).hover()
                entries = shown(root)
                if index == 0:  # neurons: the hand activations, ranked
                    order = ranked(acts[row, col], 4)
                    assert entries == [(c, np.float32(acts[row, col, c])) for c in order]
                elif index == 1:  # NMF: this block's colour group first, at its planted value
                    assert entries[0][0] == group_of[channel]
                    assert entries[0][1] == pytest.approx(PLANTED_VALUES[channel], abs=1e-4)
                else:  # given: the exact NNLS solution
                    oracle = nnls_by_active_sets(GIVEN, acts[row, col])
                    assert [c for c, _ in entries] == ranked(oracle, 3)
                    values = [float(v) for _, v in entries]
                    np.testing.assert_allclose(values, oracle[ranked(oracle, 3)], atol=1e-5)
            for row, col in BLACK:  # nothing there, in any basis: zeros in index order
                cell(root, row, col).hover()
                k = [4, 4, 3][index]
                assert shown(root) == [(c, np.float32(0)) for c in range(k)]
    assert run.dialogs == [] and run.blocked == []
