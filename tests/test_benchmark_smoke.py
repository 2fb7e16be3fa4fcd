"""benchmarks/bench.py still runs end to end and writes every row (timings are not checked)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench  # noqa: E402

pytestmark = pytest.mark.export  # the benchmarks and scripts/gpu_check.sh export the replica

NUMBER = r"[0-9]+(?:\.[0-9]+)?"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, replica_graphdef_path, replica_model_path) -> Path:
    """`bench.py --quick` on the shared replica: the path of its RESULTS.md (raw times beside)."""
    out = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    command = [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick"]
    command += ["--graphdef", str(replica_graphdef_path), "--model", str(replica_model_path)]
    command += ["--out", str(out), "--json", str(out.with_suffix(".json"))]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert out.read_text(encoding="utf-8") in done.stdout  # the same table is printed
    return out


@pytest.fixture(scope="module")
def quick_results(quick_run: Path) -> str:
    """The text of that RESULTS.md."""
    return quick_run.read_text(encoding="utf-8")


def table_row(text: str, first_cell: str) -> list[str]:
    """The cells of the table row starting with `first_cell`."""
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{text}")


def test_every_warm_case_has_a_row_of_numbers(quick_results):
    section = quick_results.split("## Warm calls", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    for side, what, _, batch in bench.CASES.values():
        if side == "bf16" and bench.bf16_missing():  # this processor cannot run bfloat16
            assert f"precision='bf16' not measured: {bench.bf16_missing()}." in quick_results
            continue
        size = "1" if batch == "1" else str(bench.QUICK.batch)
        matching = [r for r in rows if r.startswith(f"| {what} |") and f"| {size} |" in r]
        assert len(matching) == 1, (what, size, rows)
        cells = [cell.strip() for cell in matching[0].strip().strip("|").split("|")]
        for value in cells[3:7]:  # ms / call, ms / image, images/s, GFLOP/s
            assert re.fullmatch(NUMBER, value), (what, value)
        assert re.fullmatch(rf"{NUMBER}%", cells[7]) and re.fullmatch(rf"{NUMBER}x", cells[8])


def test_cold_processes_matmul_targets_and_sections(quick_results):
    for name in ("tf_cold", "ort_cold"):
        cells = table_row(quick_results, name)
        assert re.fullmatch(NUMBER, cells[2]) and re.fullmatch(NUMBER, cells[3]), cells
    ceiling = table_row(quick_results, "OPENBLAS_CORETYPE/L2_SIZE unset")
    assert re.fullmatch(NUMBER, ceiling[2]) and "x" in ceiling[3], ceiling
    batch = bench.QUICK.batch
    for target in (
        "warm activations, batch 1: >= 1.4x faster than cached TF",
        f"warm activations, batch {batch}: >= 1.3x faster per image than TF",
        "quiet, batch 1: at least as fast as OpenVINO float32",
        f"quiet, batch {batch}: at least as fast as OpenVINO float32 (its faster way)",
        "busy, batch 1: >= 1.2x faster than cached TF under the same load",
        f"busy, batch {batch}: >= 1.2x faster per image than TF",
        "busy, batch 1: at least as fast as OpenVINO float32",
        "cold process to a saved page: >= 8x faster than TF",
        "cold process peak memory: <= 1/4 of TF's",
    ):
        assert table_row(quick_results, target)[2] in ("yes", "NO")
    semdict = [r for r in quick_results.splitlines() if r.startswith("| semantic_dict() end")]
    assert len(semdict) == 1 and semdict[0].rstrip().endswith(("| yes |", "| NO |"))
    for heading in ("## Environment", "## Spritemap overhead", "## GPU"):
        assert heading in quick_results
    assert "| build_spritemap |" in quick_results
    assert "| reading alone (decode + resize, one thread) |" in quick_results
    assert re.search(r"most it can be on \d+ cores: \d+%", quick_results)


def test_the_busy_machine_has_a_row_per_engine_and_batch(quick_results):
    """The busy part ran every engine under one busy process per half of the cores."""
    count = bench.busy_processes_for()
    assert f"## Busy machine: {count} `while True: pass` process(es) beside" in quick_results
    section = quick_results.split("## Busy machine", 1)[1].split("\n## ", 1)[0]
    for case in bench.BUSY_CASES:
        _, what, _, kind = bench.CASES[case]
        size = "1" if kind == "1" else str(bench.QUICK.batch)
        rows = [r for r in section.splitlines() if r.startswith(f"| {what} | {size} |")]
        assert len(rows) == 1, (case, section)
        cells = [cell.strip() for cell in rows[0].strip().strip("|").split("|")]
        assert re.fullmatch(NUMBER, cells[2]) and re.fullmatch(rf"{NUMBER}x", cells[3]), cells
        assert re.fullmatch(NUMBER, cells[4]) and re.fullmatch(rf"{NUMBER}x", cells[5]), cells


def test_the_busy_processes_are_stopped():
    with bench.BusyLoad(2) as load:
        pids = load.pids
        assert len(pids) == 2 and all(Path(f"/proc/{pid}").exists() for pid in pids)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_raw_times_are_kept(quick_run):
    raw = json.loads(quick_run.with_suffix(".json").read_text())
    for case, calls in bench.QUICK.iterations.items():
        assert len(raw["seconds"][case]) == calls * bench.QUICK.rounds
    for case in bench.BUSY_CASES:
        assert len(raw["busy"][case]) == bench.QUICK.iterations[case] * bench.QUICK.busy_rounds


def test_gpu_check_dry_run_runs_every_step_on_the_cpu(tmp_path):
    gpu_results = ROOT / "benchmarks" / "RESULTS-gpu.md"
    before = gpu_results.read_bytes() if gpu_results.exists() else None
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    env.pop("SEMDICT_TEST_PROVIDER", None)
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"\d+ passed", (tmp_path / "gpu-tests.log").read_text())
    table = (tmp_path / "gpu-results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| float")]
    io_bound = "IO binding, outputs left on the device"
    for variant, batch, how in [
        ("float32 (default: TF32 off)", "1", "`model.activations`"),
        ("float32 (default: TF32 off)", "1", io_bound),
        ("float32 (default: TF32 off)", "4", io_bound),
        ("float16", "1", io_bound),
        ("float16", "4", io_bound),
    ]:
        assert any(r.startswith(f"| {variant} | {batch} | {how} |") for r in rows), (variant, rows)
    prepared = [line for line in table.splitlines() if line.startswith("| prepared ResNet")]
    assert [r.split("|")[2].strip() for r in prepared] == ["1", "4"], table
    assert all(re.search(rf"\| {NUMBER}e[+-]\d+ \|$", r) for r in prepared), prepared
    for step in ("pure inference, mixed4d, decoded arrays", "build_spritemap from JPEG files"):
        (row,) = [line for line in table.splitlines() if line.startswith(f"| {step}")]
        assert re.search(rf"\| {NUMBER} \| {NUMBER}% \|$", row), row
    float16 = [r for r in rows if r.startswith("| float16 ")]
    assert all(re.search(rf"{NUMBER}% in order \({NUMBER}% as sets\)", r) for r in float16)
    # A dry run never passes for GPU figures.
    assert (gpu_results.read_bytes() if gpu_results.exists() else None) == before


def test_variants_table_has_every_variant(tmp_path, replica_graphdef_path, replica_model_path):
    import variants

    out = tmp_path / "VARIANTS.md"
    command = [sys.executable, str(ROOT / "benchmarks" / "variants.py"), "--rounds", "1"]
    command += ["--calls", "1", "--graphdef", str(replica_graphdef_path)]
    command += ["--model", str(replica_model_path), "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")][1:]
    assert len(rows) == len(variants.VARIANTS)
    for row, (what, key, _, batch) in zip(rows, variants.VARIANTS, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[:2] == [what, str(batch)] and re.fullmatch(NUMBER, cells[2]), cells
        if key in ("int8", "float16"):
            assert re.fullmatch(rf"{NUMBER}% in order \({NUMBER}% as sets\)", cells[4]), cells
