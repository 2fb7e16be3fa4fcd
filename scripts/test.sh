#!/usr/bin/env bash
# The README's test command, on a fresh Debian machine: installs Debian's chromium for the page
# tests if missing, then tests in two environments. Extra arguments go to both pytest runs.
#
# 1. .venv, the package with its `test` extra (the `export` and `ray` extras included): lint,
#    then the whole suite: the export against TensorFlow, the wheel installed into a fresh
#    environment, the runtime, and the Ray engine on a local Ray instance.
# 2. .venv-runtime, the package with `test-runtime` only, so TensorFlow, tf2onnx, pooch and Ray
#    are not installed at all: every test not marked `export` or `ray` (tests/conftest.py
#    deselects those), against the replica model that environment 1 exported
#    ($SEMDICT_TEST_REPLICA_MODEL). This proves by installation that the runtime runs without
#    TensorFlow; tests there check that `import tensorflow` and `import ray` fail.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the page tests"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q chromium
fi
source scripts/setup_env.sh test
ruff check semdict_onnx scripts tests benchmarks
ruff format --check semdict_onnx scripts tests benchmarks
python -m pytest "$@"

model="$(python tests/replica_cache.py)"  # exported by the run above (or now, if it was not)
echo "== the runtime tests again, in .venv-runtime (no TensorFlow), on $model"
SEMDICT_VENV="$PWD/.venv-runtime" source scripts/setup_env.sh test-runtime
status=0
SEMDICT_TEST_RUNTIME_ONLY=1 SEMDICT_TEST_REPLICA_MODEL="$model" \
  python -m pytest -m "not export" "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "(the arguments selected no runtime test)"  # e.g. only export tests were asked for
  status=0
fi
exit "$status"
