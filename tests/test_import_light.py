"""The runtime never imports TensorFlow, and `import semdict_onnx` stays light.

Only semdict_onnx.export uses the export extra (TensorFlow, tf2onnx, pooch and its requests),
and only when an export runs. In scripts/test.sh's runtime-only environment
($SEMDICT_TEST_RUNTIME_ONLY set) the extra is not installed at all, and the runtime tests pass
there too. Likewise only _ray_engine.py imports Ray (the ray extra), and only for
engine="ray": the local engine imports neither Ray nor pyarrow (_storage.py imports pyarrow
for storage URIs only).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tiny_model
from conftest import RUNTIME_ONLY_ENV

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "tf2onnx", "pooch", "requests")
EXPORT = REPO / "semdict_onnx" / "export"


def modules_after(code: str) -> set[str]:
    """The top-level modules loaded after running `code` in a fresh interpreter."""
    script = textwrap.dedent(code) + textwrap.dedent(
        """
        import json, sys
        print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_plain_import_loads_neither_onnxruntime_nor_tensorflow():
    loaded = modules_after("import semdict_onnx")
    assert "semdict_onnx" in loaded
    assert not {"onnxruntime", *HEAVY} & loaded


def test_image_loading_needs_no_onnxruntime():
    loaded = modules_after(
        """
        import numpy as np
        from semdict_onnx._images import to_batch
        to_batch(np.zeros((4, 4, 3), np.uint8), 8, 8)
        """
    )
    assert not {"onnxruntime", *HEAVY} & loaded


@pytest.mark.parametrize("which", ["tiny", "replica"])
def test_loading_and_running_a_model_imports_no_tensorflow(
    which: str, tmp_path: Path, request: pytest.FixtureRequest
):
    if which == "tiny":
        path = tiny_model.write_tiny_model(tmp_path / "tiny.onnx")
    else:
        path = request.getfixturevalue("replica_model_path")
    loaded = modules_after(
        f"""
        import semdict_onnx
        model = semdict_onnx.load_model({str(path)!r})
        names = [*model.layers, model.info.class_output]
        result = model.activations(
            [{str(REPO / "semdict_onnx/examples/chelsea.jpg")!r}], layers=names
        )
        assert set(result) == set(names)
        """
    )
    assert "onnxruntime" in loaded
    assert not set(HEAVY) & loaded


def imports_of(packages: tuple[str, ...]) -> re.Pattern[str]:
    """An import statement, or a dynamic import, naming any of `packages`."""
    names = "|".join(packages)
    return re.compile(
        rf"^\s*(import|from)\s+({names})\b|(import_module|__import__)\(\s*['\"]({names})",
        re.MULTILINE,
    )


def test_no_runtime_source_mentions_a_tensorflow_import():
    pattern = imports_of(HEAVY)
    offenders = [
        str(path.relative_to(REPO))
        for path in (REPO / "semdict_onnx").rglob("*.py")
        if EXPORT not in path.parents and pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_inside_the_export_one_module_imports_each_heavy_package():
    importers = {
        package: sorted(
            path.name
            for path in EXPORT.glob("*.py")
            if imports_of((package,)).search(path.read_text(encoding="utf-8"))
        )
        for package in HEAVY
    }
    assert importers == {
        "tensorflow": ["_tf_env.py"],
        "tf2onnx": ["_tf_env.py"],
        "pooch": ["_download.py"],
        "requests": ["_download.py"],
    }


def test_the_export_command_line_answers_without_heavy_imports():
    loaded = modules_after(
        """
        import contextlib, io
        import semdict_onnx.export
        from semdict_onnx._cli.main import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            main(["export", "--help"])
        """
    )
    assert "semdict_onnx" in loaded
    assert not set(HEAVY) & loaded


def test_an_export_without_the_export_extra_says_what_to_install(tmp_path: Path):
    # TensorFlow made unimportable, as in an environment without the export extra.
    code = (
        "import sys; sys.modules['tensorflow'] = None; "
        "from semdict_onnx._cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    output = tmp_path / "out" / "googlenet.onnx"
    args = ["export", "--replica", "--cache-dir", tmp_path / "cache", "--output", output]
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "export failed: the export needs tensorflow" in done.stderr
    assert "pip install 'semdict_onnx[export]'" in done.stderr
    assert f"No model was written to {output}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not output.parent.exists()


def test_tensorflow_is_installed_exactly_where_the_export_extra_is():
    """Not installed at all in the runtime-only environment; installed by the test extra."""
    runtime_only = bool(os.environ.get(RUNTIME_ONLY_ENV))
    for package in ("tensorflow", "tf2onnx", "pooch"):
        done = subprocess.run(
            [sys.executable, "-c", f"import {package}"], capture_output=True, text=True, timeout=300
        )
        if runtime_only:
            assert done.returncode != 0, f"{package} is importable in the runtime-only environment"
            assert f"No module named '{package}'" in done.stderr
            assert importlib.util.find_spec(package) is None
        else:
            assert done.returncode == 0, done.stderr


def test_the_local_engine_imports_neither_ray_nor_pyarrow(tmp_path: Path):
    path = tiny_model.write_tiny_model(tmp_path / "tiny.onnx")
    loaded = modules_after(
        f"""
        import warnings
        import semdict_onnx
        spritemap = semdict_onnx.build_spritemap(
            [{str(REPO / "semdict_onnx/examples/chelsea.jpg")!r}], "late", {str(path)!r},
            sprite_size=8, progress=False, checkpoint={str(tmp_path / "checkpoint")!r},
        )
        assert spritemap.manifest["images_seen"] == 1
        """
    )
    assert "semdict_onnx" in loaded and "onnxruntime" in loaded
    assert not {"ray", "pyarrow", *HEAVY} & loaded


def test_only_the_ray_engine_imports_ray_and_only_storage_imports_pyarrow():
    sources = {
        path.name: path.read_text(encoding="utf-8")
        for path in (REPO / "semdict_onnx").rglob("*.py")
    }
    assert sorted(n for n, text in sources.items() if imports_of(("ray",)).search(text)) == [
        "_ray_engine.py"
    ]
    assert sorted(n for n, text in sources.items() if imports_of(("pyarrow",)).search(text)) == [
        "_storage.py"
    ]
