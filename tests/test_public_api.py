"""The public API: every name in `__all__` is what its docs say, whichever is used first.

Each name is touched first in a fresh interpreter, and then every public name is checked to
be the documented function or class, never a module (issue #10: `semdict_onnx.semantic_dict`
used to become the submodule of that name once another name from it had been imported).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tiny_model
from PIL import Image

import semdict_onnx

PACKAGE = Path(semdict_onnx.__file__).resolve().parent
EXAMPLE = PACKAGE / "examples" / "chelsea.jpg"
# What README.md and docs/ say each public name is.
DOCUMENTED = {
    "Basis": "class",
    "BasisView": "class",
    "DatasetState": "class",
    "Gallery": "class",
    "LayerCandidate": "class",
    "Model": "class",
    "Preprocessing": "class",
    "RayEngine": "class",
    "SemanticDict": "class",
    "Spritemap": "class",
    "TopClass": "class",
    "TopExamples": "class",
    "build_spritemap": "function",
    "factorize": "function",
    "fit_basis": "function",
    "gallery": "function",
    "layers_table": "function",
    "list_layers": "function",
    "load_image": "function",
    "load_model": "function",
    "prepare_model": "function",
    "receptive_fields": "function",
    "render_spritemap": "function",
    "RenderSettings": "class",
    "scan_dataset": "function",
    "scan_examples": "function",
    "semantic_dict": "function",
    "show_semantic_dict": "function",
    "spritemap_from_examples": "function",
    "strongest_position": "function",
    "to_batch": "function",
    "top_k_channels": "function",
    "visualize": "function",
}
DESCRIBE_ALL = """
import inspect, json
import semdict_onnx as package

def describe(value):
    kind = "module" if inspect.ismodule(value) else "class" if inspect.isclass(value) else (
        "function" if inspect.isfunction(value) else type(value).__name__)
    return [kind, getattr(value, "__name__", None), getattr(value, "__module__", None),
            bool((getattr(value, "__doc__", "") or "").strip())]

print(json.dumps({name: describe(getattr(package, name)) for name in package.__all__}))
"""


def run_python(code: str) -> str:
    """Run `code` in a fresh interpreter; return its last line of output."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_all_lists_exactly_the_documented_names():
    assert sorted(semdict_onnx.__all__) == sorted(DOCUMENTED)
    assert set(DOCUMENTED) <= set(dir(semdict_onnx))


def test_no_public_name_is_also_a_module_name():
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    modules |= {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert set(semdict_onnx.__all__) & modules == set()


def test_every_name_is_what_its_docs_say_whichever_is_used_first():
    def after_touching(first: str) -> dict:
        code = f"import semdict_onnx\nsemdict_onnx.{first}\n{DESCRIBE_ALL}"
        return json.loads(run_python(code))

    with ThreadPoolExecutor(max_workers=2) as pool:
        seen = dict(zip(DOCUMENTED, pool.map(after_touching, DOCUMENTED), strict=True))
    for first, described in seen.items():
        for name, (kind, own_name, module, has_doc) in described.items():
            where = f"{name} after touching {first} first"
            assert kind == DOCUMENTED[name], where
            assert own_name == name, where
            assert module.startswith("semdict_onnx._"), where  # defined in a private module
            assert has_doc, f"{where}: no docstring"


@pytest.mark.parametrize(
    "imports",
    [
        "from semdict_onnx import show_semantic_dict, semantic_dict",  # README's order
        "from semdict_onnx import SemanticDict, Gallery, semantic_dict",
        "import semdict_onnx; semdict_onnx.gallery; semantic_dict = semdict_onnx.semantic_dict",
    ],
)
def test_readme_usage_runs_after_importing_neighbours_first(imports: str, tmp_path: Path):
    path = tiny_model.write_tiny_model(tmp_path / "tiny.onnx")
    result = run_python(
        f"""
        {imports}
        from semdict_onnx import load_model
        result = semantic_dict({str(EXAMPLE)!r}, "late", load_model({str(path)!r}))
        print(type(result).__name__, result.layer)
        """
    )
    assert result == "SemanticDict late"


def readme_python() -> str:
    """README.md's python blocks of its Usage section, top to bottom, as one script ("Your own
    model" runs in test_byom_cli).

    A bare expression whose comment starts with a tuple (`acts["mixed4d"].shape  # (1, 14, ...)`)
    becomes an assertion that it equals that tuple, so the README's claims are checked too.
    """
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    usage = readme.split("### Your own model", 1)[0]
    statements = []
    for block in re.findall(r"```python\n(.*?)```", usage, re.DOTALL):
        block_lines = block.splitlines()
        for statement in ast.parse(block).body:
            code = ast.get_source_segment(block, statement)
            comment = block_lines[statement.end_lineno - 1].partition("  #")[2]
            claim = re.match(r"\s*(\([\d, ]+\))", comment)
            if claim and isinstance(statement, ast.Expr):
                code = f"assert ({code}) == {claim.group(1)}, {code!r}"
            statements.append(code)
    return "\n".join(statements)


def test_the_readme_usage_runs_top_to_bottom_in_a_fresh_interpreter(replica_model_path, tmp_path):
    """Issue 10: the README's own Usage block ended in `'module' object is not callable`."""
    script = readme_python()
    assert 'assert (acts["mixed4d"].shape) == (1, 14, 14, 528)' in script
    home = tmp_path / "home"
    home.mkdir()
    (home / "googlenet.onnx").symlink_to(replica_model_path)  # load_model()'s default path
    work = tmp_path / "work"
    work.mkdir()
    shutil.copyfile(EXAMPLE, work / "cat.jpg")
    shutil.copyfile(PACKAGE / "examples" / "coffee.jpg", work / "dog.jpg")
    wide = Image.new("RGB", (448, 224))  # a 2:1 photo: two halves
    wide.paste(Image.open(EXAMPLE).convert("RGB").resize((224, 224)), (0, 0))
    wide.paste(Image.open(work / "dog.jpg").convert("RGB").resize((224, 224)), (224, 0))
    wide.save(work / "wide.jpg")
    script += (
        "\nwide = semdict_onnx.semantic_dict('wide.jpg', layer='mixed4d')"
        "\nprint('wide grid', wide.rows, wide.cols)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=work,
        env={**os.environ, "SEMDICT_ONNX_HOME": str(home)},
    )
    assert done.returncode == 0, done.stderr
    assert "SemanticDict(layer='mixed4d'" in done.stdout  # show_semantic_dict outside a notebook
    assert done.stdout.strip().splitlines()[-1] == "wide grid 14 28"  # the README's 14x28
    for written in ("cat.html", "cat.npz", "gallery.html"):
        assert (work / written).stat().st_size > 0, written
