"""The replica model the tests share, built the way users build it and cached in tests/.cache/.

The replica GraphDef comes from `python scripts/replica.py`, its ONNX model from
`python -m semdict_onnx.export --replica`, both in subprocesses, into
tests/.cache/replica-<key>/, where the key hashes the export's code and the converters'
versions, so repeated runs reuse them and a change to the export rebuilds them.

    python tests/replica_cache.py    # prints the model's path, exporting it first if needed

scripts/test.sh runs that after the main test run to hand the model to the runtime-only
environment, which has no TensorFlow to export it with.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "tests" / ".cache"
EXPORT_PACKAGE = ROOT / "semdict_onnx" / "export"
_PREFIX = "replica-"
_STALE_AFTER_S = 3600


class BuildError(RuntimeError):
    """A command that builds a cached file failed; the message holds its output."""


def export_code_key() -> str:
    """A short hash of everything that decides the exported replica's bytes."""
    digest = hashlib.sha256()
    # The export's own code, and the runtime modules that write its card (the card, its
    # writer, and the receptive-field walk that fills each layer's field).
    card = ["_metadata", "_model_card", "_receptive_field", "_graph_walker", "_onnx_graph"]
    sources = sorted(EXPORT_PACKAGE.glob("*.py"))
    sources += [ROOT / "semdict_onnx" / f"{name}.py" for name in card]
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for package in ("tensorflow", "tf2onnx", "onnx", "numpy"):
        digest.update(f"{package}=={metadata.version(package)}".encode())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    """tests/.cache/replica-<key>/, with other keys' folders removed once unused for an hour.

    The grace period spares a test session still running on an older key in the same tree.
    """
    folder = CACHE / f"{_PREFIX}{export_code_key()}"
    folder.mkdir(parents=True, exist_ok=True)
    os.utime(folder)
    for stale in CACHE.glob(f"{_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):  # another session may remove it first
            if stale != folder and time.time() - stale.stat().st_mtime > _STALE_AFTER_S:
                shutil.rmtree(stale, ignore_errors=True)
    return folder


def run_checked(*args: str | Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run this interpreter with `args` in the repository; BuildError with its output."""
    command = [sys.executable, *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if result.returncode != 0:
        raise BuildError(
            f"{' '.join(command)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def graphdef_path(folder: Path) -> Path:
    """The replica GraphDef .pb (random weights) in `folder`, built by scripts/replica.py."""
    path = folder / "graphdef" / "InceptionV1-replica.pb"
    if not path.is_file():
        run_checked(ROOT / "scripts" / "replica.py", "--output", path)
    return path


def model_path(folder: Path) -> Path:
    """The replica's ONNX model in `folder`, from `python -m semdict_onnx.export --replica`.

    What the export printed is kept beside it as export.log.
    """
    export = folder / "export"
    path = export / "googlenet-replica.onnx"
    if not path.is_file():
        result = run_checked(
            "-m",
            "semdict_onnx.export",
            "--replica",
            "--cache-dir",
            export,
            "--output",
            path,
            "--no-progress",
        )
        (export / "export.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    return path


if __name__ == "__main__":
    print(model_path(cache_dir()))
