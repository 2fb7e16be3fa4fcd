"""Running notebooks for the tests: cells executed by nbclient in a real kernel, their outputs.

The kernel is TEST_KERNEL, a kernelspec running this very interpreter, which the `jupyter_path`
fixture (conftest.py) installs into a temporary Jupyter data folder.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
TEST_KERNEL = "semdict-onnx-test"


def new_notebook(cells: list[str]) -> nbformat.NotebookNode:
    """A notebook of code cells that runs on TEST_KERNEL."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    notebook.metadata["kernelspec"] = {
        "name": TEST_KERNEL,
        "display_name": "semdict_onnx tests",
        "language": "python",
    }
    return notebook


def run_notebook(cells: list[str], jupyter_path: Path, monkeypatch) -> nbformat.NotebookNode:
    """Execute code cells in a fresh kernel started from the test kernelspec."""
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    notebook = new_notebook(cells)
    client = NotebookClient(
        notebook, kernel_name=TEST_KERNEL, timeout=300, resources={"metadata": {"path": str(ROOT)}}
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


def stream_text(cell: nbformat.NotebookNode, name: str) -> str:
    """Everything a cell printed on one stream ("stdout" or "stderr")."""
    return "".join(
        output["text"]
        for output in cell.outputs
        if output.get("output_type") == "stream" and output.get("name") == name
    )
