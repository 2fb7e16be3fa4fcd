"""The runtime model: loading and its errors, the model card, activations, threads.

Most tests use the tiny model (tests/tiny_model.py: other names, a non-square input and
another value range than GoogLeNet, so passing them proves nothing is hard-coded); the
`replica_model` ones run the exported replica of GoogLeNet from tests/conftest.py.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import tiny_model
from conftest import GOOGLENET_LAYERS
from PIL import Image

from semdict_onnx import load_model
from semdict_onnx._images import to_batch
from semdict_onnx._model import Model
from semdict_onnx.errors import ImageError, ModelFormatError, ModelNotFoundError, UnknownLayerError

EXAMPLES = Path(__file__).resolve().parents[1] / "semdict_onnx" / "examples"
PHOTOS = sorted(EXAMPLES.glob("*.jpg"))


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model.write_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture(scope="module")
def tiny(tiny_path: Path) -> Model:
    return load_model(tiny_path, providers=["CPUExecutionProvider"])


def assert_same_up_to_rounding(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal but for float rounding (ONNX Runtime's GEMM kernels vary with the batch size)."""
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6 * scale)


def random_images(count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` random uint8 images of assorted sizes."""
    rng = np.random.default_rng(seed)
    return [
        rng.integers(0, 256, (rng.integers(8, 60), rng.integers(8, 60), 3), dtype=np.uint8)
        for _ in range(count)
    ]


# Loading and its errors


def test_missing_default_model_says_how_to_export(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SEMDICT_ONNX_HOME", str(tmp_path / "home"))
    with pytest.raises(ModelNotFoundError) as caught:
        load_model()
    message = str(caught.value)
    assert f"no exported model at {tmp_path / 'home' / 'googlenet.onnx'}" in message
    assert "`python scripts/export.py`" in message
    assert "`python scripts/export.py --replica` on a machine without network" in message


def test_default_path_is_used(tiny_path: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SEMDICT_ONNX_HOME", str(tmp_path))
    shutil.copy(tiny_path, tmp_path / "googlenet.onnx")
    assert load_model().path == tmp_path / "googlenet.onnx"


def test_missing_explicit_path(tmp_path: Path):
    with pytest.raises(ModelNotFoundError, match=f"no exported model at {tmp_path}/gone.onnx"):
        load_model(tmp_path / "gone.onnx")


def write_variant(tmp_path: Path, metadata: str | None) -> Path:
    return tiny_model.write_tiny_model(tmp_path / "variant.onnx", metadata=metadata)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp, tiny: tmp, "is a folder, not an ONNX model file"),
        (
            lambda tmp, tiny: (tmp / "notes.onnx").write_text("hello") and tmp / "notes.onnx",
            "notes.onnx is not an ONNX model ONNX Runtime",
        ),
        (
            lambda tmp, tiny: (
                (tmp / "cut.onnx").write_bytes(tiny.read_bytes()[:300]) and tmp / "cut.onnx"
            ),
            "if it was cut short or made by another version, re-export it",
        ),
        (
            lambda tmp, tiny: write_variant(tmp, None),
            "is an ONNX model without 'semdict_onnx' metadata: a raw network, not yet "
            "prepared. List the layers it offers with `semdict layers",
        ),
        (
            lambda tmp, tiny: write_variant(tmp, "{not json"),
            "variant.onnx: the model's 'semdict_onnx' metadata is malformed",
        ),
        (
            lambda tmp, tiny: write_variant(
                tmp, tiny_model.tiny_info().to_json().replace('"late"', '"ghost"')
            ),
            "its metadata lists ghost but the graph has no such output",
        ),
        (
            lambda tmp, tiny: write_variant(
                tmp, tiny_model.tiny_info().to_json().replace('"pixels_in"', '"picture"')
            ),
            "its metadata names a float32 NHWC image input 'picture'",
        ),
    ],
    ids=["folder", "text", "truncated", "no metadata", "bad json", "ghost layer", "input"],
)
def test_bad_model_files_say_what_is_wrong(make, message: str, tmp_path: Path, tiny_path: Path):
    with pytest.raises(ModelFormatError) as caught:
        load_model(make(tmp_path, tiny_path))
    assert message in str(caught.value)


