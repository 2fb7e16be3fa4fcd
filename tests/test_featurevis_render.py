"""Rendering: the recipe's pieces, that optimization climbs, reproducibility, bad input.

All on the GoogLeNet replica (random weights) at small sizes, as a user would call it.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
from onnx_builders import GraphBuilder

from semdict_onnx import Basis, load_model
from semdict_onnx._featurevis import _transforms
from semdict_onnx._featurevis._gradient_model import gradient_session
from semdict_onnx._featurevis._optimizer import Adam
from semdict_onnx._featurevis._parameterization import FourierImage
from semdict_onnx._featurevis._render import render, render_spritemap, visualize
from semdict_onnx._featurevis._settings import MAX_SIZE, MAX_STEPS, RenderSettings
from semdict_onnx.errors import GradientRuleError, RenderError, UnknownLayerError

LAYER = "mixed3b"
SMALL = {"size": 64, "steps": 8}


def test_parameterization_backward_is_the_exact_gradient():
    """Directional derivatives of sum(image * r) by central differences in float64."""
    for size in [(16, 16), (12, 15)]:  # an odd width keeps one more frequency column
        image = FourierImage(size)
        rng = np.random.default_rng(1)
        params = image.initial(0, [1, 2]) * 30
        r = rng.normal(size=(2, *size, 3)).astype(np.float32)
        picture, saved = image.image(params)
        grad = image.backward(r, saved)
        for _ in range(3):
            direction = rng.normal(size=params.shape).astype(np.float32)
            step = 1e-2
            up = np.sum(image.image(params + step * direction)[0].astype(np.float64) * r)
            down = np.sum(image.image(params - step * direction)[0].astype(np.float64) * r)
            numeric = (up - down) / (2 * step)
            assert np.sum(grad.astype(np.float64) * direction) == pytest.approx(numeric, rel=1e-3)
        assert picture.min() > 0 and picture.max() < 1 and picture.shape == (2, *size, 3)


@pytest.mark.parametrize("seed", range(6))
def test_transforms_adjoint_is_exact(seed):
    """<T x - T 0, g> = <x, T^T g> to float32 rounding, for every kind of draw."""
    rng = np.random.default_rng(seed)
    draw = _transforms.draw_transforms(seed, 1)[0]
    transform = _transforms.Transform((40, 36), draw)
    x = rng.random((2, 40, 36, 3)).astype(np.float32)
    g = rng.normal(size=(2, *transform.output_size, 3)).astype(np.float32)
    seen = transform.apply(x) - transform.apply(np.zeros_like(x))
    left = np.sum(seen.astype(np.float64) * g)
    right = np.sum(x.astype(np.float64) * transform.adjoint(g))
    assert left == pytest.approx(right, rel=1e-5)
    assert transform.apply(x).shape == (2, *transform.output_size, 3)


def test_transforms_pad_with_grey_and_shift_whole_pixels():
    draw = _transforms.StepTransform((0, 3), 1.0, 0, (2, 1))
    transform = _transforms.Transform((20, 20), draw)
    x = np.random.default_rng(0).random((1, 20, 20, 3)).astype(np.float32)
    seen = transform.apply(x)
    pad = _transforms.PAD
    # Output (i, j) is padded picture (i + 0 + 2, j + 3 + 1): picture (i + 2 - pad, j + 4 - pad).
    np.testing.assert_allclose(seen[0, pad - 2 : pad + 18, pad - 4 : pad + 16], x[0], atol=1e-6)
    assert np.all(seen[0, : pad - 2] == np.float32(_transforms.FILL))


@pytest.mark.export  # TensorFlow, from the export extra
def test_adam_is_tensorflows(tf_module):
    tf = tf_module
    rng = np.random.default_rng(3)
    start = rng.normal(size=(4, 5)).astype(np.float32)
    target = rng.normal(size=(4, 5)).astype(np.float32)
    ours = start.copy()
    adam = Adam(ours, 0.05)
    graph = tf.Graph()
    with graph.as_default():
        variable = tf.Variable(start)
        loss = tf.reduce_sum((variable - target) ** 2)
        train = tf.compat.v1.train.AdamOptimizer(0.05).minimize(loss)
        init = tf.compat.v1.global_variables_initializer()
    with tf.compat.v1.Session(graph=graph) as session:
        session.run(init)
        for _ in range(20):
            adam.ascend(ours, -2 * (ours - target))
            session.run(train)
        np.testing.assert_allclose(ours, session.run(variable), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def tf_module():
    from semdict_onnx.export._tf_env import import_tensorflow

    tf = import_tensorflow()
    with contextlib.suppress(RuntimeError):
        tf.config.set_visible_devices([], "GPU")
    return tf


def test_optimization_climbs_for_channels_and_a_direction(replica_model):
    """64 steps raise each objective many times over, for channels, a group and a direction."""
    channels = replica_model.layers[LAYER]
    weights = np.zeros((4, channels), np.float32)
    weights[0, 5] = weights[1, 300] = 1.0
    weights[2, [10, 11, 12]] = 1.0  # a neuron group
    acts = replica_model.activations(
        np.random.default_rng(0).random((4, 64, 64, 3)).astype(np.float32), [LAYER], size=(64, 64)
    )[LAYER]
    weights[3] = Basis(acts.reshape(-1, channels)[:1] + 0.1).components[0]  # a dense direction
    result = render(LAYER, weights, replica_model, RenderSettings(size=64, steps=64), batch_size=4)
    assert result.pictures.shape == (4, 64, 64, 3)
    assert result.history.shape == (64, 4)
    print("start", result.start, "end", result.end)
    for index in range(4):
        start, end = result.start[index], result.end[index]
        assert end > max(3 * start, 1e-3), (index, start, end)
        assert result.history[-8:, index].mean() > 3 * max(result.history[0, index], 1e-4)


def test_channels_silent_at_the_start_wake_up(replica_model):
    """Lucid's redirected ReLU gradient lets channels that are 0 on the grey start climb."""
    channels = replica_model.layers[LAYER]
    first = render(
        LAYER,
        np.eye(64, channels, dtype=np.float32),
        replica_model,
        RenderSettings(size=64, steps=1),
        batch_size=64,
    )
    silent = np.flatnonzero(first.start == 0)[:8]
    assert len(silent) == 8
    result = render(
        LAYER,
        np.eye(channels, dtype=np.float32)[silent],
        replica_model,
        RenderSettings(size=64, steps=48),
    )
    assert np.all(result.start == 0)
    assert np.sum(result.end > 0.1) >= 4, result.end


