"""Dataset scans on the local engine: checkpoints, resuming, statistics in the manifest and on
the page's dataset bar scale, and a basis fitted on the same pass's sample.

The Ray engine shares all of this (tests/test_ray_engine.py checks it gives the same
results); here it is checked without Ray, on the planted model of tests/onnx_builders.py.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from onnx_builders import BLUE, MODEL_SIZE, RED, build_planted_model, square
from PIL import Image

from semdict_onnx import _checkpoint, _dataset_scan
from semdict_onnx._channel_stats import QUANTILE_RELATIVE_ERROR
from semdict_onnx._checkpoint import Checkpoint
from semdict_onnx._dataset_examples import build_spritemap
from semdict_onnx._dataset_scan import scan_dataset
from semdict_onnx._image_scan import readable
from semdict_onnx._model import load_model
from semdict_onnx._nmf import fit_basis
from semdict_onnx._pipeline import semantic_dict
from semdict_onnx._scan_blocks import scan_block, scan_settings
from semdict_onnx._storage import read_image
from semdict_onnx.errors import CheckpointError, OptionError

RED_LEVELS = [40 + 2 * i for i in range(100)]  # one red square per photo, ever brighter


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return load_model(build_planted_model(tmp_path_factory.mktemp("planted") / "planted.onnx"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """100 photos, each a red square of its own brightness, and one unreadable file."""
    folder = tmp_path_factory.mktemp("photos")
    for i, level in enumerate(RED_LEVELS):
        image = square(MODEL_SIZE, i % 8, (i // 8) % 8, (level, 0, 0), scale=1)
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    (folder / "050-broken.png").write_bytes(b"broken")
    return folder


def scan(photos, planted, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return scan_dataset(photos, "blocks", planted, progress=False, **options)


def test_a_stopped_local_scan_resumes_without_redoing_finished_blocks(
    photos, planted, tmp_path, monkeypatch
):
    whole = scan(photos, planted, block_size=16, examples_per_channel=2, sample_size=50)
    monkeypatch.setattr(_checkpoint, "CHECKPOINT_INTERVAL_S", 0.0)
    scanned: list[list[str]] = []
    real_scan_block = _dataset_scan.scan_block

    def counting(pairs, *args, **kwargs):
        pairs = list(pairs)
        scanned.append([name for name, _ in pairs])
        if len(scanned) == 4 and not hasattr(counting, "stopped"):
            counting.stopped = True
            raise KeyboardInterrupt  # stopped while scanning the fourth block
        return real_scan_block(pairs, *args, **kwargs)

    monkeypatch.setattr(_dataset_scan, "scan_block", counting)
    options = {"block_size": 16, "examples_per_channel": 2, "sample_size": 50}
    with pytest.raises(KeyboardInterrupt):
        scan(photos, planted, checkpoint=tmp_path, **options)
    saved = Checkpoint(tmp_path, whole.kind).load()
    assert saved.images_covered == 3 * 16  # three whole blocks were finished and saved
    first_run, scanned[:] = list(scanned), []
    resumed = scan(photos, planted, checkpoint=tmp_path, **options)
    assert resumed == whole
    assert len(scanned) == 7 - 3  # 101 files in blocks of 16: the 4 not finished
    assert not {name for block in scanned for name in block} & {
        name for block in first_run[:3] for name in block
    }
    # A finished scan given its checkpoint again scans nothing and gives the same state.
    scanned[:] = []
    assert scan(photos, planted, checkpoint=tmp_path, **options) == whole and scanned == []


def test_a_checkpoint_of_another_scan_is_refused(photos, planted, tmp_path):
    scan(photos, planted, block_size=50, checkpoint=tmp_path)
    with pytest.raises(CheckpointError, match="examples_per_channel: 2 vs 1"):
        scan(photos, planted, block_size=50, checkpoint=tmp_path, examples_per_channel=2)


def test_the_manifest_carries_statistics_the_dataset_bar_scale_reads(photos, planted):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sprites = build_spritemap(photos, "blocks", planted, 8, progress=False, block_size=30)
    stats = sprites.manifest["channel_stats"]
    assert stats["images"] == 100 and sprites.manifest["skipped_count"] == 1
    red = np.array(RED_LEVELS) / 255  # the red channel's maximum in each photo
    assert stats["max"][RED] == pytest.approx(red.max(), abs=1e-6)
    assert stats["mean"][RED] == pytest.approx(red.mean(), abs=1e-6)
    exact = np.sort(red)[98]  # nearest rank of 0.99 among 100: the 99th smallest
    assert stats["quantiles"]["0.99"][RED] == pytest.approx(
        exact, rel=QUANTILE_RELATIVE_ERROR + 1e-6
    )
    assert stats["quantiles"]["0.99"][RED] < stats["max"][RED]
    assert stats["max"][BLUE] == 0.0  # never lit: its statistics are all zero
    target = square(MODEL_SIZE, 2, 3, (200, 0, 0))
    sd = semantic_dict(target, "blocks", planted, 3, sprites, scale="dataset")
    typical = sd.views[0].typical
    assert typical[RED] == pytest.approx(stats["quantiles"]["0.99"][RED])
    assert typical[BLUE] == 0.0


def test_one_pass_gives_a_basis_fitted_on_its_sample(photos, planted):
    # 100 of the 6400 positions are lit (one red square per photo), and the sample's draw
    # depends on the image ids (tmp paths). With 400 positions fewer than 2 were lit for 1.2%
    # of paths (too few for 2 components: it failed in one CI run); with 1600, fewer than 5
    # for 1.5e-8 of them (hypergeometric).
    state = scan(photos, planted, block_size=25, sample_size=1600)
    assert len(state.sample) == 1600 and state.sample.images_seen == 100
    assert np.count_nonzero(state.sample.vectors.max(axis=1)) >= 5
    basis = fit_basis(state.sample, "blocks", 2)
    assert basis.k == 2 and basis.images_seen == 100 and basis.layer == "blocks"
    # Red is the only channel the photos light: one direction is (almost) the red channel.
    reddest = max(basis.components, key=lambda direction: direction[RED])
    assert reddest[RED] > 0.95 and np.argmax(reddest) == RED
    with pytest.raises(OptionError, match="this sample is of layer 'blocks', not 'mixed4d'"):
        fit_basis(state.sample, "mixed4d", 2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"engine": "spark"}, "engine must be 'local' or 'ray' or a RayEngine"),
        ({"block_size": 0}, "block_size must be a positive integer"),
        ({"sample_size": -1}, "sample_size must be an integer of at least 0"),
        ({"seed": 1.5}, "seed must be an integer"),
    ],
)
def test_scan_options_are_checked(photos, planted, options, message):
    with pytest.raises(OptionError, match=message):
        scan(photos, planted, **options)


def test_reading_ahead_on_threads_keeps_the_order_and_the_result(photos, planted):
    names = sorted(str(p) for p in photos.iterdir())
    delays = {name: 0.02 * (i % 3) for i, name in enumerate(names)}  # later ones finish first

    def slow_read(name):
        time.sleep(delays[name])
        return read_image(name)

    skipped: list[str] = []
    pairs = [(name, name) for name in names]
    ahead = [name for name, _ in readable(pairs, lambda n, r: skipped.append(n), slow_read, 4)]
    assert ahead == [name for name in names if not name.endswith("broken.png")]
    assert skipped == [str(photos / "050-broken.png")]
    settings = scan_settings(planted, "blocks", 2, None, sample_size=30)
    assert scan_block(pairs, planted, settings, read_threads=4) == scan_block(
        pairs, planted, settings
    )
