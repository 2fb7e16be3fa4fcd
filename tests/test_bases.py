"""Bases: NMF groups recover planted factors, projection is non-negative least squares,
saved bases round-trip and refuse other layers, and dataset examples follow directions."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from onnx_builders import (
    BLOCK,
    BLUE,
    GREEN,
    MODEL_SIZE,
    PLANTED,
    PLANTED_BIAS,
    RED,
    WHITE,
    GraphBuilder,
    build_planted_model,
    square,
)
from PIL import Image
from scipy.optimize import linear_sum_assignment

import semdict_onnx
from semdict_onnx import Basis, factorize, fit_basis
from semdict_onnx._bases import resolve_basis
from semdict_onnx._dataset_examples import (
    build_spritemap,
    own_patches_spritemap,
    scan_examples,
    spritemap_from_examples,
)
from semdict_onnx._model import load_model
from semdict_onnx.errors import SemdictError

# The planted model's colour channels that can fire, and the colours that fire them.
LIVE = [RED, GREEN, BLUE, WHITE]
PURE = {RED: (255, 0, 0), GREEN: (0, 255, 0), BLUE: (0, 0, 255), WHITE: (255, 255, 255)}
MIXED_CHANNELS = 12


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of `a` with every row of `b`."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def matched(planted: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching of rows by cosine: (index into found per planted row, cosines)."""
    similarity = cosines(planted, found)
    rows, cols = linear_sum_assignment(-similarity)
    assert (rows == np.arange(len(planted))).all()
    return cols, similarity[rows, cols]