# The model card


def test_model_card(tiny: Model, tiny_path: Path):
    assert tiny.path == tiny_path
    assert tiny.provider == "CPUExecutionProvider"
    assert tiny.info == tiny_model.tiny_info()
    assert tiny.layers == {name: c for name, (c, _, _) in tiny_model.LAYERS.items()}
    assert list(tiny.layers) == list(tiny_model.LAYERS)
    assert tiny.labels == tiny_model.CLASSES
    assert tiny.input_size == (tiny_model.HEIGHT, tiny_model.WIDTH)
    assert tiny.is_replica


def test_repr_says_replica_only_for_a_replica(tiny: Model, tmp_path: Path):
    text = repr(tiny)
    assert "REPLICA: random weights" in text
    assert "TinyNet" in text and "CPUExecutionProvider" in text
    assert "early(8)" in text and "input 20x16" in text
    real = load_model(write_variant(tmp_path, tiny_model.tiny_info(replica=False).to_json()))
    assert not real.is_replica
    assert "REPLICA" not in repr(real) and "source sha256 000000000000" in repr(real)


# Activations


def test_activations_have_the_shapes_the_metadata_gives(tiny: Model):
    result = tiny.activations(random_images(3))
    assert list(result) == list(tiny_model.LAYERS)
    for name, (channels, height, width) in tiny_model.LAYERS.items():
        assert result[name].shape == (3, height, width, channels)
        assert result[name].dtype == np.float32 and result[name].flags.c_contiguous


def test_input_reaches_the_graph_in_the_metadata_value_range(tiny: Model):
    # `pixels` is the graph's input rescaled from VALUE_RANGE=(0, 255) to [-1, 1]: if the
    # runtime feeds value_range correctly, it equals 2 * batch - 1 for the [0, 1] batch.
    images = random_images(2, seed=5)
    batch = to_batch(images, tiny_model.HEIGHT, tiny_model.WIDTH)
    pixels = tiny.activations(images, layers="pixels")["pixels"]
    np.testing.assert_allclose(pixels, 2 * batch - 1, atol=1e-5)


def test_every_source_kind_in_one_list(tiny: Model):
    photo = PHOTOS[0]
    sources = [
        photo,
        str(photo),
        photo.read_bytes(),
        Image.open(photo),
        np.asarray(Image.open(photo)),
        np.asarray(Image.open(photo).convert("L")),
    ]
    result = tiny.activations(sources, layers=["early"])["early"]
    assert result.shape[0] == len(sources)
    for index in range(1, 5):
        assert np.array_equal(result[index], result[0])
    assert not np.array_equal(result[5], result[0])


def test_float_and_uint8_arrays_agree(tiny: Model):
    # At the model's size neither is resized, so only float rounding may differ.
    pixels = random_images(1)[0][:20, :16]
    pixels = np.asarray(Image.fromarray(pixels).resize((tiny_model.WIDTH, tiny_model.HEIGHT)))
    as_uint8 = tiny.activations(pixels)
    as_float = tiny.activations(pixels / 255.0)
    for name in as_uint8:
        np.testing.assert_allclose(as_float[name], as_uint8[name], rtol=1e-5, atol=1e-5)


def test_one_image_or_a_list_of_one(tiny: Model):
    image = random_images(1)[0]
    single = tiny.activations(image)
    listed = tiny.activations([image])
    for name in single:
        assert single[name].shape[0] == 1
        assert np.array_equal(single[name], listed[name])


def test_class_output_and_layer_selection(tiny: Model):
    result = tiny.activations(random_images(4), layers=["late", "probs", "late"])
    assert list(result) == ["late", "probs"]
    assert result["probs"].shape == (4, len(tiny_model.CLASSES))
    np.testing.assert_allclose(result["probs"].sum(axis=1), 1.0, rtol=1e-5)


