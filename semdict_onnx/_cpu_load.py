"""Whether other work competes for the cores a session's thread pool uses.

ONNX Runtime's intra-op threads spin while they wait for each other within a run: 10% faster
on a quiet machine, but when another process wants one of the cores, a spinning thread is
descheduled like any busy loop, and every operator's parallel loop waits for it (on 2 cores
with one `while True: pass` beside it, batch 1 went from 16 to 55 ms; docs/performance.md).
A thread that sleeps instead is woken with priority over the busy process. So the runner
(_runner.py) asks `LoadProbe.contended()` before each run and, while it says yes, runs on a
twin session whose threads do not spin.

The measure is the number of runnable tasks on the machine (the fourth field of Linux's
/proc/loadavg, less the thread reading it), read before every run (about 20 us) and smoothed
over the last few runs. It counts every process and thread that wants a core, also other
threads of this process; the pool's own threads are asleep between runs, so they are not in
it. Contended means more tasks want a core than the cores the pool's threads leave free.
Where /proc/loadavg does not exist (macOS, Windows) nothing is ever contended.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

LOADAVG = Path("/proc/loadavg")
# Weight of the newest reading in the running average: about the last 4 runs count.
SMOOTHING = 0.25
# Contended once the average of other runnable tasks reaches the free cores plus ENTER, and
# quiet again once it is under the free cores plus LEAVE: a passing task seen once or twice
# does not switch sessions, nor does a busy process flip the choice back and forth.
ENTER = 0.5
LEAVE = 0.25


def usable_cores() -> int:
    """How many logical cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def physical_cores() -> int:
    """The physical cores among those this process may run on (ONNX Runtime's thread count).

    Read from Linux's sysfs (one entry per set of hyperthread siblings); elsewhere the
    logical count.
    """
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    siblings = set()
    for cpu in cpus:
        path = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            siblings.add(path.read_text().strip())
        except OSError:
            return usable_cores()
    return len(siblings) or usable_cores()


def runnable_tasks() -> int | None:
    """Tasks runnable on the machine now, less the one reading this; None where unknown."""
    try:
        running = LOADAVG.read_text().split()[3].split("/")[0]
        return max(int(running) - 1, 0)
    except (OSError, IndexError, ValueError):
        return None


class LoadProbe:
    """Says whether other runnable tasks outnumber the cores a pool of `threads` leaves free.

    `read` returns the other runnable tasks now, or None where that cannot be known (then
    the probe never says contended); thread-safe.
    """

    def __init__(
        self,
        threads: int | None = None,
        cpus: int | None = None,
        read: Callable[[], int | None] = runnable_tasks,
    ) -> None:
        self.cpus = usable_cores() if cpus is None else cpus
        self.threads = physical_cores() if threads is None else threads
        self._read = read
        self._lock = threading.Lock()
        self.others = 0.0
        self._contended = False

    @property
    def spare_cores(self) -> int:
        """Cores the pool's threads leave free for other work without contention."""
        return max(self.cpus - self.threads, 0)

    def contended(self) -> bool:
        """Read the load once more and say whether the pool's cores are wanted by others."""
        now = self._read()
        if now is None:
            return False
        with self._lock:
            self.others += SMOOTHING * (now - self.others)
            threshold = self.spare_cores + (LEAVE if self._contended else ENTER)
            self._contended = self.others >= threshold
            return self._contended
