"""The `semdict` command, run as a separate process the way a user runs it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from semdict_helpers import numbered_spritemap, picture, reference_top_k
from tiny_model import write_tiny_model

from semdict_onnx._bases import Basis
from semdict_onnx._cli.pages import page_name
from semdict_onnx._model import load_model

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "semdict_onnx" / "examples"
ENTRY_POINT = Path(sys.executable).with_name("semdict")
COMMAND = [str(ENTRY_POINT)] if ENTRY_POINT.exists() else [sys.executable, "-m", "semdict_onnx"]


def semdict(*args: object, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `semdict ARGS...` and return what it did."""
    return subprocess.run(
        [*COMMAND, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def first_selection(page: Path) -> list[int]:
    """The channels a saved page shows before any interaction."""
    return [int(c) for c in re.findall(r'data-channel="(\d+)"', page.read_text("utf-8"))]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny test model's file (layers early/late, non-square)."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


def test_pages_for_two_images_with_a_progress_bar(replica_model_path, replica_model, tmp_path):
    images = [EXAMPLES / "chelsea.jpg", EXAMPLES / "rocket.jpg"]
    out = tmp_path / "pages"
    result = semdict(*images, "--layer", "mixed4d", "--out", out, "--model", replica_model_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"semdict mixed4d: 100%\|.*\| 2/2", result.stderr), result.stderr
    pages = [out / "chelsea-mixed4d.html", out / "rocket-mixed4d.html"]
    # Each photo keeps its aspect ratio (shorter side 224): 451x300 px goes in at 224x352,
    # 512x342 px at 224x320.
    for image, page, cols in zip(images, pages, (22, 20), strict=True):
        assert f"wrote {page}" in result.stdout
        acts = replica_model.activations(image, layers=["mixed4d"], size=224)["mixed4d"][0]
        assert acts.shape[:2] == (14, cols)
        assert f'data-rows="14" data-cols="{cols}"' in page.read_text("utf-8")
        row, col, _ = np.unravel_index(int(np.argmax(acts)), acts.shape)
        assert first_selection(page) == reference_top_k(acts, 4)[0][row, col].tolist()
    assert "2 of 2 pages written" in result.stdout
    assert "REPLICA MODEL" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in pages)


def test_a_saved_spritemap_and_top_k_are_used(tiny_path, tmp_path):
    saved = numbered_spritemap(load_model(tiny_path).layers["late"], "late").save(
        tmp_path / "late.png"
    )
    image = tmp_path / "wide.png"
    picture(90, 40).save(image)
    result = semdict(
        image, "--layer", "late", "--top-k", "3", "--spritemap", saved,
        "--model", tiny_path, "--out", tmp_path / "out", "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # --no-progress: no bar
    page = (tmp_path / "out" / "wide-late.html").read_text("utf-8")
    payload = json.loads(re.search(r'class="sd-data">(.*?)</script>', page).group(1))
    assert payload["k"] == 3
    assert payload["bases"][0]["sprites"]["kind"] == "embedded"


def test_a_bad_image_is_named_and_the_others_still_get_pages(tiny_path, tmp_path):
    good = tmp_path / "good.png"
    picture(40, 40).save(good)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    out = tmp_path / "out"
    result = semdict(good, broken, tmp_path / "missing.png", "--layer", "late", "--model",
                     tiny_path, "--out", out)  # fmt: skip
    assert result.returncode == 1
    assert "broken.jpg" in result.stderr and "missing.png" in result.stderr
    assert "1 of 3 pages written" in result.stdout
    assert [p.name for p in out.iterdir()] == ["good-late.html"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layer", "mixed9z"], "unknown layer 'mixed9z'; this model has: pixels, early, late"),
        (["--layer", "late", "--top-k", "99"], "top_k must be an integer from 1 to 12"),
        (["--layer", "late", "--spritemap", "nowhere.png"], "no spritemap manifest"),
    ],
)
def test_bad_options_get_one_clear_error(tiny_path, tmp_path, args, message):
    image = tmp_path / "a.png"
    picture(20, 20).save(image)
    result = semdict(image, *args, "--model", tiny_path, "--out", tmp_path / "out")
    assert result.returncode == 1
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_missing_model_says_how_to_make_one(tmp_path):
    result = semdict("x.png", "--out", tmp_path, "--model", tmp_path / "none.onnx")
    assert result.returncode == 1
    assert "scripts/export.py" in result.stderr


def test_pages_is_the_default_subcommand_however_it_is_written(tiny_path, tmp_path):
    image, common = EXAMPLES / "chelsea.jpg", ["--layer", "late", "--model", tiny_path]
    runs = {
        "short": semdict(image, *common, "--out", tmp_path / "short", "--no-progress"),
        "explicit": semdict("pages", image, *common, "--out", tmp_path / "explicit"),
        "options first": semdict("--out", tmp_path / "first", *common, "--no-progress", image),
    }
    for how, result in runs.items():
        assert result.returncode == 0, f"{how}: {result.stderr}"
    pages = [tmp_path / name / "chelsea-late.html" for name in ("short", "explicit", "first")]
    assert first_selection(pages[0]) == first_selection(pages[1]) == first_selection(pages[2])
    for prefix in ([], ["pages"]):
        bad = semdict(*prefix, image, *common, "--out", tmp_path / "bad", "--top-k", "99")
        assert bad.returncode == 1 and bad.stderr.startswith("semdict: error: top_k must be")


def test_help_lists_the_subcommands_and_dispatches_spritemap():
    top = semdict("--help")
    assert top.returncode == 0
    assert "pages" in top.stdout and "spritemap" in top.stdout
    sub = semdict("spritemap", "--help")
    assert sub.returncode == 0 and "--images" in sub.stdout
    missing = semdict("cat.jpg")
    assert missing.returncode == 2 and "--out" in missing.stderr


def test_page_names_are_safe_and_unique():
    taken: set[str] = set()
    assert page_name("a/cat.jpg", "mixed4d", taken) == "cat-mixed4d.html"
    assert page_name("b/cat.png", "mixed4d", taken) == "cat-mixed4d-2.html"
    hostile = page_name('x/"><img src=x onerror=alert(1)>.png', "mixed4d", taken)
    assert re.fullmatch(r"[A-Za-z0-9._-]+\.html", hostile)
    assert page_name("https://h.example/dir/dog%20face.jpeg?x=1", "m", taken) == "dog_face-m.html"
    assert page_name("...", "", taken) == "image.html"


def payloads(page: Path) -> list[dict]:
    """Every dictionary's JSON payload on a saved page."""
    return [json.loads(m) for m in re.findall(r'class="sd-data">(.*?)</script>', page.read_text())]


def test_bases_scale_tables_and_a_gallery_from_the_command_line(tiny_path, tmp_path):
    images = []
    for index, (width, height) in enumerate([(90, 40), (40, 60)]):
        images.append(tmp_path / f"photo{index}.png")
        picture(width, height, seed=index).save(images[-1])
    basis_file = tmp_path / "late.npz"
    fitted = semdict(
        "basis", "--layer", "late", "--images", tmp_path, "--components", "3",
        "--model", tiny_path, "--out", basis_file, "--no-progress",
    )  # fmt: skip
    assert fitted.returncode == 0, fitted.stderr
    assert f"wrote {basis_file}: 3 NMF groups of late over 2 images (12 channels)" in fitted.stdout
    basis = Basis.load(basis_file, "late", 12)
    sprites = tmp_path / "late-basis.png"
    built = semdict(
        "spritemap", "--layer", "late", "--images", tmp_path, "--basis", basis_file,
        "--model", tiny_path, "--out", sprites, "--sprite-size", "16", "--no-progress",
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert "3 sprites of layer late" in built.stdout and "one per direction" in built.stdout
    out = tmp_path / "out"
    result = semdict(
        *images, "--layer", "late", "--model", tiny_path, "--out", out, "--top-k", "2",
        "--basis", "neurons", "--basis", "nmf", "--groups", "2", "--basis", basis_file,
        "--spritemap", sprites, "--scale", "dataset", "--tables", "json", "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    page = out / "photo0-late.html"
    data = payloads(page)[0]
    assert [b["label"] for b in data["bases"]] == ["neurons", "NMF groups", "fitted NMF"]
    assert [b["size"] for b in data["bases"]] == [12, 2, 3]
    assert [b["scale"] for b in data["bases"]] == ["image", "image", "dataset"]
    assert data["bases"][2]["sprites"]["kind"] == "embedded"
    table = json.loads((out / "photo0-late.json").read_text())
    assert table["bases"][2]["components"] == basis.components.astype(float).tolist()
    acts = load_model(tiny_path).activations(images[0], ["late"])["late"][0]
    assert table["bases"][0]["channels"] == reference_top_k(acts, 2)[0].tolist()

    gallery_out = tmp_path / "gallery"
    result = semdict(
        *images, "--layer", "late", "--model", tiny_path, "--out", gallery_out,
        "--gallery", "all.html", "--tables", "npz", "--scale", "raw", "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 of 2 dictionaries in one gallery written" in result.stdout
    assert sorted(p.name for p in gallery_out.iterdir()) == [
        "all.html", "photo0-late.npz", "photo1-late.npz"
    ]  # fmt: skip
    both = payloads(gallery_out / "all.html")
    assert len(both) == 2 and both[0]["bases"][0]["ref"] == both[1]["bases"][0]["ref"]
    with np.load(gallery_out / "photo1-late.npz") as saved:
        assert saved["0_channels"].shape == (5, 4, 4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--basis", "nowhere.npz"], "cannot read a basis from 'nowhere.npz'"),
        (["--gallery", "sub/all.html"], "must be a file name, not a path"),
        (["--scale", "log"], "invalid choice: 'log'"),
    ],
)
def test_bad_basis_options_are_refused(tiny_path, tmp_path, args, message):
    image = tmp_path / "a.png"
    picture(20, 20).save(image)
    result = semdict(image, "--layer", "late", *args, "--model", tiny_path, "--out", tmp_path / "o")
    assert result.returncode in (1, 2)
    assert message in result.stderr
    assert not (tmp_path / "o").exists()
    other = Basis(np.ones((2, 8), np.float32), layer="early").save(tmp_path / "early.npz")
    mismatch = semdict(image, "--layer", "late", "--basis", other, "--model", tiny_path,
                       "--out", tmp_path / "o")  # fmt: skip
    assert mismatch.returncode == 1
    assert "is for layer 'early' with 8 channels, but 'late' with 12 channels" in mismatch.stderr
