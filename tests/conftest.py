"""Shared fixtures: a replica GraphDef, its ONNX export, and the loaded model.

Both files are built the way users build them (scripts/replica.py and
`scripts/export.py --replica` in subprocesses) and cached under tests/.cache/, keyed by a
hash of the export code and the converter versions, so repeated runs reuse them.
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

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
CACHE = ROOT / "tests" / ".cache"
_PREFIX = "replica-"
_STALE_AFTER_S = 3600
# The scripts that decide the replica export (other scripts/ files do not invalidate it).
EXPORT_SCRIPTS = (
    "convert.py",
    "export.py",
    "googlenet.py",
    "optimize.py",
    "parity.py",
    "replica.py",
    "tf_env.py",
)
# GoogLeNet's mixed layers at 224x224: channels, height (= width), from the network facts.
GOOGLENET_LAYERS = {
    "mixed3a": (256, 28),
    "mixed3b": (480, 28),
    "mixed4a": (508, 14),
    "mixed4b": (512, 14),
    "mixed4c": (512, 14),
    "mixed4d": (528, 14),
    "mixed4e": (832, 14),
    "mixed5a": (832, 7),
    "mixed5b": (1024, 7),
}

# The export scripts import each other by module name, as they do when run as scripts.
sys.path.insert(0, str(SCRIPTS))


def export_code_key() -> str:
    """A short hash of everything that decides the exported replica's bytes."""
    digest = hashlib.sha256()
    sources = [SCRIPTS / name for name in EXPORT_SCRIPTS] + [ROOT / "semdict_onnx" / "_metadata.py"]
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for package in ("tensorflow", "tf2onnx", "onnx", "numpy"):
        digest.update(f"{package}=={metadata.version(package)}".encode())
    return digest.hexdigest()[:16]


def run_script(*args: str | Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run a script of scripts/ with this interpreter; fail the test with its output."""
    command = [sys.executable, *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="session")
def replica_cache_dir() -> Path:
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


@pytest.fixture(scope="session")
def replica_graphdef_path(replica_cache_dir: Path) -> Path:
    """A replica GraphDef .pb (random weights) built by scripts/replica.py."""
    path = replica_cache_dir / "graphdef" / "InceptionV1-replica.pb"
    if not path.is_file():
        run_script(SCRIPTS / "replica.py", "--output", path)
    return path


@pytest.fixture(scope="session")
def replica_model_path(replica_cache_dir: Path) -> Path:
    """The ONNX model exported by `python scripts/export.py --replica`."""
    folder = replica_cache_dir / "export"
    path = folder / "googlenet-replica.onnx"
    if not path.is_file():
        result = run_script(
            SCRIPTS / "export.py",
            "--replica",
            "--cache-dir",
            folder,
            "--output",
            path,
            "--no-progress",
        )
        (folder / "export.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def replica_export_log(replica_model_path: Path) -> str:
    """What `scripts/export.py --replica` printed when it built `replica_model_path`."""
    return (replica_model_path.parent / "export.log").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def lookalike_graphdef_path(replica_graphdef_path: Path, tmp_path_factory) -> Path:
    """The replica without its replica marker: a stand-in for the real InceptionV1.pb.

    It lets tests drive the real-model code path (labels, spritemaps, replica=False) on a
    machine that cannot download Lucid's graph. It lives in a temporary folder only.
    """
    from replica import REPLICA_MARKER
    from tf_env import import_tensorflow

    tf = import_tensorflow()
    graph_def = tf.compat.v1.GraphDef.FromString(replica_graphdef_path.read_bytes())
    kept = [node for node in graph_def.node if node.name != REPLICA_MARKER]
    del graph_def.node[:]
    graph_def.node.extend(kept)
    path = tmp_path_factory.mktemp("lookalike") / "InceptionV1.pb"
    path.write_bytes(graph_def.SerializeToString(deterministic=True))
    return path


@pytest.fixture(scope="session")
def labels_text() -> str:
    """A 1008-line labels file in the modelzoo's format (index 0 is a dummy)."""
    return "dummy\n" + "".join(f"class {index}\n" for index in range(1, 1008))


@pytest.fixture(scope="session")
def replica_model(replica_model_path: Path):
    """The replica model loaded by the runtime on $SEMDICT_TEST_PROVIDER (default: CPU)."""
    from semdict_onnx import load_model

    provider = os.environ.get("SEMDICT_TEST_PROVIDER") or "CPUExecutionProvider"
    return load_model(replica_model_path, providers=[provider])
