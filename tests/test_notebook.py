"""show_semantic_dict() in a real Jupyter kernel (this venv's python), executed with nbclient."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from semdict_helpers import numbered_spritemap, reference_top_k

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "semdict_onnx" / "examples"
KERNEL = "semdict-onnx-test"


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data folder holding a kernelspec that runs this very interpreter."""
    prefix = tmp_path_factory.mktemp("kernel")
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix), "--name", KERNEL],
        check=True,
        capture_output=True,
    )
    return prefix / "share" / "jupyter"


def run_notebook(cells: list[str], jupyter_path: Path, monkeypatch) -> nbformat.NotebookNode:
    """Execute code cells in a fresh kernel started from the test kernelspec."""
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    client = NotebookClient(
        notebook, kernel_name=KERNEL, timeout=300, resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()
    return notebook


def html_outputs(cell: nbformat.NotebookNode) -> list[str]:
    """The text/html parts of a cell's display outputs."""
    return [
        output["data"]["text/html"]
        for output in cell.outputs
        if output.get("output_type") in ("display_data", "execute_result")
        and "text/html" in output.get("data", {})
    ]


def test_show_semantic_dict_displays_the_dictionary_in_a_kernel(
    jupyter_path, monkeypatch, replica_model_path, replica_model, tmp_path
):
    layer = "mixed4d"
    sprites = numbered_spritemap(replica_model.layers[layer], layer, per_row=22, size=24)
    sprites_path = sprites.save(tmp_path / "mixed4d.png")
    cat, coffee = EXAMPLES / "chelsea.jpg", EXAMPLES / "coffee.jpg"
    notebook = run_notebook(
        [
            "import sys; print(sys.executable)",
            "from semdict_onnx import load_model, show_semantic_dict\n"
            f"model = load_model({str(replica_model_path)!r})",
            f"cat = show_semantic_dict({str(cat)!r}, layer={layer!r}, model=model, "
            f"spritemap={str(sprites_path)!r})",
            f"cup = show_semantic_dict({str(coffee)!r}, {layer!r}, model)",
            "print(type(cat).__name__, cat.start, cat.channels.shape)",
        ],
        jupyter_path,
        monkeypatch,
    )
    printed = notebook.cells[0].outputs[0]["text"].strip()
    assert Path(printed).resolve() == Path(sys.executable).resolve()

    acts = replica_model.activations([cat, coffee], layers=[layer])[layer]
    ids = []
    for cell, image_acts, sprite_kind in [
        (notebook.cells[2], acts[0], "embedded"),
        (notebook.cells[3], acts[1], "none"),
    ]:
        [html] = html_outputs(cell)
        row, col, _ = np.unravel_index(int(np.argmax(image_acts)), image_acts.shape)
        shown = [int(c) for c in re.findall(r'data-channel="(\d+)"', html)]
        assert shown == reference_top_k(image_acts, 4)[0][row, col].tolist()
        assert f'data-selected-row="{row}" data-selected-col="{col}"' in html
        assert f'"kind":"{sprite_kind}"' in html
        assert "<style>" in html and "window.semdictOnnx1.mount(" in html  # self-contained
        assert "REPLICA MODEL" in html
        ids.append(re.search(r'id="(semdict-[0-9a-f]+)"', html).group(1))
        plain = [o["data"]["text/plain"] for o in cell.outputs if "data" in o]
        assert plain and plain[0].startswith("SemanticDict(layer='mixed4d'")
    assert ids[0] != ids[1]
    start = np.unravel_index(int(np.argmax(acts[0])), acts[0].shape)[:2]
    summary = notebook.cells[4].outputs[0]["text"].strip()
    assert summary == f"SemanticDict {tuple(map(int, start))} (14, 14, 4)"
