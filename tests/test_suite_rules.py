"""The suite's own rules (tests/conftest.py): a missing dependency fails loudly, never a skip;
markers follow the fixtures a test uses. Each check runs pytest in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import ROOT, RUNTIME_ONLY_ENV

TESTS = ROOT / "tests"


def pytest_run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path = ROOT):
    """`python -m pytest ARGS` in a subprocess, with this suite's conftest loaded."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


HIDE_PLAYWRIGHT = """
import sys


class HidePlaywright:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "playwright":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, HidePlaywright())
"""


def test_a_missing_playwright_fails_the_chromium_tests(tmp_path: Path):
    # A sitecustomize that makes Python find no playwright, as if it were not installed.
    (tmp_path / "sitecustomize.py").write_text(HIDE_PLAYWRIGHT, encoding="utf-8")
    chromium_tests = TESTS / "test_page_chromium.py"
    present = pytest_run("--collect-only", "-q", chromium_tests)
    assert present.returncode == 0, present.stdout + present.stderr
    assert " tests collected" in present.stdout

    missing = pytest_run("-q", chromium_tests, env={"PYTHONPATH": str(tmp_path)})
    output = missing.stdout + missing.stderr
    assert missing.returncode not in (0, 5), output  # 5 (nothing collected) is no pass either
    assert "No module named 'playwright'" in output
    assert "ERROR tests/test_page_chromium.py" in output  # its import fails: an error, no skip
    assert " skipped" not in output


def test_only_declared_skips_skip(tmp_path: Path):
    (tmp_path / "test_skips.py").write_text(
        textwrap.dedent(
            """
            import pytest

            def test_skip_in_the_body():
                pytest.skip("an optional dependency is missing")

            def test_importorskip_in_the_body():
                pytest.importorskip("a_module_nobody_installed")

            @pytest.fixture
            def needs_something():
                pytest.skip("something is missing")

            def test_skip_in_a_fixture(needs_something):
                pass

            @pytest.mark.skipif(True, reason="needs a machine where CUDA can run")
            def test_declared_skip():
                raise AssertionError("never runs")

            def test_passes():
                pass
            """
        )
    )
    done = pytest_run(
        "-p", "conftest", "-rfEs", tmp_path, env={"PYTHONPATH": str(TESTS)}, cwd=tmp_path
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    # A skip in a fixture fails its setup: pytest counts that as an error.
    assert "2 failed, 1 passed, 1 skipped, 1 error" in output
    assert "FAILED test_skips.py::test_skip_in_the_body" in output
    assert "FAILED test_skips.py::test_importorskip_in_the_body" in output
    assert "ERROR test_skips.py::test_skip_in_a_fixture" in output
    assert "SKIPPED [1] test_skips.py" in output and "needs a machine where CUDA" in output
    assert "not declared with a skip/skipif marker" in output


def test_markers_follow_the_fixtures_a_test_uses():
    files = ["test_export.py", "test_download.py", "test_runtime_parity.py"]
    files += ["test_benchmark_smoke.py", "test_model.py", "test_page_chromium.py"]
    files += ["test_notebook.py"]

    def selected(marker: str) -> set[str]:
        # Outside the runtime-only environment, which deselects every `export` test.
        paths = [TESTS / name for name in files]
        done = pytest_run("--collect-only", "-q", "-m", marker, *paths, env={RUNTIME_ONLY_ENV: ""})
        assert done.returncode == 0, done.stdout + done.stderr
        return {line.split("::")[0] for line in done.stdout.splitlines() if "::" in line}

    export = selected("export")
    assert {"tests/test_export.py", "tests/test_download.py"} <= export
    assert {"tests/test_runtime_parity.py", "tests/test_benchmark_smoke.py"} <= export
    assert "tests/test_model.py" not in export and "tests/test_page_chromium.py" not in export
    assert selected("browser") == {"tests/test_page_chromium.py"}
    assert selected("kernel") == {"tests/test_notebook.py"}
