"""`semdict spritemap`, run as a separate process the way a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from onnx_builders import DEAD, MODEL_SIZE, RED, build_planted_model, square
from PIL import Image

from semdict_onnx import Basis, build_spritemap
from semdict_onnx._spritemap import Spritemap

COMMAND = [sys.executable, "-m", "semdict_onnx", "spritemap"]


@pytest.fixture(scope="module")
def planted_path(tmp_path_factory):
    return build_planted_model(tmp_path_factory.mktemp("planted") / "planted.onnx")


def semdict(*args, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def test_builds_saves_and_reports(planted_path, tmp_path):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    Image.fromarray(square(MODEL_SIZE, 6, 1, (240, 0, 0))).save(photos / "sub" / "red.png")
    Image.fromarray(square(MODEL_SIZE, 2, 2, (0, 250, 0))).save(photos / "green.png")
    (photos / "broken.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "maps" / "blocks.png"
    result = semdict(
        "--layer", "blocks", "--images", photos, "--out", out, "--model", planted_path,
        "--sprite-size", 8, "--per-row", 3,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"wrote {out} and {out.with_suffix('.json')}" in result.stdout
    assert "5 sprites of layer blocks (3 dead) from 2 images" in result.stdout
    assert "skipped 1 files that could not be read: " in result.stdout
    assert "broken.png" in result.stdout and "REPLICA model" in result.stdout
    assert "3/3" in result.stderr and "img/s, skipped=1]" in result.stderr  # progress bar
    spritemap = Spritemap.load(out)
    spritemap.validate_for("blocks", 5)
    assert (spritemap.per_row, spritemap.sprite_size) == (3, 8)
    assert spritemap.manifest["sprites"][RED]["source"] == str(photos / "sub" / "red.png")
    assert (
        spritemap.manifest["sprites"][RED]["row"],
        spritemap.manifest["sprites"][RED]["col"],
    ) == (6, 1)
    assert (np.asarray(spritemap.sprite(RED)) == (240, 0, 0)).all()
    assert DEAD in spritemap.manifest["dead_channels"]
    assert spritemap.manifest["crop_size"] == [4, 4]


def test_crop_size_option(planted_path, tmp_path):
    Image.fromarray(square(MODEL_SIZE, 6, 1, (240, 0, 0))).save(tmp_path / "red.png")
    out = tmp_path / "map.jpg"
    result = semdict(
        "--layer", "blocks", "--images", tmp_path / "red.png", "--out", out,
        "--model", planted_path, "--crop-size", 12, "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert Spritemap.load(out).manifest["crop_size"] == [12, 12]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layer", "nope"], "error: unknown layer 'nope'; this model has: blocks"),
        (["--images", "{empty}"], "error: no images in folder"),
        (["--out", "{tmp}/map.gif"], "must end in .jpg, .jpeg, .png"),
        (["--model", "{tmp}/none.onnx"], "error: no exported model at"),
        (["--basis-out", "{tmp}/basis.txt"], "--basis-out '"),
        (["--workers", "2"], "--workers only apply to --engine ray"),
    ],
)
def test_clear_errors_and_no_files(planted_path, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(square(MODEL_SIZE, 1, 1, (200, 0, 0))).save(photos / "a.png")
    base = {"--layer": "blocks", "--images": photos, "--out": tmp_path / "map.png"}
    base["--model"] = planted_path
    given = dict(zip(args[::2], args[1::2], strict=True))
    given = {k: v.format(empty=tmp_path / "empty", tmp=tmp_path) for k, v in given.items()}
    result = semdict(
        *[item for pair in {**base, **given}.items() for item in pair], "--no-progress"
    )
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("map.*")) and not list(tmp_path.glob("basis.*"))


def test_one_pass_writes_the_spritemap_and_a_basis(planted_path, tmp_path):
    """--basis-out: the spritemap equals build_spritemap's, and NMF is fitted on the same pass."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for index, (row, col) in enumerate([(6, 1), (2, 2), (4, 5), (1, 6)]):
        colour = (240, 0, 0) if index % 2 else (0, 250, 0)
        Image.fromarray(square(MODEL_SIZE, row, col, colour)).save(photos / f"{index}.png")
    out, basis_out = tmp_path / "map.png", tmp_path / "basis.npz"
    result = semdict(
        "--layer", "blocks", "--images", photos, "--out", out, "--model", planted_path,
        "--sprite-size", 8, "--basis-out", basis_out, "--components", 2,
        "--sample-size", 50, "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"wrote {basis_out}: " in result.stdout and "fitted on 50 activation" in result.stdout
    expected = build_spritemap(photos, "blocks", planted_path, sprite_size=8, progress=False)
    saved = Spritemap.load(out).manifest  # and the file's own fields: image, sha256, ...
    assert {key: saved[key] for key in expected.manifest} == json.loads(
        json.dumps(expected.manifest)
    )
    assert saved["images_folder"] == "photos" and saved["images_seen"] == 4
    basis = Basis.load(basis_out, layer="blocks", channels=5)
    assert basis.k == 2 and np.isfinite(basis.components).all()


def test_bad_numbers_are_refused_by_the_parser(planted_path, tmp_path):
    result = semdict(
        "--layer", "blocks", "--images", tmp_path, "--out", tmp_path / "m.png", "--sprite-size", 0
    )
    assert result.returncode == 2 and "--sprite-size: must be a positive integer" in result.stderr
