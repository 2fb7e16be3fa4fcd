"""`semdict render`: the command, its errors, and an interrupted render resumed.

The subcommand is run through `semdict_onnx._featurevis._cli.main` (the `semdict` command adds
the same parser); the interruption is a real SIGINT to a real process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semdict_onnx._featurevis._cli import channel_list, checkpoint_for, main

ROOT = Path(__file__).resolve().parent.parent
LAYER = "mixed3b"


def command(model: Path, out: Path, *extra: str) -> list[str]:
    """The render command line, as a list of arguments to `main`."""
    return ["--layer", LAYER, "--out", str(out), "--model", str(model), "--no-progress", *extra]


def test_render_writes_the_grid_and_manifest(replica_model_path, tmp_path, capsys):
    out = tmp_path / "sprites.png"
    assert (
        main(
            command(
                replica_model_path,
                out,
                "--channels",
                "1-2,5",
                "--size",
                "64",
                "--steps",
                "4",
                "--sprite-size",
                "40",
            )
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "3 of 480 neurons sprites" in printed
    assert "REPLICA" in printed
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["rendered"] == [1, 2, 5] and manifest["method"] == "feature visualization"
    assert Image.open(out).size == (22 * 40, 22 * 40)
    assert not checkpoint_for(out).exists()  # removed once the grid is written


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layer", "mixed9z"], "unknown layer 'mixed9z'"),
        (["--channels", "479-480"], "channel 480 is out of range"),
        (["--size", "4096"], "size must be an integer from 1 to 512"),
        (["--steps", "100000"], "steps must be an integer from 1 to 4096"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(
    replica_model_path, tmp_path, capsys, extra, message
):
    out = tmp_path / "sprites.png"
    assert main(command(replica_model_path, out, *extra)) == 1
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_is_not_an_image_is_refused(replica_model_path, tmp_path, capsys):
    assert main(command(replica_model_path, tmp_path / "sprites.gif")) == 1
    assert "must end in .jpg, .jpeg, .png" in capsys.readouterr().err


def test_channel_lists():
    assert channel_list("3") == [3]
    assert channel_list("0-2,7,9-10") == [0, 1, 2, 7, 9, 10]
    for bad in ("a", "1-", "-3", "1,,2"):
        with pytest.raises(Exception, match="channels are numbers and ranges"):
            channel_list(bad)


def _process(model: Path, out: Path) -> subprocess.Popen:
    """`semdict render` of channels 0-5 in batches of 2, in its own process."""
    arguments = command(
        model, out, "--channels", "0-5", "--batch-size", "2", "--size", "64", "--steps", "48"
    )
    code = (
        f"import sys; from semdict_onnx._featurevis._cli import main; sys.exit(main({arguments!r}))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_an_interrupted_render_resumes_to_the_same_result(replica_model_path, tmp_path):
    whole = tmp_path / "whole" / "sprites.png"
    whole.parent.mkdir()
    done = _process(replica_model_path, whole)
    assert done.wait(timeout=300) == 0, done.stderr.read()

    out = tmp_path / "resumed" / "sprites.png"
    out.parent.mkdir()
    checkpoint = checkpoint_for(out)
    first = _process(replica_model_path, out)
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert checkpoint.exists(), first.communicate()
    first.send_signal(signal.SIGINT)
    _, errors = first.communicate(timeout=120)
    assert first.returncode == 130, errors
    assert f"the finished batches are kept in {checkpoint}" in errors
    assert not out.exists()
    with np.load(checkpoint) as state:
        kept = state["indices"].tolist()
    assert kept and len(kept) < 6 and len(kept) % 2 == 0  # whole batches only

    second = _process(replica_model_path, out)
    assert second.wait(timeout=300) == 0, second.stderr.read()
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(whole)))
    resumed = json.loads(out.with_suffix(".json").read_text())
    uninterrupted = json.loads(whole.with_suffix(".json").read_text())
    assert resumed["renders"] == uninterrupted["renders"]
    assert resumed["rendered"] == list(range(6))
