"""Every `semdict` subcommand against write faults and Ctrl-C: one line, an exit status, no
traceback, no half-written file, and the output checked before the work starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_runs import (
    COMMAND,
    interrupt,
    no_partial_files,
    progress_reached,
    semdict,
    unwritable_folder,
)
from semdict_helpers import picture
from tiny_model import write_tiny_model

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "semdict_onnx" / "examples"


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of two small pictures."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(2):
        picture(40, 30, seed=index).save(folder / f"p{index}.png")
    return folder


def one_clean_line(stderr: str, start: str) -> str:
    """The single line on stderr, checked to start with `start` and to hold no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(start), stderr
    assert "Traceback" not in stderr
    return lines[0]


# Each subcommand with an --out in a folder it cannot write: (arguments, what it prints first).
UNWRITABLE = {
    "pages": (["{photo}", "--layer", "late", "--out", "{ro}/pages"], "semdict: error: "),
    "spritemap": (
        ["spritemap", "--layer", "late", "--images", "{photos}", "--out", "{ro}/map.png"],
        "semdict spritemap: error: ",
    ),
    "basis": (
        ["basis", "--layer", "late", "--images", "{photos}", "--out", "{ro}/b.npz"],
        "semdict basis: error: ",
    ),
    "render": (["render", "--layer", "late", "--out", "{ro}/r.png"], "semdict render: error: "),
}


@pytest.mark.parametrize("name", list(UNWRITABLE))
def test_an_unwritable_output_is_one_line_before_any_image_is_read(
    name, tiny_path, photos, tmp_path
):
    """Bug: `semdict` printed a PermissionError traceback, after all the work."""
    read_only = unwritable_folder(tmp_path)
    args, start = UNWRITABLE[name]
    filled = [a.format(photo=photos / "p0.png", photos=photos, ro=read_only) for a in args]
    result = semdict(*filled, "--model", tiny_path, user=True)
    assert result.returncode == 1
    line = one_clean_line(result.stderr, start)
    assert f"'{read_only}" in line and "permission denied" in line
    assert "%|" not in result.stderr  # no progress bar: refused before any image was read
    assert list(read_only.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{photo}", "--out", "{file}"], "semdict: error: --out '{file}' is a file, not a folder"),
        (
            ["spritemap", "--images", "{photo}", "--out", "{folder}"],
            "semdict spritemap: error: --out '{folder}' must end in .jpg, .jpeg, .png",
        ),
        (
            ["spritemap", "--images", "{photo}", "--out", "{file}/map.png"],
            "semdict spritemap: error: cannot write --out '{file}/map.png' in '{file}': "
            "'{file}' is a file, not a folder",
        ),
        (
            ["spritemap", "--images", "{photo}", "--out", "{folder}.png"],
            "semdict spritemap: error: --out '{folder}.png' is a folder; give a file name",
        ),
        (
            ["basis", "--images", "{photo}", "--out", "{folder}.npz"],
            "semdict basis: error: --out '{folder}.npz' is a folder; give a file name",
        ),
    ],
    ids=[
        "pages out is a file",
        "folder without suffix",
        "parent is a file",
        "grid is a folder",
        "basis is a folder",
    ],  # fmt: skip
)
def test_a_file_where_a_folder_goes_and_the_reverse(tiny_path, photos, tmp_path, args, message):
    """Bug: each of these printed a FileExistsError, NotADirectoryError or IsADirectoryError."""
    file, folder = tmp_path / "afile", tmp_path / "adir"
    file.write_text("mine")
    for name in (folder, Path(f"{folder}.png"), Path(f"{folder}.npz")):
        name.mkdir()
    values = {"photo": photos / "p0.png", "file": file, "folder": folder}
    filled = [a.format(**values) for a in args]
    result = semdict(*filled, "--layer", "late", "--model", tiny_path)
    assert result.returncode == 1
    assert message.format(**values) in one_clean_line(result.stderr, "semdict")
    assert file.read_text() == "mine"


def test_a_page_that_cannot_be_written_is_listed_and_the_others_are_written(
    tiny_path, photos, tmp_path
):
    """Bug: one page path that was a folder ended the run with a traceback."""
    out = tmp_path / "out"
    (out / "p0-late.html").mkdir(parents=True)  # where the first page would go
    result = semdict(photos / "p0.png", photos / "p1.png", "--layer", "late", "--out", out,
                     "--model", tiny_path, "--no-progress")  # fmt: skip
    assert result.returncode == 1
    line = one_clean_line(result.stderr, "semdict: error: ")
    assert line == (
        f"semdict: error: {photos / 'p0.png'}: cannot write '{out / 'p0-late.html'}': it is a "
        "folder, not a file"
    )
    assert (out / "p1-late.html").read_text().endswith("</html>\n")
    assert "1 of 2 pages written" in result.stdout


def test_an_unwritable_export_output_is_refused_at_once(tmp_path):
    """Bug: the export worked for minutes, then failed on the write with a traceback."""
    read_only = unwritable_folder(tmp_path)
    result = semdict("export", "--replica", "--output", read_only / "m.onnx", "--cache-dir",
                     tmp_path / "cache", user=True)  # fmt: skip
    assert result.returncode == 1
    line = one_clean_line(result.stderr, "export failed: cannot write --output ")
    assert "permission denied" in line and "No model was written" in line
    assert "built" not in result.stdout  # refused before the replica was even built
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []


def test_pages_ctrl_c_keeps_the_finished_pages_and_nothing_half_written(
    replica_model_path, tmp_path
):
    """Bug: Ctrl-C printed a KeyboardInterrupt traceback."""
    images = [EXAMPLES / "chelsea.jpg"] * 200
    out = tmp_path / "out"
    command = [*COMMAND, *map(str, images), "--out", str(out), "--model", str(replica_model_path)]
    result = interrupt(command, progress_reached("semdict mixed4d"))
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
    pages = sorted(out.iterdir())
    assert 0 < len(pages) < len(images)
    files = "file" if len(pages) == 1 else "files"
    first = out / "chelsea-mixed4d.html"
    assert result.last_line.startswith(
        f"semdict: interrupted; kept the {len(pages)} {files} finished before it: {first}"
    )
    assert all(page.read_text().endswith("</html>\n") for page in pages)
    assert no_partial_files(tmp_path) == []
    assert result.seconds_to_stop < 30


@pytest.mark.parametrize(
    ("command", "bar"),
    [
        (["spritemap", "--out", "{out}/map.png"], "dataset examples mixed4d"),
        (["basis", "--out", "{out}/basis.npz"], "NMF mixed4d"),
    ],  # fmt: skip
    ids=["spritemap", "basis"],
)
def test_ctrl_c_while_scanning_writes_nothing(replica_model_path, tmp_path, command, bar):
    folder = tmp_path / "many"
    folder.mkdir()
    for index in range(120):
        (folder / f"cat{index}.jpg").write_bytes((EXAMPLES / "chelsea.jpg").read_bytes())
    out = tmp_path / "out"
    args = [a.format(out=out) for a in command]
    full = [*COMMAND, *args, "--layer", "mixed4d", "--images", str(folder), "--batch-size", "4",
            "--model", str(replica_model_path)]  # fmt: skip
    result = interrupt(full, progress_reached(bar))
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
    assert result.last_line == f"semdict {args[0]}: interrupted; nothing written"
    assert not out.exists()
    assert result.seconds_to_stop < 30