def test_the_same_seed_gives_the_same_picture_bit_for_bit(replica_model):
    first = visualize(LAYER, 3, replica_model, **SMALL)
    again = visualize(LAYER, 3, replica_model, **SMALL)
    other_seed = visualize(LAYER, 3, replica_model, seed=1, **SMALL)
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other_seed.tobytes()
    assert first.size == (64, 64) and first.mode == "RGB"
    a = render(LAYER, np.eye(2, 480, dtype=np.float32), replica_model, RenderSettings(**SMALL))
    b = render(LAYER, np.eye(2, 480, dtype=np.float32), replica_model, RenderSettings(**SMALL))
    assert np.array_equal(a.pictures, b.pictures) and np.array_equal(a.history, b.history)


def test_the_batch_size_changes_the_schedule_not_the_picture(replica_model):
    """Three pictures at once (with several cores: one share per core, each share's whole
    step in its own thread on a one-thread run) equal the same three rendered one at a time
    (the gradient model on ONNX Runtime's own thread pool, the picture's part around it)."""
    weights = np.eye(3, 480, dtype=np.float32)
    together = render(LAYER, weights, replica_model, RenderSettings(**SMALL), batch_size=3)
    alone = render(LAYER, weights, replica_model, RenderSettings(**SMALL), batch_size=1)
    np.testing.assert_allclose(together.pictures, alone.pictures, atol=1e-5)
    np.testing.assert_allclose(together.history, alone.history, rtol=1e-4, atol=1e-6)


def test_a_share_of_a_batch_gets_its_own_rows(replica_model):
    """GradientSession.share: the objective and gradient of some pictures with their own
    weight rows, as the whole batch gives them."""
    session = gradient_session(replica_model, LAYER)
    pictures = np.random.default_rng(4).random((3, 64, 64, 3)).astype(np.float32) * 255 - 117
    weights = np.eye(3, 480, dtype=np.float32)[::-1].copy()
    session.set_weights(weights)
    objective, gradient = session(pictures)
    part_objective, part_gradient = session.share(pictures[1:], weights[1:])
    np.testing.assert_allclose(part_objective, objective[1:], rtol=1e-5)
    np.testing.assert_allclose(part_gradient, gradient[1:], rtol=1e-4, atol=1e-7)


