"""A busy machine (semdict_onnx/_cpu_load.py): the load probe, and the non-spinning twin it picks.

Timing decides nothing here: the probe's readings are scripted, or a real busy process is
started and the probe must see it; the runner's choice is checked by the session it built and
the values it returned (those of a plain session, bit for bit: same kernels, same threads).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from semdict_onnx import _cpu_load, load_model

CPU = ["CPUExecutionProvider"]


def scripted(readings: list[int | None]):
    """A reader returning `readings` one by one, then the last again."""
    values = iter(readings)
    last = [None]

    def read() -> int | None:
        last[0] = next(values, last[0])
        return last[0]

    return read


def test_one_passing_task_does_not_switch_but_a_lasting_one_does_and_it_switches_back():
    probe = _cpu_load.LoadProbe(threads=2, cpus=2, read=scripted([1, 0, 0, 1, 1, 1, 0, 0, 0]))
    seen = [probe.contended() for _ in range(12)]
    # 1 alone: average 0.25; then 1, 1, 1: 0.58 and more; back under 0.25 after a few zeros.
    assert seen[:4] == [False] * 4 and seen[5:7] == [True, True], seen
    assert seen[-1] is False, seen


def test_spare_cores_absorb_other_tasks():
    # 8 logical cores, a pool of 4 threads: 4 other tasks still find a free core each.
    probe = _cpu_load.LoadProbe(threads=4, cpus=8, read=lambda: 4)
    assert not any(probe.contended() for _ in range(20))
    probe = _cpu_load.LoadProbe(threads=4, cpus=8, read=lambda: 5)
    assert [probe.contended() for _ in range(20)][-1] is True


def test_without_a_reading_nothing_is_contended():
    probe = _cpu_load.LoadProbe(threads=2, cpus=2, read=lambda: None)
    assert not any(probe.contended() for _ in range(5))


def test_a_real_busy_process_is_seen():
    """`while True: pass` beside a pool as wide as the cores: contended within a second."""
    probe = _cpu_load.LoadProbe(threads=_cpu_load.usable_cores())
    if _cpu_load.runnable_tasks() is None:
        pytest.fail("no /proc/loadavg here: the busy-machine speedup is Linux only")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        seen = []
        for _ in range(50):
            seen.append(probe.contended())
            time.sleep(0.02)
    finally:
        busy.kill()
        busy.wait()
    assert seen[-1] is True and probe.others >= 1 - _cpu_load.LEAVE, (probe.others, seen)


def test_the_cores_of_this_machine_are_counted():
    assert 1 <= _cpu_load.physical_cores() <= _cpu_load.usable_cores()


@pytest.mark.parametrize("contended", [True, False])
def test_contended_runs_go_to_a_twin_that_does_not_spin_with_the_same_values(
    replica_model_path: Path, contended: bool
):
    model = load_model(replica_model_path, providers=CPU)
    runner = model._runner
    runner.load = _cpu_load.LoadProbe(threads=2, cpus=2, read=lambda: 3 if contended else 0)
    batch = np.random.default_rng(5).random((1, 224, 224, 3), dtype=np.float32)
    expected = ort.InferenceSession(str(replica_model_path), providers=CPU).run(
        ["mixed4a", "mixed5b"], {"image": batch}
    )
    got = model.activations(batch, layers=["mixed4a", "mixed5b"])
    np.testing.assert_array_equal(got["mixed4a"], expected[0])
    np.testing.assert_array_equal(got["mixed5b"], expected[1])
    if not contended:
        assert runner.yielding == {}
        return
    (twin,) = runner.yielding.values()
    assert twin is not None and twin is not runner.session
    assert (
        twin.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
        == "0"
    )
    with pytest.raises(RuntimeError, match="does not have configuration"):  # default: spinning
        runner.session.get_session_options().get_session_config_entry(
            "session.intra_op.allow_spinning"
        )


def test_speedups_off_never_probe_the_load(replica_model_path: Path):
    model = load_model(replica_model_path, providers=CPU, speedups=False)
    assert model._runner.load is None
