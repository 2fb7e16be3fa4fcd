"""Running `semdict` as a hostile user would: in a folder it cannot write, and with Ctrl-C.

`unwritable_folder` makes a folder the command cannot write to. Root ignores file permissions
(CAP_DAC_OVERRIDE), so as root the command runs under `setpriv` with that capability dropped
from its bounding set, and the folder is first proven unwritable to a process run the same way,
so that root's bypass cannot make a test pass by accident. `interrupt` sends a real SIGINT to a
running command once its output shows it is at work.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ENTRY_POINT = Path(sys.executable).with_name("semdict")
COMMAND = [str(ENTRY_POINT)] if ENTRY_POINT.exists() else [sys.executable, "-m", "semdict_onnx"]
ROOT = Path(__file__).resolve().parent.parent
# Root keeps every capability but the two that let it read and write past file permissions.
WITHOUT_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def as_user() -> list[str]:
    """The prefix that runs a command without root's permission bypass (none for a user)."""
    return WITHOUT_OVERRIDE if os.geteuid() == 0 else []


def unwritable_folder(parent: Path) -> Path:
    """A folder (mode 0555) that a command run with `as_user()` provably cannot write in."""
    folder = parent / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    probe = subprocess.run(
        [*as_user(), sys.executable, "-c", f"open({str(folder / 'probe')!r}, 'w')"],
        capture_output=True,
        text=True,
    )
    assert probe.returncode != 0 and "PermissionError" in probe.stderr, (
        "the test cannot make an unwritable folder here: " + probe.stderr
    )
    return folder


def semdict(*args: object, user: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `semdict ARGS...` (as a user without root's bypass when `user`)."""
    prefix = as_user() if user else []
    return subprocess.run(
        [*prefix, *COMMAND, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@dataclass
class Interrupted:
    """What an interrupted command did: its exit status and all it printed."""

    returncode: int
    stdout: str
    stderr: str
    seconds_to_stop: float

    @property
    def last_line(self) -> str:
        """The last line on stderr (progress bars redraw with carriage returns)."""
        lines = [line for line in re.split(r"[\r\n]+", self.stderr) if line.strip()]
        return lines[-1] if lines else ""


def interrupt(
    command: list[str], ready: Callable[[str, str], bool], timeout: float = 300
) -> Interrupted:
    """Run `command`, send SIGINT once `ready(stdout, stderr)` holds, and wait for it to end.

    SIGINT is set to its default in the child (a shell may start background jobs with it
    ignored), so Python turns it into KeyboardInterrupt as on a terminal.
    """
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = {"stdout": bytearray(), "stderr": bytearray()}

    def pump(name: str) -> None:
        stream = getattr(process, name)
        while chunk := stream.read1(4096):
            seen[name] += chunk

    readers = [threading.Thread(target=pump, args=(name,), daemon=True) for name in seen]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + timeout
    while not ready(
        seen["stdout"].decode(errors="replace"), seen["stderr"].decode("utf-8", "replace")
    ):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(
                "the command ended (or hung) before it was ready to be interrupted:\n"
                + seen["stderr"].decode(errors="replace")[-3000:]
            )
        time.sleep(0.05)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)
    stopped = time.monotonic() - sent
    for reader in readers:
        reader.join(timeout=10)
    return Interrupted(
        process.returncode,
        seen["stdout"].decode("utf-8", "replace"),
        seen["stderr"].decode("utf-8", "replace"),
        stopped,
    )


def progress_reached(pattern: str) -> Callable[[str, str], bool]:
    """A `ready` test: a progress bar described by `pattern` has counted at least one item."""
    bar = re.compile(rf"{pattern}:.*?\| *[1-9]\d*/\d+")
    return lambda stdout, stderr: bar.search(stderr) is not None


def no_partial_files(folder: Path) -> list[str]:
    """The temporary files of atomic writes left in `folder` (there should be none)."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith((".part", ".pending")))
