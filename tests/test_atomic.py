"""Atomic writes: whole or nothing, write faults as WriteError, leftovers of killed writers."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from semdict_onnx import _atomic
from semdict_onnx._atomic import (
    STALE_AFTER_S,
    atomic_write,
    check_output_file,
    remove_stale_parts,
    write_bytes_atomic,
)
from semdict_onnx.errors import WriteError

# Writes part of a file atomically, says so, and waits to be killed.
WRITER = """
import sys, time
from semdict_onnx._atomic import atomic_write
with atomic_write(sys.argv[1]) as handle:
    handle.write(b"half a model")
    handle.flush()
    print("writing", flush=True)
    time.sleep(600)
"""


def start_writer(target: Path) -> subprocess.Popen:
    """A process in the middle of an atomic write of `target`."""
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline() == "writing\n"
    return process


def parts(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.part"))


def age(path: Path, seconds: float) -> None:
    """Make `path` look `seconds` old."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_killed_writers_part_file_is_removed_by_the_next_write(tmp_path):
    """Bug: a killed export left .googlenet.onnx.*.part files that no later export removed."""
    target = tmp_path / "googlenet.onnx"
    writer = start_writer(target)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    (left,) = parts(tmp_path)
    assert left.name.startswith(".googlenet.onnx.") and left.read_bytes() == b"half a model"
    age(left, STALE_AFTER_S + 5)
    write_bytes_atomic(target, b"whole model")
    assert parts(tmp_path) == [] and target.read_bytes() == b"whole model"


def test_a_write_still_in_progress_is_never_touched(tmp_path):
    target = tmp_path / "googlenet.onnx"
    writer = start_writer(target)
    try:
        (busy,) = parts(tmp_path)
        age(busy, 3600)  # old, but its writer holds the lock: another export in progress
        young = tmp_path / ".googlenet.onnx.abcd1234.part"
        young.write_bytes(b"just created")  # no lock yet, but seconds old at most
        others = [tmp_path / ".other.onnx.abcd1234.part", tmp_path / ".googlenet.onnx.x.part"]
        for other in others:
            other.write_bytes(b"not ours to judge")
            age(other, 3600)
        assert remove_stale_parts(target) == []
        check_output_file(target)
        assert sorted(parts(tmp_path)) == sorted([busy, young, *others])
    finally:
        writer.kill()
        writer.wait()
    assert remove_stale_parts(target) == [busy]  # its writer is gone now


def test_write_faults_are_write_errors_naming_the_path_and_leave_nothing(tmp_path, monkeypatch):
    target = tmp_path / "page.html"
    target.write_text("old page")

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_atomic.os, "fsync", full_disk)
    with pytest.raises(WriteError) as caught:
        write_bytes_atomic(target, b"new page")
    assert isinstance(caught.value, OSError)
    assert str(caught.value) == (
        f"cannot write '{target}': no space left on the device; free some space or choose "
        "another disk"
    )
    assert target.read_text() == "old page" and parts(tmp_path) == []


def test_a_folder_in_the_way_and_errors_of_other_files_in_the_block(tmp_path):
    (tmp_path / "page.html").mkdir()
    with pytest.raises(WriteError, match=r"page.html': it is a folder, not a file"):
        write_bytes_atomic(tmp_path / "page.html", b"x")
    with pytest.raises(FileNotFoundError) as caught, atomic_write(tmp_path / "a.txt") as handle:
        handle.write((tmp_path / "missing.txt").read_bytes())
    assert not isinstance(caught.value, WriteError)  # reading another file is not our write
    assert parts(tmp_path) == [] and not (tmp_path / "a.txt").exists()


def test_check_output_file_names_what_stands_in_the_way(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(
        WriteError, match=r"--out '.*afile/m.onnx' in '.*afile': '.*afile' is a file"
    ):
        check_output_file(tmp_path / "afile" / "m.onnx", "--out")
    check_output_file(tmp_path / "new" / "deeper" / "m.onnx")  # made when written, not now
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
