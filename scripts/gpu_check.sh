#!/usr/bin/env bash
# The GPU check (issue 4), for a machine with an NVIDIA GPU and driver, Python >= 3.10, pip and
# this repository, nothing else: installs onnxruntime-gpu with NVIDIA's CUDA and cuDNN wheels
# (and TensorFlow for the CPU, for the export) in .venv-gpu, exports the replica, runs the
# parity tests (and the feature-visualization gradient against TensorFlow's) on the CUDA
# provider, then benchmarks/gpu_bench.py (batch-1 latency, throughput
# at batch 64 and 256 with IO binding, TF32 and float16 with their top-4 agreement; a prepared
# model of one's own, the tests' ResNet through prepare_model, against the CPU; spritemap
# throughput from 256 JPEG files against pure inference), then the
# feature-visualization spritemap of all 528 channels of mixed4d (256 steps, 128 px; target
# under 5 minutes). Budget: 8 minutes on a fresh machine plus that render.
#
#   bash scripts/gpu_check.sh             # on the GPU machine; figures in
#                                         # benchmarks/RESULTS-gpu.md (and $OUT/ when OUT is set)
#   bash scripts/gpu_check.sh --dry-run   # anywhere: the same steps on the CPU provider in the
#                                         # current environment, installing nothing; figures
#                                         # only in $OUT/ (or a temporary folder)
#
# ORT_GPU_SPEC overrides the onnxruntime-gpu requirement (default: the newest build for the
# CUDA major version the driver supports).
set -euo pipefail
cd "$(dirname "$0")/.."
dry_run=0
[ "${1:-}" = "--dry-run" ] && dry_run=1
started=$SECONDS
step() { echo "== [$((SECONDS - started)) s] $*"; }

out_dir=${OUT:-}
if [ -z "$out_dir" ]; then
  out_dir=$(mktemp -d)
fi
mkdir -p "$out_dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ "$dry_run" = 1 ]; then
  provider=CPUExecutionProvider
  python=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
  bench_flags=--quick
  featurevis_flags="--channels 2 --steps 4"
  step "dry run on the CPU provider with $python; installing nothing"
else
  provider=CUDAExecutionProvider
  bench_flags=
  featurevis_flags=
  if ! nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; then
    echo "no NVIDIA GPU or driver here (nvidia-smi failed); use --dry-run to check the steps" >&2
    exit 1
  fi
  cuda_major=$(nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9]*\).*/\1/p' | head -n 1)
  if [ -n "${ORT_GPU_SPEC:-}" ]; then
    ort_spec=$ORT_GPU_SPEC
  elif [ "${cuda_major:-0}" -ge 13 ]; then
    ort_spec="onnxruntime-gpu[cuda,cudnn]>=1.20"
  else
    # onnxruntime-gpu up to 1.25 is built for CUDA 12, later releases for CUDA 13.
    ort_spec="onnxruntime-gpu[cuda,cudnn]>=1.20,<1.26"
  fi
  step "driver supports CUDA ${cuda_major:-?}; installing $ort_spec in .venv-gpu"
  "${PYTHON:-python3}" -m venv .venv-gpu
  python=.venv-gpu/bin/python
  "$python" -m pip install --quiet --progress-bar off --upgrade pip
  "$python" -m pip install --quiet --progress-bar off -e . "$ort_spec" \
    tensorflow-cpu tf2onnx pooch pytest
  if ! "$python" -c "import sys; from semdict_onnx._providers import cuda_problem; \
p = cuda_problem(); print(p or 'CUDA provider ready'); sys.exit(1 if p else 0)"; then
    exit 1
  fi
fi

step "exporting the replica (TensorFlow on the CPU)"
CUDA_VISIBLE_DEVICES="" "$python" scripts/export.py --replica --cache-dir "$work" \
  --output "$work/replica.onnx" --no-progress | tail -n 3

step "parity tests on $provider"
tests=(tests/test_runtime_parity.py)
[ "$dry_run" = 1 ] || tests+=(tests/test_model.py tests/test_providers.py tests/test_featurevis_tensorflow.py)
SEMDICT_TEST_PROVIDER=$provider TF_FORCE_GPU_ALLOW_GROWTH=true \
  "$python" -m pytest -q -p no:cacheprovider "${tests[@]}" 2>&1 | tee "$out_dir/gpu-tests.log" \
  | tail -n 5
test_status=${PIPESTATUS[0]}

step "benchmark on $provider"
# shellcheck disable=SC2086  # bench_flags is empty or one flag
"$python" benchmarks/gpu_bench.py --model "$work/replica.onnx" --provider "$provider" \
  $bench_flags --out "$out_dir/gpu-results.md"
step "feature visualization: a mixed4d spritemap on $provider"
# shellcheck disable=SC2086  # featurevis_flags is empty or a few flags
"$python" benchmarks/featurevis_bench.py spritemap --model "$work/replica.onnx" \
  --provider "$provider" --layer mixed4d $featurevis_flags --no-progress \
  --out "$out_dir/featurevis-gpu.md"
if [ "$dry_run" = 0 ]; then
  {
    cat "$out_dir/gpu-results.md"
    echo
    cat "$out_dir/featurevis-gpu.md"
    echo
    echo "Parity tests on $provider: $(tail -n 1 "$out_dir/gpu-tests.log")"
  } > benchmarks/RESULTS-gpu.md
  cp benchmarks/RESULTS-gpu.md "$out_dir/gpu-results.md"
fi
step "done in $((SECONDS - started)) s; figures in $out_dir/gpu-results.md"
exit "$test_status"
