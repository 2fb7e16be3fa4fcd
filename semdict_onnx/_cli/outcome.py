"""How a command ends: one line on stderr and an exit status, whatever stopped it.

`run_command` runs a subcommand's `run(args)` and turns what can stop it into one line: a
SemdictError (exit 1, its message), any other OSError (exit 1, the path and the problem, for
a disk, permission or folder fault no check foresaw), Ctrl-C (exit 130, "interrupted; nothing
written", or which finished files were kept when a subcommand raised `Interrupted`). No
traceback reaches the user. Every subcommand goes through it, those added later too: `semdict`
(_cli/main.py) calls it for whichever subcommand it parsed, and so does the export's own
command (`python -m semdict_onnx.export`, scripts/export.py). Files are written atomically
(_atomic.py), so an interrupted write leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .._atomic import os_error_reason
from ..errors import SemdictError

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
LISTED_KEPT = 3


class Interrupted(KeyboardInterrupt):
    """Ctrl-C after some finished files were written: they are kept, and the line names them."""

    def __init__(self, kept: Sequence[Path]) -> None:
        super().__init__()
        self.kept = list(kept)


def describe_os_error(exc: OSError) -> str:
    """An OSError as "'PATH': the problem" (both paths of a failed rename or copy)."""
    reason = os_error_reason(exc)
    if exc.filename is None:
        return reason
    paths = repr(str(exc.filename))
    if exc.filename2 is not None:
        paths += f" -> {str(exc.filename2)!r}"
    return f"{paths}: {reason}"


def interrupted_line(exc: KeyboardInterrupt) -> str:
    """What an interrupted command says it left: nothing, or the finished files it kept."""
    kept = getattr(exc, "kept", [])
    if not kept:
        return "interrupted; nothing written"
    names = ", ".join(str(path) for path in kept[:LISTED_KEPT])
    more = f" and {len(kept) - LISTED_KEPT} more" if len(kept) > LISTED_KEPT else ""
    files = "file" if len(kept) == 1 else "files"
    return f"interrupted; kept the {len(kept)} {files} finished before it: {names}{more}"


def _say(line: str) -> None:
    """Print one line on stderr, starting on a line of its own (a progress bar may be open)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass  # stderr is gone: nothing left to tell


def run_command(args: argparse.Namespace, who: str) -> int:
    """Run `args.run(args)` and return its exit status; `who` starts each line ("semdict
    spritemap"). Failures and Ctrl-C become one line (see the module docstring)."""
    try:
        return args.run(args)
    except SemdictError as exc:
        _say(f"{who}: error: {exc}")
        return EXIT_FAILED
    except OSError as exc:
        _say(f"{who}: error: {describe_os_error(exc)}")
        return EXIT_FAILED
    except KeyboardInterrupt as exc:
        _say(f"{who}: {interrupted_line(exc)}")
        return EXIT_INTERRUPTED
