"""benchmarks/featurevis_bench.py still runs end to end and writes every row (timings unchecked).

scripts/gpu_check.sh --dry-run, which runs its `spritemap` mode as a step, is covered by
tests/test_benchmark_smoke.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "featurevis_bench.py"
NUMBER = r"[0-9]+(?:\.[0-9]+)?"


def run(*arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def cells(text: str, first: str, batch: str | None = None) -> list[str]:
    """The cells of the table row starting with `first` (and with `batch` second)."""
    for line in text.splitlines():
        row = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and row[0] == first and batch in (None, row[1]):
            return row
    raise AssertionError(f"no row {first!r} {batch or ''} in:\n{text}")


def test_quick_comparison_writes_every_row(tmp_path, replica_graphdef_path, replica_model_path):
    out = tmp_path / "RESULTS-featurevis.md"
    printed = run(
        "--quick",
        "--graphdef",
        str(replica_graphdef_path),
        "--model",
        str(replica_model_path),
        "--out",
        str(out),
        "--json",
        str(out.with_suffix(".json")),
    )
    text = out.read_text(encoding="utf-8")
    assert text in printed
    for what in ("network gradient (forward + backward)", "whole optimization step"):
        for batch in ("1", "2"):
            row = cells(text, what, batch)
            assert all(re.fullmatch(NUMBER, value) for value in row[2:4]), row
            assert re.fullmatch(rf"{NUMBER}x", row[4]), row
    for first in ("seconds per channel", "all 528 channels, projected minutes"):
        assert all(re.fullmatch(NUMBER, value) for value in cells(text, first)[1:]), first
    assert re.search(r"at least 1\.3x faster than TensorFlow: (yes|NO)", text)
    raw = json.loads(out.with_suffix(".json").read_text())
    assert set(raw["seconds"]) == {
        f"{side}_{kind}_b{batch}"
        for side in ("tf", "ort")
        for kind in ("grad", "step")
        for batch in (1, 2)
    }


def test_spritemap_mode_times_a_render(tmp_path, replica_model_path):
    out = tmp_path / "spritemap.md"
    run(
        "spritemap",
        "--model",
        str(replica_model_path),
        "--provider",
        "CPUExecutionProvider",
        "--channels",
        "2",
        "--steps",
        "2",
        "--no-progress",
        "--out",
        str(out),
    )
    row = cells(out.read_text(), "render_spritemap")
    assert row[1:6] == ["mixed4d", "2 of 528", "2", "128", "CPUExecutionProvider"], row
    assert re.fullmatch(NUMBER, row[6]) and row[7] == "partial"
