"""show_semantic_dict() and progress bars in a real Jupyter kernel (this venv's python), run by
nbclient: what a notebook cell shows, how many times, and that nothing prints warnings.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
from notebooks import html_outputs, run_notebook, stream_text
from semdict_helpers import numbered_spritemap, reference_top_k

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "semdict_onnx" / "examples"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


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
            "from semdict_onnx import load_model, semantic_dict, show_semantic_dict\n"
            f"model = load_model({str(replica_model_path)!r})",
            f"shown = show_semantic_dict({str(cat)!r}, layer={layer!r}, model=model, "
            f"spritemap={str(sprites_path)!r})",
            f"show_semantic_dict({str(coffee)!r}, {layer!r}, model)",
            f"cat = semantic_dict({str(cat)!r}, {layer!r}, model)\n"
            "print(shown, type(cat).__name__, cat.start, cat.channels.shape)",
        ],
        jupyter_path,
        monkeypatch,
    )
    printed = notebook.cells[0].outputs[0]["text"].strip()
    assert Path(printed).resolve() == Path(sys.executable).resolve()

    # A single image keeps its aspect ratio: the shorter side at the model's 224.
    acts = [
        replica_model.activations(image, layers=[layer], size=224)[layer][0]
        for image in (cat, coffee)
    ]
    assert acts[0].shape[:2] == (14, 22)  # 451x300 px -> 224x352 input
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
        rows, cols = image_acts.shape[:2]
        assert f'data-rows="{rows}" data-cols="{cols}"' in html
        assert f'"kind":"{sprite_kind}"' in html
        assert "<style>" in html and "window.semdictOnnx1.mount(" in html  # self-contained
        assert "REPLICA MODEL" in html
        ids.append(re.search(r'id="(semdict-[0-9a-f]+)"', html).group(1))
        plain = [o["data"]["text/plain"] for o in cell.outputs if "data" in o]
        assert plain and plain[0].startswith("SemanticDict(layer='mixed4d'")
    assert ids[0] != ids[1]
    start = np.unravel_index(int(np.argmax(acts[0])), acts[0].shape)[:2]
    summary = notebook.cells[4].outputs[0]["text"].strip()
    assert summary == f"None SemanticDict {tuple(map(int, start))} (14, 22, 4)"


def test_show_semantic_dict_as_a_cells_last_line_shows_the_dictionary_once(
    jupyter_path, monkeypatch, replica_model_path
):
    """Issue 10: a display plus the Out[] of the returned object showed it twice."""
    cat = EXAMPLES / "chelsea.jpg"
    call = f"show_semantic_dict({str(cat)!r}, layer='mixed4c', model=model)"
    notebook = run_notebook(
        [
            "from semdict_onnx import load_model, show_semantic_dict\n"
            f"model = load_model({str(replica_model_path)!r})",
            call,  # the bare call as the cell's last line
            f"{call}\n1 + 1",  # not the last line
        ],
        jupyter_path,
        monkeypatch,
    )
    for cell in notebook.cells[1:]:
        carrying = [
            output
            for output in cell.outputs
            if 'class="semdict"' in output.get("data", {}).get("text/html", "")
        ]
        assert len(carrying) == 1, [output.get("output_type") for output in cell.outputs]
        assert carrying[0]["output_type"] == "display_data"
    assert [o["output_type"] for o in notebook.cells[1].outputs] == ["display_data"]
    [result] = [o for o in notebook.cells[2].outputs if o["output_type"] == "execute_result"]
    assert result["data"]["text/plain"] == "2"


def gallery_cell(first_cell: str, model: Path, jupyter_path: Path, monkeypatch):
    """Run `first_cell`, then a gallery of two photos with its progress bar; that cell, and the
    notebook."""
    images = [str(EXAMPLES / "chelsea.jpg"), str(EXAMPLES / "astronaut.jpg")]
    notebook = run_notebook(
        [
            first_cell,
            "import semdict_onnx\n"
            f"model = semdict_onnx.load_model({str(model)!r})\n"
            f"semdict_onnx.gallery({images!r}, 'mixed4c', model, progress=True)",
        ],
        jupyter_path,
        monkeypatch,
    )
    return notebook.cells[1], notebook


def test_a_progress_bar_without_ipywidgets_is_the_plain_bar_and_warns_nothing(
    jupyter_path, monkeypatch, replica_model_path
):
    """Issue 10: every notebook run printed a red `TqdmWarning: IProgress not found`."""
    hide = "import sys; sys.modules['ipywidgets'] = None  # as if it were not installed"
    cell, _ = gallery_cell(hide, replica_model_path, jupyter_path, monkeypatch)
    stderr = stream_text(cell, "stderr")
    assert "Warning" not in stderr, stderr
    assert re.search(r"gallery mixed4c: 100%\|[^\n]*\| 2/2", stderr), stderr  # the plain bar
    assert not [o for o in cell.outputs if WIDGET_VIEW in o.get("data", {})]
    assert [o["output_type"] for o in cell.outputs if o["output_type"] != "stream"] == [
        "execute_result"
    ]


def test_a_progress_bar_with_ipywidgets_is_the_notebook_widget(
    jupyter_path, monkeypatch, replica_model_path
):
    first = "import ipywidgets; print(ipywidgets.__version__)"
    cell, notebook = gallery_cell(first, replica_model_path, jupyter_path, monkeypatch)
    assert stream_text(cell, "stderr") == ""
    [bar] = [o for o in cell.outputs if WIDGET_VIEW in o.get("data", {})]  # tqdm.notebook's
    assert bar["data"]["text/plain"].startswith("gallery mixed4c:")
    model_id = bar["data"][WIDGET_VIEW]["model_id"]
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert state[model_id]["model_name"] == "HBoxModel"


def test_every_progress_bar_is_made_by_the_progress_module():
    """One place chooses the bar (`_progress.progress_bar`): no other module calls tqdm."""
    import ast

    package = ROOT / "semdict_onnx"
    offenders = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "_progress.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tqdm.auto"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports tqdm.auto")
            called = node.func if isinstance(node, ast.Call) else None
            name = getattr(called, "id", None) or getattr(called, "attr", None)
            if name in ("tqdm", "trange"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} calls {name}")
    assert offenders == []
