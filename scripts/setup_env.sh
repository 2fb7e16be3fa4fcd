#!/usr/bin/env bash
# Creates .venv (if missing) and installs this package with the extras named in $1
# ("export" for the main job, "test" for the tests). Sourced by main.sh and test.sh.
set -euo pipefail
extras="${1:-export}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SEMDICT_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "Creating the virtual environment $venv"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e "$root[$extras]"
export PATH="$venv/bin:$PATH"
