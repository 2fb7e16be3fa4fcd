"""The busy machine of benchmarks/bench.py: other processes keeping half of the cores busy.

Issue 16 measured that with one `while True: pass` beside it on 2 cores, ONNX Runtime's batch
1 slowed from 16 to 55 ms and TensorFlow's from 20 to 50 ms. `BusyLoad` starts one such
process per half of the cores (at least one) and stops them, also on Ctrl-C; bench.py times
the warm cases of every engine under it, interleaved as in the quiet part, and `busy_table`
writes the section of RESULTS.md.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from types import TracebackType

BUSY_LOOP = "while True: pass"


def busy_processes_for(cores: int | None = None) -> int:
    """One busy process per half of the cores, at least one."""
    return max(1, (cores or os.cpu_count() or 2) // 2)


class BusyLoad:
    """A context that keeps `count` processes spinning in `while True: pass` while it is open."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._processes: list[subprocess.Popen] = []

    def __enter__(self) -> BusyLoad:
        for _ in range(self.count):
            self._processes.append(subprocess.Popen([sys.executable, "-c", BUSY_LOOP]))
        return self

    @property
    def pids(self) -> list[int]:
        """The busy processes' ids."""
        return [process.pid for process in self._processes]

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for process in self._processes:
            process.kill()
        for process in self._processes:
            process.wait()
        self._processes.clear()


def busy_table(
    busy: dict[str, list[float]],
    quiet: dict[str, list[float]],
    cases: dict[str, tuple[str, str, str, str]],
    batch: int,
) -> list[str]:
    """Markdown rows: each engine's ms per image under load, its ratio to TF's, its slowdown."""
    per_image = {
        case: statistics.median(times) / (batch if cases[case][3] == "N" else 1)
        for case, times in busy.items()
    }
    quiet_per_image = {
        case: statistics.median(times) / (batch if cases[case][3] == "N" else 1)
        for case, times in quiet.items()
    }
    lines = [
        "| measurement | batch | busy ms / image | TF cached ÷ this (busy) | quiet ms / image "
        "| busy ÷ quiet |",
        "|---|---|---|---|---|---|",
    ]
    for case, value in per_image.items():
        _, what, _, kind = cases[case]
        size = batch if kind == "N" else 1
        baseline = per_image["tf_bN" if kind == "N" else "tf_b1"]
        calm = quiet_per_image.get(case)
        lines.append(
            f"| {what} | {size} | {value * 1000:.1f} | {baseline / value:.2f}x | "
            + (f"{calm * 1000:.1f} | {value / calm:.2f}x |" if calm else "- | - |")
        )
    return lines
