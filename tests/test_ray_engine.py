"""The Ray engine gives exactly the local engine's result, however its blocks are scheduled.

Every test here runs on one local Ray instance for the session (tests/conftest.py's
`ray_cluster`: 2 CPUs, a small object store), on the planted model of tests/onnx_builders.py
(one test on the replica GoogLeNet). The local engine's spritemap is the reference: the Ray
engine's manifest (every channel's winners: image, position, value; the statistics; the
skipped files and their reasons) and grid must equal it for two block sizes and two worker
counts, after an actor is killed mid-run, and after a job stopped halfway resumes from its
checkpoint without recomputing the blocks it had finished.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from onnx_builders import BLUE, GREEN, MODEL_SIZE, RED, WHITE, build_planted_model, square
from PIL import Image

from semdict_onnx import _checkpoint, _ray_engine
from semdict_onnx._checkpoint import Checkpoint
from semdict_onnx._dataset_examples import build_spritemap, spritemap_from_examples
from semdict_onnx._dataset_scan import scan_dataset
from semdict_onnx._engines import RayEngine
from semdict_onnx._model import load_model
from semdict_onnx._nmf import fit_basis
from semdict_onnx._scan_blocks import scan_settings
from semdict_onnx.errors import OptionError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = 3
BAD = {
    "007-broken.png": "is not an image PIL can read",
    "019-empty.jpg": "is not an image PIL can read",
    "notes.txt": "not an image file (by its suffix)",
}


@pytest.fixture
def faults():
    """tests/faults.py, imported only where Ray is (it registers itself with Ray)."""
    import ray_faults

    return ray_faults


@pytest.fixture(scope="module")
def planted_path(tmp_path_factory) -> Path:
    return build_planted_model(tmp_path_factory.mktemp("planted") / "planted.onnx")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """30 photos (coloured squares at known blocks on noise) and three bad files among them."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(3)
    colours = [(250, 0, 0), (0, 240, 0), (0, 0, 230), (255, 255, 255), (120, 120, 0)]
    for i in range(30):
        image = square(MODEL_SIZE, *divmod(int(rng.integers(64)), 8), colours[i % 5])
        image = np.maximum(image, rng.integers(0, 40, image.shape).astype(np.uint8))
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    (folder / "007-broken.png").write_bytes(b"\x89PNG but not really")
    (folder / "019-empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("not a photo", encoding="utf-8")
    return folder


def spritemap(photos: Path, model, **options):
    """build_spritemap of the planted layer, warnings (the skipped files) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return build_spritemap(
            photos, "blocks", model, 8, examples_per_channel=EXAMPLES, progress=False, **options
        )


@pytest.fixture(scope="module")
def local(photos, planted_path):
    """The reference: the local engine's spritemap of the photos."""
    return spritemap(photos, load_model(planted_path))


def assert_same(result, reference) -> None:
    assert result.manifest == reference.manifest
    assert np.array_equal(np.asarray(result.image()), np.asarray(reference.image()))


def test_the_reference_lists_every_bad_file_once_with_its_reason(local, photos):
    manifest = local.manifest
    assert manifest["images_seen"] == 30 and manifest["skipped_count"] == 3
    listed = {item["source"]: item["reason"] for item in manifest["skipped"]}
    assert sorted(listed) == sorted(str(photos / name) for name in BAD)
    for name, reason in BAD.items():
        assert reason in listed[str(photos / name)]
    sprites = manifest["sprites"]
    assert [sprites[c]["dead"] for c in (RED, GREEN, BLUE, WHITE)] == [False] * 4
    assert manifest["channel_stats"]["images"] == 30


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("block_size", [4, 11])
def test_ray_equals_local_for_block_sizes_and_worker_counts(
    ray_cluster, photos, planted_path, local, block_size, workers
):
    # Block size 4 puts the three bad files in three different blocks; 11, two in one.
    result = spritemap(
        photos, planted_path, engine=RayEngine(workers=workers), block_size=block_size
    )
    assert_same(result, local)


def test_an_actor_killed_mid_run_is_retried_and_the_result_is_exact(
    ray_cluster, faults, photos, planted_path, local, tmp_path, monkeypatch
):
    marker = tmp_path / "killed"
    monkeypatch.setattr(faults.CrashOnce, "marker", str(marker))
    # The victim's block also holds a bad file, which must still be listed once.
    monkeypatch.setattr(faults.CrashOnce, "victim", str(photos / "008.png"))
    monkeypatch.setattr(_ray_engine, "BlockScanner", faults.CrashOnce)
    result = spritemap(photos, planted_path, engine=RayEngine(workers=2), block_size=4)
    assert marker.is_file()  # an actor did die on that block
    assert_same(result, local)


def test_a_stopped_job_resumes_from_its_checkpoint_without_redoing_finished_blocks(
    ray_cluster, faults, photos, planted_path, local, tmp_path, monkeypatch
):
    monkeypatch.setattr(_checkpoint, "CHECKPOINT_INTERVAL_S", 0.0)  # after every block
    monkeypatch.setattr(_ray_engine, "BlockScanner", faults.CountBlocks)
    saves = []
    real_save = Checkpoint.save

    def save_then_stop(self, state):
        real_save(self, state)
        saves.append(state.images_covered)
        if len(saves) == 3:
            raise KeyboardInterrupt  # as if Ctrl-C came right after the third checkpoint

    monkeypatch.setattr(Checkpoint, "save", save_then_stop)
    folder = tmp_path / "checkpoint"
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    engine = RayEngine(workers=2)
    monkeypatch.setattr(faults.CountBlocks, "folder", str(first))
    with pytest.raises(KeyboardInterrupt):
        spritemap(photos, planted_path, engine=engine, block_size=4, checkpoint=folder)
    kind = scan_settings(load_model(planted_path), "blocks", EXAMPLES, None).kind
    saved = Checkpoint(folder, kind).load()
    finished = [
        block for block in faults.counted_blocks(first) if saved.covers_any(list(block)).all()
    ]
    assert 0 < saved.images_seen < 30 and finished

    monkeypatch.setattr(faults.CountBlocks, "folder", str(second))
    result = spritemap(photos, planted_path, engine=engine, block_size=4, checkpoint=folder)
    assert_same(result, local)
    redone = faults.counted_blocks(second)
    assert not [block for block in redone if saved.covers_any(list(block)).any()]
    every = {name for block in redone for name in block} | {
        name for block in finished for name in block
    }
    assert len(every) == 32  # 30 photos and the 2 unreadable image files, each in one block
    assert len(redone) == len(set(redone))  # no block computed twice in the resumed run


def test_a_dataset_the_user_built_gives_the_same_examples(ray_cluster, photos, planted_path, local):
    import ray.data

    dataset = ray.data.read_binary_files(
        str(photos), include_paths=True, file_extensions=["png", "jpg"]
    )
    # One actor, so that one of the 2 CPUs is left to the dataset's read tasks.
    result = spritemap(dataset, planted_path, engine=RayEngine(workers=1), block_size=6)
    for key in ("sprites", "channel_stats", "images_seen", "dead_channels"):
        assert result.manifest[key] == local.manifest[key], key
    assert {item["source"] for item in result.manifest["skipped"]} == {
        str(photos / "007-broken.png"),
        str(photos / "019-empty.jpg"),
    }


def test_one_pass_yields_spritemap_statistics_and_basis(ray_cluster, photos, planted_path, local):
    model = load_model(planted_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        on_ray = scan_dataset(
            photos, "blocks", model, examples_per_channel=EXAMPLES, sample_size=300,
            engine=RayEngine(workers=2), block_size=5, progress=False,
        )  # fmt: skip
        here = scan_dataset(
            photos, "blocks", model, examples_per_channel=EXAMPLES, sample_size=300, progress=False
        )
    assert on_ray == here and len(on_ray.sample) == 300
    assert_same(spritemap_from_examples(on_ray, model, sprite_size=8, images=photos), local)
    basis = fit_basis(on_ray.sample, "blocks", 3)
    assert basis.k == 3 and basis.images_seen == 30
    assert np.array_equal(basis.components, fit_basis(here.sample, "blocks", 3).components)


def test_the_replica_googlenet_gives_the_same_manifest(ray_cluster, replica_model_path, tmp_path):
    rng = np.random.default_rng(0)
    chelsea = Image.open(ROOT / "semdict_onnx" / "examples" / "chelsea.jpg")
    for i in range(5):
        crop = chelsea.crop((i * 20, 0, i * 20 + 300, 300 - i * 10))
        crop.save(tmp_path / f"{i}.jpg", quality=90)
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), np.uint8)).save(tmp_path / "noise.jpg")
    model = load_model(replica_model_path)
    options = {"sprite_size": 16, "progress": False}
    reference = build_spritemap(tmp_path, "mixed4a", model, **options)
    result = build_spritemap(
        tmp_path, "mixed4a", replica_model_path, **options,
        engine=RayEngine(workers=2), block_size=2,
    )  # fmt: skip
    assert_same(result, reference)


