#!/usr/bin/env bash
# The README's test command: installs everything the tests need on a fresh Debian machine
# (Debian's chromium for the page tests, the package with its test extra), then runs lint and
# the whole test suite. Extra arguments go to pytest.
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
