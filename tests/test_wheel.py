"""The package as pip users get it, without a clone.

The wheel is built from this tree's files (as git lists them, so a stale build/ folder cannot
leak in), checked for the package data, installed with the `export` extra into a fresh
virtual environment (pip's cache makes the second time quick), and from there, in a folder
outside the clone, `semdict export --replica` writes the model and `semdict PHOTO` a page.
Minutes, most of them installing TensorFlow: deselect with `-m "not wheel"`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = [pytest.mark.export, pytest.mark.wheel]

PACKAGE = ROOT / "semdict_onnx"


def run(*command: str | Path, cwd: Path, timeout: float = 1200) -> str:
    """Run `command` in `cwd` without this clone on the path; its stdout, or the test fails."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env={**env, "SEMDICT_ONNX_HOME": str(cwd / "home")},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        pytest.fail(f"{command} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel` builds from a copy of this tree's git-listed files."""
    source = tmp_path_factory.mktemp("source")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (item.decode() for item in listed)):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", out, source, cwd=out)
    (built,) = out.glob("semdict_onnx-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh virtual environment with the wheel and its export extra."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=venv.parent)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", f"{wheel}[export]",
        cwd=venv.parent)  # fmt: skip
    return venv / "bin"


def test_the_wheel_holds_the_package_data_and_the_export(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("static", "examples"):
        shipped = {f"semdict_onnx/{folder}/{path.name}" for path in (PACKAGE / folder).iterdir()}
        assert shipped, folder
        assert shipped <= names, sorted(shipped - names)
    modules = {f"semdict_onnx/export/{path.name}" for path in (PACKAGE / "export").glob("*.py")}
    assert {"semdict_onnx/export/__main__.py", "semdict_onnx/export/_cli.py"} <= modules
    assert modules <= names
    # The package and its metadata, nothing else (no tests, scripts or benchmarks).
    tops = {name.split("/")[0] for name in names}
    assert tops == {"semdict_onnx", next(top for top in tops if top.endswith(".dist-info"))}
    meta_name = next(name for name in names if name.endswith(".dist-info/METADATA"))
    meta = Parser().parsestr(zipfile.ZipFile(wheel).read(meta_name).decode())
    assert {"export", "test-runtime", "test"} <= set(meta.get_all("Provides-Extra"))
    requires = meta.get_all("Requires-Dist")
    export_only = [r for r in requires if "tensorflow" in r or "tf2onnx" in r or "pooch" in r]
    assert len(export_only) == 3 and all('extra == "export"' in r for r in export_only)


def test_the_installed_wheel_exports_the_replica_and_writes_a_page(installed: Path, tmp_path):
    exported = run(installed / "semdict", "export", "--replica", "--no-progress", cwd=tmp_path)
    model = tmp_path / "home" / "googlenet.onnx"  # the default place, in $SEMDICT_ONNX_HOME
    assert f"wrote {model}" in exported
    assert "REPLICA MODEL: random weights" in exported and "FAIL" not in exported
    usage = run(installed / "python", "-m", "semdict_onnx.export", "--help", cwd=tmp_path)
    assert usage.startswith("usage: python -m semdict_onnx.export")

    find_photo = "from importlib.resources import files as f; print(f('semdict_onnx'))"
    photo = Path(run(installed / "python", "-c", find_photo, cwd=tmp_path).strip())
    photo = photo / "examples" / "chelsea.jpg"
    assert photo.is_file() and photo.is_relative_to(installed.parent)  # not from this clone
    written = run(installed / "semdict", photo, "--out", "pages", "--no-progress",
                  cwd=tmp_path)  # fmt: skip
    page = tmp_path / "pages" / "chelsea-mixed4d.html"
    assert f"wrote {Path('pages') / page.name}" in written
    text = page.read_text(encoding="utf-8")
    payload = json.loads(re.search(r'class="sd-data">(.*?)</script>', text).group(1))
    grid = {key: payload[key] for key in ("layer", "rows", "cols", "k")}
    # The 451x300 photo keeps its aspect ratio: it goes in at 224x352.
    assert grid == {"layer": "mixed4d", "rows": 14, "cols": 22, "k": 4}
    assert len(payload["bases"][0]["channels"]) == 14 * 22 * 4
    # The page's script and style come from the installed package data.
    script = (PACKAGE / "static" / "semdict.js").read_text(encoding="utf-8")
    assert script.strip().splitlines()[-1] in text
