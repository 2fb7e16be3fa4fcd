"""Reading ahead of the model (semdict_onnx/_prefetch.py, used by _image_scan.scan_layer).

The same values as reading one batch after the other, memory bounded by the depth, errors at
the item where they happened, and no thread left behind when the consumer stops early or is
interrupted with Ctrl-C (a real SIGINT, in a subprocess running build_spritemap).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semdict_onnx import _image_scan, load_model
from semdict_onnx._image_scan import ScanReport, scan_layer
from semdict_onnx._prefetch import prefetched

ROOT = Path(__file__).resolve().parent.parent


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "semdict-prefetch" and t.is_alive()]


def test_items_come_in_order_and_at_most_depth_ahead():
    pulled = []

    def source():
        for index in range(20):
            pulled.append(index)
            yield index

    got = []
    for item in prefetched(source(), depth=2):
        time.sleep(0.01)  # the thread has time to run ahead as far as it may
        # the consumer's item, two queued, one made and waiting for room
        assert len(pulled) <= len(got) + 1 + 2 + 1, (len(pulled), len(got))
        got.append(item)
    assert got == list(range(20))
    assert prefetch_threads() == []


def test_an_error_in_the_thread_is_raised_where_it_happened():
    def source():
        yield 1
        yield 2
        raise ValueError("bad third item")

    got = []
    with pytest.raises(ValueError, match="bad third item"):
        for item in prefetched(source()):
            got.append(item)
    assert got == [1, 2]
    assert prefetch_threads() == []


def test_a_consumer_that_stops_early_stops_the_thread():
    endless = iter(int, 1)  # 0, 0, 0, ... for ever
    ahead = prefetched(endless, depth=3)
    assert next(ahead) == 0
    ahead.close()
    assert prefetch_threads() == []


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    """Nine JPEGs of different sizes (decoding and resizing are real work)."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(3)
    for index in range(9):
        side = 180 + 40 * index
        pixels = rng.integers(0, 256, (side, side + 30, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo{index}.jpg", quality=90)
    return folder


def test_scan_gives_the_activations_of_one_batch_after_the_other(
    replica_model_path: Path, photo_folder: Path
):
    model = load_model(replica_model_path, providers=["CPUExecutionProvider"])
    report = ScanReport()
    scanned = list(
        scan_layer(photo_folder, model, "mixed4a", report, batch_size=4, progress=False, desc="")
    )
    assert [len(batch) for batch, _ in scanned] == [4, 4, 1]
    paths = sorted(photo_folder.glob("*.jpg"))
    assert [image_id for batch, _ in scanned for image_id, _ in batch] == [str(p) for p in paths]
    for start, (_, acts) in zip(range(0, 9, 4), scanned, strict=True):
        expected = model.activations(paths[start : start + 4], "mixed4a", batch_size=4)
        np.testing.assert_array_equal(acts, expected["mixed4a"])
    assert report.images_seen == 9 and prefetch_threads() == []


def test_scan_holds_at_most_a_few_batches(replica_model_path: Path, photo_folder: Path):
    model = load_model(replica_model_path, providers=["CPUExecutionProvider"])
    paths = sorted(photo_folder.glob("*.jpg")) * 4
    read = []

    def source():
        for path in paths:
            read.append(path)
            yield path

    seen = 0
    for batch, _ in scan_layer(
        source(), model, "mixed3a", ScanReport(), batch_size=2, progress=False, desc=""
    ):
        time.sleep(0.05)
        seen += len(batch)
        # this batch, PREFETCH_BATCHES queued, one being made (its images read so far)
        limit = seen + 2 * (_image_scan.PREFETCH_BATCHES + 1)
        assert len(read) <= limit, (len(read), seen)
    assert seen == len(paths)


CTRL_C = textwrap.dedent(
    """
    import os, signal, sys, threading
    from semdict_onnx import load_model
    from semdict_onnx._dataset_examples import build_spritemap

    model = load_model(sys.argv[1], providers=["CPUExecutionProvider"])
    folder = sys.argv[2]
    paths = sorted(os.path.join(folder, name) for name in os.listdir(folder)) * 20

    def source():
        for index, path in enumerate(paths):
            if index == 12:  # Ctrl-C while the scan is under way, from another thread
                os.kill(os.getpid(), signal.SIGINT)
            yield path

    try:
        build_spritemap(source(), "mixed3a", model, batch_size=2, progress=False)
    except KeyboardInterrupt:
        left = [t.name for t in threading.enumerate() if t.name == "semdict-prefetch"]
        print("interrupted; prefetch threads left:", left, flush=True)
        sys.exit(130)
    print("not interrupted")
    """
)


def test_ctrl_c_stops_the_scan_and_its_thread(replica_model_path: Path, photo_folder: Path):
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C, str(replica_model_path), str(photo_folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 130, done.stdout + done.stderr
    assert "interrupted; prefetch threads left: []" in done.stdout