def test_a_spritemap_manifest_says_what_was_rendered(replica_model, tmp_path):
    spritemap = render_spritemap(
        LAYER, replica_model, channels=[2, 0], sprite_size=32, progress=False, **SMALL
    )
    assert (spritemap.channels, spritemap.sprite_size, spritemap.layer) == (480, 32, LAYER)
    assert spritemap.per_row == math.ceil(math.sqrt(480))
    manifest = spritemap.manifest
    assert manifest["method"] == "feature visualization" and manifest["basis"] == "neurons"
    assert manifest["rendered"] == [0, 2] and len(manifest["missing"]) == 478
    assert manifest["settings"]["size"] == 64 and manifest["settings"]["steps"] == 8
    assert manifest["settings"]["recipe"]["transforms"]["pad"] == 12
    assert manifest["model"]["replica"] is True
    grid = np.asarray(spritemap.image())
    assert np.all(grid[:32, 32:64] == (224, 224, 224))  # channel 1 is not rendered: blank
    assert grid[:32, :32].std() > 0 and grid[:32, 64:96].std() > 0
    picture = np.asarray(visualize(LAYER, 2, replica_model, **SMALL).resize((32, 32)))
    assert picture.shape == np.asarray(spritemap.sprite(2)).shape
    saved = spritemap.save(tmp_path / "sprites.png")
    assert saved.with_suffix(".json").is_file()


def test_a_basis_gets_one_sprite_per_direction(replica_model):
    rng = np.random.default_rng(4)
    basis = Basis(rng.random((3, 480)), layer=LAYER, method="nmf", images_seen=10)
    spritemap = render_spritemap(LAYER, replica_model, basis=basis, progress=False, **SMALL)
    assert spritemap.channels == 3 and spritemap.manifest["rendered"] == [0, 1, 2]
    assert spritemap.manifest["basis_fingerprint"] == basis.fingerprint
    assert spritemap.basis == "nmf"


BAD = [
    ({"layer": "mixed9z"}, UnknownLayerError, "unknown layer 'mixed9z'"),
    ({"channel": 480}, RenderError, "channel 480 is out of range: layer 'mixed3b' has 480"),
    ({"channel": -1}, RenderError, "out of range"),
    ({"size": MAX_SIZE + 1}, RenderError, f"size must be an integer from 1 to {MAX_SIZE}"),
    ({"size": 8}, RenderError, "size 8 is too small"),
    ({"steps": MAX_STEPS + 1}, RenderError, f"steps must be an integer from 1 to {MAX_STEPS}"),
    ({"steps": 0}, RenderError, "steps must be"),
    ({"learning_rate": -1}, RenderError, "learning_rate must be a positive number"),
    ({"channel": None, "direction": np.zeros(480)}, RenderError, "not all zero"),
    ({"channel": None, "direction": np.ones(7)}, RenderError, "has 480 entries"),
]


@pytest.mark.parametrize(("change", "error", "message"), BAD)
def test_bad_input_is_refused_before_anything_runs(replica_model, change, error, message):
    call = {"layer": LAYER, "channel": 0, **SMALL, **change}
    layer = call.pop("layer")
    with pytest.raises(error, match=message):
        visualize(layer, model=replica_model, **call)


def test_bad_spritemap_input_writes_no_file(replica_model, tmp_path):
    checkpoint = tmp_path / "state.npz"
    for change, message in [
        ({"channels": [0, 999]}, "channel 999 is out of range"),
        ({"channels": []}, "channels is empty"),
        ({"steps": MAX_STEPS + 1}, "steps must be"),
        ({"batch_size": 10_000}, "batch_size must be"),
        ({"sprite_size": 0}, "sprite_size must be"),
        ({"sprite_size": 512, "per_row": 480}, "the spritemap grid would be 245760x512"),
        ({"checkpoint": tmp_path / "state.json"}, "is an .npz file"),
    ]:
        options = {"checkpoint": checkpoint, "progress": False, **SMALL, **change}
        with pytest.raises(RenderError, match=message):
            render_spritemap(LAYER, replica_model, **options)
    assert list(tmp_path.iterdir()) == []


def test_a_model_with_an_op_without_a_rule_names_it(tmp_path):
    builder = GraphBuilder(16, 16)
    builder.conv("image_nchw", "c", np.ones((2, 3, 3, 3), np.float32), pads=[1, 1, 1, 1])
    builder.node("Erf", ["c"], "odd")
    builder.layer("odd_layer", "odd", 2)
    model = load_model(builder.save(tmp_path / "erf.onnx"), providers=["CPUExecutionProvider"])
    with pytest.raises(GradientRuleError, match=r"node 'odd' \(op Erf\) has no gradient rule"):
        visualize("odd_layer", 0, model, size=16, steps=2, transforms=False)
    with pytest.raises(RenderError, match="only 16x16 images"):
        visualize("odd_layer", 0, model, size=16, steps=2)


def test_the_progress_bar_counts_every_step_and_can_be_turned_off(replica_model, capsys):
    render_spritemap(LAYER, replica_model, channels=[0, 1, 2], batch_size=2, **SMALL)
    bar = capsys.readouterr().err
    assert "featurevis mixed3b" in bar and "16/16" in bar  # 2 batches x 8 steps
    render_spritemap(LAYER, replica_model, channels=[0], progress=False, **SMALL)
    assert capsys.readouterr().err == ""
