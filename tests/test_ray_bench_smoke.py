"""benchmarks/ray_bench.py still runs end to end and writes every row (timings are not checked)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NUMBER = r"[0-9]+(?:\.[0-9]+)?"
OVERHEAD = rf"[+-]{NUMBER}% \(under 15%: (yes|NO)\)"


def test_quick_run_writes_every_row(ray_cluster, replica_model_path, tmp_path):
    out, raw = tmp_path / "RESULTS-ray.md", tmp_path / "raw.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "ray_bench.py"), "--quick"]
    command += ["--model", str(replica_model_path), "--address", ray_cluster]
    command += ["--out", str(out), "--json", str(raw)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = out.read_text(encoding="utf-8")
    assert table in done.stdout
    rows = {
        cells[0]: cells
        for line in table.splitlines()
        if line.startswith("| ") and not line.startswith("| engine")
        for cells in [[cell.strip() for cell in line.strip().strip("|").split("|")]]
    }
    assert sorted(rows) == [
        "Ray, 1 worker",
        "Ray, 2 workers",
        "local, 1 core",
        "local, 2 cores",
        "read and resize only, 1 core",
    ]
    for name, cells in rows.items():
        assert all(re.fullmatch(NUMBER, value) for value in cells[1:4]), cells
        if name.startswith("Ray"):
            assert re.fullmatch(NUMBER, cells[4]) and re.fullmatch(OVERHEAD, cells[6]), cells
    assert "Projection (not a measurement)" in table and "load average (1 min) before" in table
    seconds = json.loads(raw.read_text(encoding="utf-8"))["seconds"]
    assert all(len(times) == 1 for times in seconds.values())
