"""The runtime never imports TensorFlow, and `import semdict_onnx` stays light."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tiny_model

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "tf2onnx")


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


def test_no_runtime_source_mentions_a_tensorflow_import():
    # An import statement, or a dynamic import naming either package.
    pattern = re.compile(
        r"^\s*(import|from)\s+(tensorflow|tf2onnx)\b"
        r"|(import_module|__import__)\(\s*['\"](tensorflow|tf2onnx)",
        re.MULTILINE,
    )
    offenders = [
        str(path.relative_to(REPO))
        for path in (REPO / "semdict_onnx").rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