def planted_factors(seed: int, rows: int = 8, cols: int = 12, channels: int = 64, k: int = 6):
    """Activations [rows, cols, channels] = maps @ directions + noise, all non-negative.

    Group g covers one block of a 2 x 3 tiling, overlapping its neighbours by one position, so
    every group has positions of its own (the condition under which NMF is unique).
    """
    rng = np.random.default_rng(seed)
    directions = rng.gamma(0.5, 1.0, (k, channels)) * (rng.random((k, channels)) < 0.4)
    maps = np.zeros((rows, cols, k))
    for group in range(k):
        top, left = (group // 3) * 4, (group % 3) * 4
        block = maps[top : top + 5, left : left + 5, group]
        block[:] = rng.uniform(0.5, 1.5, block.shape)
    acts = maps.reshape(-1, k) @ directions + rng.uniform(0, 0.01, (rows * cols, channels))
    return acts.reshape(rows, cols, channels).astype(np.float32), maps, directions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nmf_recovers_planted_factors_and_their_regions(seed):
    acts, maps, directions = planted_factors(seed)
    basis, coefficients = factorize(acts, 6, layer="planted")
    assert (basis.k, basis.channels, basis.method, basis.layer) == (6, 64, "nmf", "planted")
    assert coefficients.shape == (8, 12, 6) and coefficients.dtype == np.float32
    order, similarity = matched(directions, basis.components)
    assert similarity.min() > 0.95, similarity
    found_maps = coefficients.reshape(-1, 6)[:, order].T
    assert np.diag(cosines(maps.reshape(-1, 6).T, found_maps)).min() > 0.95
    # Each planted group's strongest position lies inside its planted block.
    for group in range(6):
        row, col = np.unravel_index(np.argmax(coefficients[..., order[group]]), (8, 12))
        assert maps[row, col, group] > 0
    # Unit directions, strongest group first, coefficients = the basis's own projection.
    assert np.allclose(np.linalg.norm(basis.components, axis=1), 1, atol=1e-5)
    totals = coefficients.reshape(-1, 6).sum(axis=0)
    assert (np.diff(totals) <= 0).all()
    assert np.array_equal(coefficients, basis.project(acts))


def test_nmf_is_seeded_and_drops_groups_the_layer_does_not_hold():
    acts, _, _ = planted_factors(3, k=6)
    first, coefficients = factorize(acts, 6)
    again, coefficients_again = factorize(acts, 6)
    assert np.array_equal(first.components, again.components)
    assert np.array_equal(coefficients, coefficients_again)
    assert first.fingerprint == again.fingerprint
    # Two patterns only, asked for three: the group NMF leaves empty is dropped.
    rank_two = np.zeros((4, 5, 6), np.float32)
    rank_two[:2, :, 0] = rank_two[:2, :, 1] = 1.0
    rank_two[2:, :, 4] = 2.0
    basis, coefficients = factorize(rank_two, 3)
    assert basis.k == 2 and coefficients.shape == (4, 5, 2)
    rebuilt = coefficients.reshape(-1, 2) @ basis.components
    assert np.allclose(rebuilt, rank_two.reshape(-1, 6), atol=1e-4)


def test_factorize_refuses_what_nmf_cannot_take():
    acts, _, _ = planted_factors(0)
    with pytest.raises(SemdictError, match="non-negative activations.*go down to -1"):
        factorize(acts - 1.0, 6)
    with pytest.raises(SemdictError, match="zero everywhere"):
        factorize(np.zeros((3, 3, 8), np.float32), 2)
    with pytest.raises(SemdictError, match=r"n_groups=97 is more than NMF can find here \(96"):
        factorize(acts, 97)
    for bad in (0, True, 2.0, "6"):
        with pytest.raises(SemdictError, match="n_groups must be a positive integer"):
            factorize(acts, bad)
    with pytest.raises(SemdictError, match=r"one image's activations \[rows, cols, channels\]"):
        factorize(acts[None], 6)


def kkt_violation(directions: np.ndarray, x: np.ndarray, c: np.ndarray) -> float:
    """How far `c` is from the non-negative least-squares optimum of x ~ c @ directions.

    At the optimum c >= 0, the gradient g = D (D^T c - x) is >= 0, and c * g = 0.
    """
    gradient = directions @ (directions.T @ c - x)
    scale = np.abs(directions @ x).max() + 1e-12
    return max(-c.min(), -gradient.min() / scale, np.abs(c * gradient).max() / scale)


@pytest.mark.parametrize("k", [3, 20, 80])
def test_projection_is_the_non_negative_least_squares_optimum(k):
    rng = np.random.default_rng(k)
    channels = 40
    directions = rng.normal(size=(k, channels)).astype(np.float32)  # mixed signs; 80 > 40
    acts = np.maximum(rng.normal(size=(3, 5, channels)), 0).astype(np.float32)
    acts[0, 0] = 0  # a silent position: all coefficients 0
    basis = Basis(directions)
    coefficients = basis.project(acts)
    assert coefficients.shape == (3, 5, k) and coefficients.dtype == np.float32
    assert (coefficients >= 0).all() and not coefficients[0, 0].any()
    d64 = directions.astype(np.float64)
    for x, c in zip(acts.reshape(-1, channels), coefficients.reshape(-1, k), strict=True):
        assert kkt_violation(d64, x.astype(np.float64), c.astype(np.float64)) < 1e-4
    # A direction that is exactly one activation vector gets that vector alone.
    own = Basis(np.stack([acts[1, 2], acts[2, 3]]))
    assert np.allclose(own.project(acts[1, 2]), [1, 0], atol=1e-5)


def test_neuron_basis_is_the_identity():
    acts = np.abs(np.random.default_rng(0).normal(size=(2, 3, 7))).astype(np.float32)
    basis = resolve_basis("neurons", "layer_x", 7)
    assert (basis.method, basis.unit, basis.k, basis.layer) == ("neurons", "channel", 7, "layer_x")
    assert np.array_equal(basis.project(acts), acts)
    assert resolve_basis(None, "layer_x", 7).method == "neurons"


def test_given_basis_round_trips_through_save_and_load(tmp_path):
    directions = np.random.default_rng(1).normal(size=(5, 528)).astype(np.float32)
    basis = Basis(directions, layer="mixed4d")
    assert (basis.method, basis.unit) == ("given", "direction")
    path = basis.save(tmp_path / "deeper" / "mine.npz")
    assert path.is_file() and path.stat().st_size < 16 * 1024
    assert [p.name for p in path.parent.iterdir()] == ["mine.npz"]  # no temporary left over
    loaded = Basis.load(path, layer="mixed4d", channels=528)
    assert np.array_equal(loaded.components, directions)
    assert (loaded.layer, loaded.method, loaded.images_seen) == ("mixed4d", "given", None)
    assert loaded.fingerprint == basis.fingerprint
    assert repr(loaded) == "Basis(5 given directions of mixed4d, 5x528)"
    # A fitted basis keeps its method and image count; one without a layer keeps none.
    fitted = Basis(np.abs(directions), layer="mixed4d", method="nmf", images_seen=200)
    again = Basis.load(fitted.save(tmp_path / "fitted.npz"))
    assert again.describe() == "5 NMF groups of mixed4d over 200 images"
    loose = Basis.load(Basis(directions[:2]).save(tmp_path / "loose.npz"), channels=528)
    assert loose.layer is None and loose.k == 2


def test_a_basis_for_other_channels_or_layers_is_refused_clearly(tmp_path):
    path = Basis(np.ones((3, 528), np.float32), layer="mixed4d").save(tmp_path / "b.npz")
    with pytest.raises(
        SemdictError,
        match=r"is for layer 'mixed4d' with 528 channels, but 'mixed4c' with 512 channels "
        r"was asked for; fit one for 'mixed4c'",
    ):
        Basis.load(path, layer="mixed4c", channels=512)
    with pytest.raises(SemdictError, match="is for layer 'mixed4d' .* not 'mixed4e'"):
        Basis.load(path, layer="mixed4e")
    loose = Basis(np.ones((3, 528), np.float32))
    with pytest.raises(SemdictError, match="is for a layer with 528 channels, but 'blocks' with 5"):
        resolve_basis(loose, "blocks", 5)
    with pytest.raises(SemdictError, match="is for a layer with 4 channels, but 'blocks' with 5"):
        resolve_basis(np.ones((2, 4)), "blocks", 5)


def test_bad_bases_and_files_get_clear_errors(tmp_path):
    with pytest.raises(SemdictError, match=r"numeric \(k x channels\) matrix.*\(5,\)"):
        Basis(np.ones(5))
    with pytest.raises(SemdictError, match="direction\\(s\\) 1 are all zeros"):
        Basis(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(SemdictError, match="NaN or infinity"):
        Basis(np.array([[1.0, np.nan]]))
    with pytest.raises(SemdictError, match="one of neurons, nmf, given, not 'pca'"):
        Basis(np.ones((1, 2)), method="pca")
    with pytest.raises(SemdictError, match="basis 'nmf' cannot be used here.*fit_basis"):
        resolve_basis("nmf", "blocks", 5)
    with pytest.raises(SemdictError, match="not dict"):
        resolve_basis({"a": 1}, "blocks", 5)
    with pytest.raises(SemdictError, match="do not end in this basis's 2 channels"):
        Basis(np.ones((1, 2))).project(np.ones((3, 3)))
    with pytest.raises(SemdictError, match="saved as .npz; 'b.json'"):
        Basis(np.ones((1, 2))).save(tmp_path / "b.json")
    np.savez(tmp_path / "other.npz", x=np.ones(3))
    with pytest.raises(SemdictError, match="not a basis file written by Basis.save"):
        Basis.load(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(SemdictError, match="cannot read a basis from .*text.npz"):
        Basis.load(tmp_path / "text.npz")
    with pytest.raises(SemdictError, match="cannot read a basis from .*absent.npz"):
        Basis.load(tmp_path / "absent.npz")


# --- through a model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted_model(tmp_path_factory):
    return load_model(build_planted_model(tmp_path_factory.mktemp("planted") / "planted.onnx"))


MIXING = np.random.default_rng(7).gamma(0.7, 1.0, (MIXED_CHANNELS, 5)).astype(np.float32)


@pytest.fixture(scope="module")
def factors_model(tmp_path_factory):
    """The planted colour channels, mixed by a non-negative 1x1 conv into 12 channels.

    Its layer "mixed" is colours @ MIXING.T: a non-negative factorization planted in the model,
    whose factors are the colours (one per pure-coloured block) and MIXING's columns.
    """
    g = GraphBuilder(MODEL_SIZE, MODEL_SIZE)
    mix = g.conv("image_nchw", "colour_mix", PLANTED.reshape(5, 3, 1, 1), PLANTED_BIAS)
    colours = g.node("Relu", [mix], "colours")
    pooled = g.node(
        "AveragePool", [colours], "pooled", kernel_shape=[BLOCK] * 2, strides=[BLOCK] * 2
    )
    mixed = g.conv(pooled, "mixed_nchw", MIXING.reshape(MIXED_CHANNELS, 5, 1, 1))
    g.layer("mixed", mixed, MIXED_CHANNELS)
    path = g.save(tmp_path_factory.mktemp("factors") / "factors.onnx")
    return load_model(path)


def random_block_images(count: int, seed: int):
    """Images of 8 x 8 blocks (one per layer position), each black or one pure colour."""
    rng = np.random.default_rng(seed)
    palette = np.array([PURE[c] for c in LIVE], np.float32)
    for _ in range(count):
        blocks = np.zeros((8, 8, 3), np.float32)
        lit = rng.random((8, 8)) < 0.5
        blocks[lit] = palette[rng.integers(0, 4, lit.sum())] * rng.uniform(0.4, 1, (lit.sum(), 1))
        yield np.kron(blocks, np.ones((BLOCK, BLOCK, 1))).astype(np.uint8)


def test_fit_basis_over_many_images_recovers_the_planted_factors(factors_model, capsys, tmp_path):
    basis = fit_basis(random_block_images(200, 0), "mixed", 4, model=factors_model, batch_size=8)
    assert (basis.k, basis.channels, basis.layer) == (4, MIXED_CHANNELS, "mixed")
    assert (basis.method, basis.images_seen) == ("nmf", 200)
    _, similarity = matched(MIXING[:, LIVE].T, basis.components)
    assert similarity.min() > 0.95, similarity
    err = capsys.readouterr().err
    assert "NMF mixed" in err and "200/" not in err and "img/s" in err  # a generator: no total
    loaded = Basis.load(basis.save(tmp_path / "mixed.npz"), "mixed", MIXED_CHANNELS)
    assert np.array_equal(loaded.components, basis.components)
    # Two passes over a list read it twice and still find the same factors.
    images = list(random_block_images(100, 1))
    twice = fit_basis(images, "mixed", 4, model=factors_model, progress=False, passes=2)
    assert twice.images_seen == 100
    assert matched(MIXING[:, LIVE].T, twice.components)[1].min() > 0.95


def test_fit_basis_refuses_what_it_cannot_do(factors_model, planted_model, tmp_path):
    images = list(random_block_images(2, 0))
    with pytest.raises(SemdictError, match="method='nmf' only, not 'pca'"):
        fit_basis(images, "mixed", 4, method="pca", model=factors_model)
    with pytest.raises(SemdictError, match="n_components=13 is more than NMF can find here"):
        fit_basis(images, "mixed", 13, model=factors_model)
    with pytest.raises(SemdictError, match="one-shot iterator"):
        fit_basis(iter(images), "mixed", 4, model=factors_model, passes=2)
    with pytest.raises(SemdictError, match="unknown layer 'nope'"):
        fit_basis(images, "nope", 4, model=factors_model)
    black = [np.zeros((32, 32, 3), np.uint8)] * 3
    with pytest.raises(SemdictError, match="fewer than 4 positions where mixed is not all zero"):
        fit_basis(black, "mixed", 4, model=factors_model, progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SemdictError, match="no images in folder"):
        fit_basis(empty, "blocks", 2, model=planted_model)


def save_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def split_block(row: int, col: int) -> np.ndarray:
    """Block (row, col) half pure red (left) and half pure green (right), at 2x scale."""
    image = np.zeros((2 * MODEL_SIZE, 2 * MODEL_SIZE, 3), np.uint8)
    side = 2 * BLOCK
    image[row * side : (row + 1) * side, col * side : col * side + side // 2] = (255, 0, 0)
    image[row * side : (row + 1) * side, col * side + side // 2 : (col + 1) * side] = (0, 255, 0)
    return image


@pytest.fixture
def planted_folder(tmp_path):
    folder = tmp_path / "photos"
    save_png(folder / "red.png", square(MODEL_SIZE, 5, 2, (200, 0, 0)))
    save_png(folder / "green.png", square(MODEL_SIZE, 3, 6, (0, 240, 0)))
    save_png(folder / "split.png", split_block(2, 4))
    save_png(folder / "blue.png", square(MODEL_SIZE, 7, 0, (0, 0, 230)))
    save_png(folder / "white.png", square(MODEL_SIZE, 4, 4, (255, 255, 255)))
    return folder


def test_build_spritemap_with_a_basis_picks_the_planted_patches(planted_model, planted_folder):
    directions = np.zeros((3, 5), np.float32)
    directions[0, [RED, GREEN]] = np.sqrt(0.5)  # "red or green"
    directions[1, BLUE] = 1
    directions[2, WHITE] = 1
    spritemap = build_spritemap(
        planted_folder, "blocks", planted_model, sprite_size=16, progress=False, basis=directions
    )
    manifest = spritemap.manifest
    assert (spritemap.channels, spritemap.layer, spritemap.basis) == (3, "blocks", "given")
    assert manifest["basis_fingerprint"] == Basis(directions).fingerprint
    assert manifest["basis_description"] == "3 given directions"
    winners = [(Path(s["source"]).name, s["row"], s["col"]) for s in manifest["sprites"]]
    # Half red + half green (0.46 on each channel) projects further on "red or green"
    # ((0.46 + 0.46) / sqrt(2) = 0.65) than the pure red block (0.75 / sqrt(2) = 0.53), though
    # each channel alone prefers a pure block.
    assert winners == [("split.png", 2, 4), ("blue.png", 7, 0), ("white.png", 4, 4)]
    sprite = np.asarray(spritemap.sprite(0))
    assert (sprite[:, :7] == (255, 0, 0)).all() and (sprite[:, 9:] == (0, 255, 0)).all()
    assert (np.asarray(spritemap.sprite(1)) == (0, 0, 230)).all()
    acts = planted_model.activations(planted_folder / "split.png", "blocks")["blocks"][0]
    expected = float(Basis(directions).project(acts[2, 4])[0])
    assert manifest["sprites"][0]["activation"] == pytest.approx(expected, rel=1e-6)
    red = planted_model.activations(planted_folder / "red.png", "blocks")["blocks"][0, 5, 2]
    assert expected > Basis(directions).project(red)[0] + 0.05
    neurons = build_spritemap(planted_folder, "blocks", planted_model, 16, progress=False)
    assert Path(neurons.manifest["sprites"][RED]["source"]).name == "red.png"
    assert neurons.basis == "neurons" and "basis_fingerprint" not in neurons.manifest


def test_basis_examples_merge_like_channel_examples(planted_model, planted_folder):
    basis = Basis(np.eye(5, dtype=np.float32)[[RED, GREEN, BLUE]] + 0.1, layer="blocks")
    files = sorted(planted_folder.glob("*.png"))
    whole = scan_examples(files, "blocks", planted_model, 2, progress=False, basis=basis)
    halves = [
        scan_examples(part, "blocks", planted_model, 2, progress=False, basis=basis)
        for part in (files[:2], files[2:])
    ]
    assert halves[0].merge(halves[1]) == whole and whole.channels == 3
    spritemap = spritemap_from_examples(whole, planted_model, 16, basis=basis)
    assert spritemap.manifest["basis_fingerprint"] == basis.fingerprint
    with pytest.raises(SemdictError, match="3 entries per position but the 5 neurons"):
        spritemap_from_examples(whole, planted_model, 16)
    with pytest.raises(SemdictError, match="basis 'nmf' cannot be used here"):
        build_spritemap(files, "blocks", planted_model, progress=False, basis="nmf")
    with pytest.raises(SemdictError, match="is for layer 'blocks' with 5 channels, but 'x'"):
        basis.check_for("x", 5)


def test_groups_fitted_on_one_image_show_that_images_own_patches(planted_model, tmp_path):
    picture = np.zeros((MODEL_SIZE, MODEL_SIZE, 3), np.uint8)
    places = {RED: (1, 1), GREEN: (1, 6), BLUE: (6, 1), WHITE: (6, 6)}
    for channel, (row, col) in places.items():
        picture[row * BLOCK : (row + 1) * BLOCK, col * BLOCK : (col + 1) * BLOCK] = PURE[channel]
    path = save_png(tmp_path / "four.png", picture)
    acts = planted_model.activations(path, "blocks")["blocks"][0]
    basis, coefficients = factorize(acts, 4, layer="blocks")
    spritemap = own_patches_spritemap(path, coefficients, "blocks", planted_model, basis, 16)
    assert spritemap.channels == 4 and spritemap.manifest["images_seen"] == 1
    found = set()
    for group, entry in enumerate(spritemap.manifest["sprites"]):
        assert entry["source"] == "image"
        row, col = np.unravel_index(np.argmax(coefficients[..., group]), (8, 8))
        assert (entry["row"], entry["col"]) == (row, col)
        channel = next(c for c, place in places.items() if place == (row, col))
        assert np.argmax(basis.components[group]) == channel  # the group is that colour
        assert (np.asarray(spritemap.sprite(group)) == PURE[channel]).all()
        found.add(channel)
    assert found == set(LIVE)
    again = build_spritemap([path], "blocks", planted_model, 16, progress=False, basis=basis)
    assert np.array_equal(np.asarray(again.image()), np.asarray(spritemap.image()))
    with pytest.raises(SemdictError, match=r"do not fit layer 'blocks' \(8x8 positions\)"):
        own_patches_spritemap(path, coefficients[:4], "blocks", planted_model, basis)


def test_real_layer_groups_and_package_export(replica_model):
    photo = Path(semdict_onnx.__file__).parent / "examples" / "chelsea.jpg"
    acts = replica_model.activations(photo, "mixed4d")["mixed4d"][0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no convergence chatter reaches the user
        basis, coefficients = factorize(acts, layer="mixed4d")
    assert (basis.k, basis.channels) == (6, 528) and coefficients.shape == (14, 14, 6)
    residual = np.linalg.norm(
        acts.reshape(-1, 528) - coefficients.reshape(-1, 6) @ basis.components
    )
    assert residual < 0.5 * np.linalg.norm(acts)
    assert semdict_onnx.fit_basis is fit_basis
