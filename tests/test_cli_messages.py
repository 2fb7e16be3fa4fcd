"""What the command line says about names and paths: page names in any script, file: URLs,
a missing --images folder, a --graphdef folder; each checked on its exact text."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_runs import semdict
from tiny_model import write_tiny_model

from semdict_onnx._cli.pages import page_name
from semdict_onnx._images import load_image

ROOT = Path(__file__).resolve().parent.parent
CAT = ROOT / "semdict_onnx" / "examples" / "chelsea.jpg"


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


def test_page_names_keep_letters_of_any_script():
    """Bug: `猫.jpg` and `犬.jpg` both became `mixed4d.html`, so runs overwrote each other."""
    taken: set[str] = set()
    assert page_name("photos/猫.jpg", "mixed4d", taken) == "猫-mixed4d.html"
    assert page_name("photos/犬.jpg", "mixed4d", taken) == "犬-mixed4d.html"
    assert page_name("Ελλάδα 2024.png", "m", taken) == "Ελλάδα_2024-m.html"
    assert page_name("नमस्ते.png", "m", taken) == "नमस्ते-m.html"  # combining signs kept
    assert page_name("cafe\u0301.png", "m", taken) == "café-m.html"  # NFC, as macOS stores NFD
    assert page_name('a<b>:"c"|d?*\x00e\u202e.png', "m", taken) == "a_b_c_d_e-m.html"
    assert page_name("🐱 cat.png", "m", taken) == "cat-m.html"  # symbols go, letters stay
    long = page_name("長" * 300 + ".png", "m", taken)
    assert len(long.encode()) <= 255 and long.startswith("長" * 60)


def test_no_page_of_a_run_overwrites_another_even_on_a_case_insensitive_disk():
    taken: set[str] = set()
    names = [page_name(image, "m", taken) for image in ["Cat.jpg", "cat.png", "CAT.gif", "c/cat"]]
    assert names == ["Cat-m.html", "cat-m-2.html", "CAT-m-3.html", "cat-m-4.html"]
    assert page_name("all.jpg", "m", {"all-m.html"}) == "all-m-2.html"


def test_the_cli_writes_one_page_per_image_for_names_in_any_script(tiny_path, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("猫.jpg", "犬.jpg", "Cat.jpg", "cat.jpg"):
        shutil.copy(CAT, photos / name)
    out = tmp_path / "out"
    result = semdict(*sorted(photos.iterdir()), "--layer", "late", "--out", out,
                     "--model", tiny_path, "--gallery", "cat-late.html", "--tables", "json",
                     "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["cat-late.html", "Cat-late-2.json", "cat-late-3.json", "犬-late.json", "猫-late.json"]
    )


def test_file_urls_are_read_as_the_files_they_name(tiny_path, tmp_path):
    """Bug: `file:///tmp/猫.jpg` was shown as 'file:/tmp/...' and never found."""
    folder = tmp_path / "my photos"
    folder.mkdir()
    shutil.copy(CAT, folder / "猫.jpg")
    url = "file://" + str(folder).replace(" ", "%20") + "/%E7%8C%AB.jpg"
    assert load_image(url).size == load_image(CAT).size
    out = tmp_path / "out"
    result = semdict(url, "--layer", "late", "--out", out, "--model", f"file://{tiny_path}",
                     "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"wrote {out / '猫-late.html'}" in result.stdout
    missing = semdict(f"file://{tmp_path}/gone.jpg", "--layer", "late", "--out", out,
                      "--model", tiny_path, "--no-progress")  # fmt: skip
    assert missing.stderr.splitlines() == [
        f"semdict: error: file://{tmp_path}/gone.jpg: no image file at '{tmp_path}/gone.jpg' "
        "(URLs must start with http(s)://)"
    ]
    remote = semdict("file://server/share/a.jpg", "--out", out, "--layer", "late",
                     "--model", tiny_path)  # fmt: skip
    assert (
        "semdict: error: file://server/share/a.jpg: 'file://server/share/a.jpg' names a file on "
        "the host 'server'; only local files can be read" in remote.stderr
    )


@pytest.mark.parametrize("command", ["spritemap", "basis"])
def test_a_missing_images_folder_says_so(tiny_path, tmp_path, command):
    """Bug: it said "skipped 1 that could not be read" instead of "no such folder"."""
    suffix = ".png" if command == "spritemap" else ".npz"
    result = semdict(command, "--layer", "late", "--images", tmp_path / "nowhere",
                     "--out", tmp_path / f"out{suffix}", "--model", tiny_path)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"semdict {command}: error: no such folder or image file: '{tmp_path / 'nowhere'}'; "
        "point --images / images= at a folder of photos (searched recursively) or one image"
    ]


def test_a_graphdef_folder_is_named_as_a_folder(tmp_path):
    """Bug: `--graphdef DIR` said "no such file"."""
    (tmp_path / "InceptionV1.pb").write_bytes(b"x")
    result = semdict("export", "--graphdef", tmp_path, "--output", tmp_path / "m.onnx")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"export failed: --graphdef {tmp_path} is a folder; pass the GraphDef file itself such "
        f"as {tmp_path / 'InceptionV1.pb'}. No model was written to {tmp_path / 'm.onnx'}."
    ]