def test_the_command_line_runs_on_a_cluster_by_address(
    ray_cluster, photos, planted_path, local, tmp_path
):
    out = tmp_path / "sprites.png"
    command = [sys.executable, "-m", "semdict_onnx", "spritemap", "--layer", "blocks"]
    command += ["--images", str(photos), "--out", str(out), "--model", str(planted_path)]
    command += ["--sprite-size", "8", "--examples-per-channel", str(EXAMPLES), "--no-progress"]
    command += ["--engine", "ray", "--address", ray_cluster, "--workers", "2"]
    command += ["--block-size", "7", "--checkpoint", str(tmp_path / "ckpt")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "from 30 images" in done.stdout and "skipped 3 files" in done.stdout
    saved = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert {key: saved[key] for key in local.manifest} == json.loads(json.dumps(local.manifest))
    assert (tmp_path / "ckpt" / "dataset-state.npz").is_file()


def test_actors_the_cluster_cannot_hold_are_refused_before_anything_waits(
    ray_cluster, photos, planted_path
):
    with pytest.raises(OptionError, match=r"asks for 1 GPUs \(--gpus-per-worker\) but the"):
        spritemap(photos, planted_path, engine=RayEngine(workers=1, gpus_per_worker=1))
    with pytest.raises(OptionError, match=r"asks for 3 CPUs \(--cpus-per-worker\) but the"):
        spritemap(photos, planted_path, engine=RayEngine(cpus_per_worker=3))


def test_images_in_memory_are_refused_on_ray_and_a_dataset_on_the_local_engine(
    ray_cluster, planted_path, photos
):
    import ray.data

    arrays = [square(MODEL_SIZE, 1, 1, (200, 0, 0))]
    with pytest.raises(OptionError, match="image #0 is a ndarray in memory"):
        spritemap(arrays, planted_path, engine="ray")
    dataset = ray.data.read_binary_files(str(photos), include_paths=True)
    with pytest.raises(OptionError, match="a ray.data.Dataset is scanned by engine='ray'"):
        spritemap(dataset, planted_path)


@pytest.mark.ray  # pyarrow comes with the ray extra
def test_storage_uris_are_read_and_checkpointed_through_pyarrow(
    photos, planted_path, local, tmp_path
):
    uri = "file://" + str(photos)
    result = spritemap(uri, planted_path, checkpoint="file://" + str(tmp_path / "ckpt"))
    expected = json.loads(json.dumps(local.manifest).replace(str(photos), uri))
    for key in ("sprites", "channel_stats", "images_seen", "dead_channels"):
        assert result.manifest[key] == expected[key], key
    reasons = {item["source"]: item["reason"] for item in result.manifest["skipped"]}
    assert sorted(reasons) == sorted(f"{uri}/{name}" for name in BAD)
    assert "the image at file://" in reasons[f"{uri}/019-empty.jpg"]
    assert (tmp_path / "ckpt" / "dataset-state.npz").is_file()
    assert not [p for p in (tmp_path / "ckpt").iterdir() if p.name.endswith(".part")]


def test_without_ray_installed_the_error_says_how_to_install_it(tmp_path, planted_path):
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from semdict_onnx import build_spritemap\n"
        "from semdict_onnx.errors import MissingDependencyError\n"
        "try:\n"
        f"    build_spritemap({str(tmp_path)!r}, 'blocks', {str(planted_path)!r}, engine='ray')\n"
        "except MissingDependencyError as exc:\n"
        "    print(isinstance(exc, ImportError), exc)\n"
    )
    Image.fromarray(square(MODEL_SIZE, 1, 1, (200, 0, 0))).save(tmp_path / "a.png")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "engine='ray' needs Ray Data" in done.stdout
    assert "pip install 'semdict_onnx[ray]'" in done.stdout
    assert done.stdout.startswith("True ")  # an ImportError, as well as a SemdictError


def test_ray_is_installed_exactly_where_the_ray_extra_is():
    runtime_only = bool(os.environ.get("SEMDICT_TEST_RUNTIME_ONLY"))
    done = subprocess.run(
        [sys.executable, "-c", "import ray"], capture_output=True, text=True, timeout=300
    )
    assert (done.returncode != 0) == runtime_only, done.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers": 0}, "workers must be a positive integer"),
        ({"cpus_per_worker": 1.5}, "cpus_per_worker must be a positive integer"),
        ({"gpus_per_worker": -1}, "gpus_per_worker must be a number of GPUs of at least 0"),
        ({"address": 6379}, "address must be a Ray address string"),
    ],
)
def test_engine_options_are_checked(options, message):
    with pytest.raises(OptionError, match=message):
        RayEngine(**options)
