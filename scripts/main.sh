#!/usr/bin/env bash
# The README's first command: semantic dictionaries of the example photos shipped in
# semdict_onnx/examples, written to out/. Installs what it needs into .venv first.
# Extra arguments go to scripts/main.py (e.g. --layer mixed4c).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh export
python scripts/main.py "$@"