def test_unknown_layer_lists_the_valid_names(tiny: Model):
    with pytest.raises(UnknownLayerError) as caught:
        tiny.activations(random_images(1), layers=["early", "mixed4d"])
    assert "unknown layer 'mixed4d'; this model has: pixels, early, late, probs" in str(
        caught.value
    )
    with pytest.raises(UnknownLayerError, match="no layers asked for; pass layers=None for all"):
        tiny.activations(random_images(1), layers=[])


def test_bad_images_and_batch_sizes(tiny: Model):
    with pytest.raises(ImageError, match="image 1 of 2: .*outside \\[0, 1\\]; pass uint8"):
        tiny.activations([random_images(1)[0], np.full((5, 5, 3), 2.0)])
    with pytest.raises(ImageError, match="no images given"):
        tiny.activations([])
    with pytest.raises(ValueError, match="batch_size must be a positive integer, not 0"):
        tiny.activations(random_images(1), batch_size=0)


def test_batch_splitting_changes_nothing(tiny: Model):
    images = random_images(7, seed=3)
    whole = tiny.activations(images, layers=["early", "late", "probs"], batch_size=16)
    for batch_size in (1, 3):
        split = tiny.activations(images, layers=["early", "late", "probs"], batch_size=batch_size)
        for name in whole:
            assert_same_up_to_rounding(split[name], whole[name])


def run_threads(model: Model, jobs: list[list], layers: list[str] | None) -> list[dict]:
    """Run every job's activations on its own thread, all started together."""
    results: list[dict | BaseException] = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def work(index: int) -> None:
        start.wait()
        try:
            results[index] = model.activations(jobs[index], layers=layers, batch_size=2)
        except BaseException as exc:  # reported by the test below
            results[index] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def assert_threads_match_serial(model: Model, jobs: list[list], layers: list[str] | None):
    serial = [model.activations(job, layers=layers, batch_size=2) for job in jobs]
    for parallel, expected in zip(run_threads(model, jobs, layers), serial, strict=True):
        assert not isinstance(parallel, BaseException), parallel
        assert list(parallel) == list(expected)
        for name in expected:
            assert np.array_equal(parallel[name], expected[name])


def test_threads_give_the_serial_results(tiny: Model):
    jobs = [random_images(5, seed=seed) for seed in range(8)]
    assert_threads_match_serial(tiny, jobs, None)


# The replica of GoogLeNet exported by scripts/export.py --replica


def test_replica_model_card(replica_model: Model):
    assert replica_model.is_replica
    assert "REPLICA: random weights" in repr(replica_model)
    assert replica_model.layers == {name: c for name, (c, _) in GOOGLENET_LAYERS.items()}
    assert replica_model.input_size == (224, 224)


def test_replica_activations_have_metadata_shapes(replica_model: Model):
    names = [*replica_model.layers, replica_model.info.class_output]
    result = replica_model.activations(PHOTOS[:2], layers=names)
    for layer in replica_model.info.layers:
        assert result[layer.name].shape == (2, layer.height, layer.width, layer.channels)
        assert result[layer.name].dtype == np.float32
        assert np.isfinite(result[layer.name]).all() and result[layer.name].min() >= 0
    classes = result[replica_model.info.class_output]
    assert classes.shape == (2, replica_model.info.num_classes)
    np.testing.assert_allclose(classes.sum(axis=1), 1.0, rtol=1e-4)


def test_replica_batch_splitting_changes_nothing(replica_model: Model):
    images = [*PHOTOS[:3], PHOTOS[3].read_bytes()]
    whole = replica_model.activations(images, batch_size=4)
    split = replica_model.activations(images, batch_size=1)
    for name in whole:
        assert_same_up_to_rounding(split[name], whole[name])


def test_replica_threads_give_the_serial_results(replica_model: Model):
    jobs = [[PHOTOS[i % 4], PHOTOS[(i + 1) % 4]] for i in range(4)]
    assert_threads_match_serial(replica_model, jobs, ["mixed3a", "mixed4d", "mixed5b"])
