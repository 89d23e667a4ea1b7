#!/usr/bin/env bash
# Every GPU measurement of the ensembles, in one go (about 5 minutes on one GPU):
#   1. ensemble training throughput for N = 1, 8, 32, 128 on CUDA (benchmarks/ensemble.py),
#      against the plain single-model PyTorch loop on the same GPU;
#   2. the projected training time of the full 12,600-model study
#      (disentangled/presets/unsupervised_study_v1.yaml) at the best N.
# Results go to $OUT (if set) or benchmarks/out/: ensemble_cuda.md, ensemble_cuda.json, nvidia-smi.txt.
#
# Python: an existing .venv whose torch sees a GPU is used as is (nothing is downloaded).
# Otherwise a python3 on the PATH whose torch sees a GPU is used, with this checkout on
# PYTHONPATH. Otherwise the script tries the project's install (python3 -m venv, then
# pip install -c constraints.txt -e ., as the Makefile does; needs PyPI) into .venv, or into
# .venv-gpu when a CPU-only .venv is present, and stops with a message if that fails.
#
#   bash benchmarks/gpu.sh            # or: OUT=/some/dir bash benchmarks/gpu.sh
#   NO_INSTALL=1 bash benchmarks/gpu.sh   # never download: stop if no CUDA torch is found
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
REPO=$(pwd)
OUT_DIR=${OUT:-$REPO/benchmarks/out}
mkdir -p "$OUT_DIR"
BUDGET=${BUDGET:-290}   # seconds for all measurements together
STEPS=${STEPS:-10}

say() { echo "[gpu.sh] $*"; }

has_cuda() {  # $1: a python executable; true if its torch sees a GPU and the package imports
    "$1" - <<'EOF' >/dev/null 2>&1
import torch, numpy, safetensors, yaml, tqdm  # noqa: F401
assert torch.cuda.is_available()
EOF
}

PY=""
if [ -x .venv/bin/python ]; then
    if has_cuda .venv/bin/python; then
        PY=.venv/bin/python
        say "using the existing .venv ($(.venv/bin/python -c 'import torch; print(torch.__version__)'))"
    else
        say ".venv exists but its torch does not see a GPU (a CPU build?): $(.venv/bin/python -c 'import torch; print(torch.__version__, torch.cuda.is_available())' 2>&1 | tail -1)"
    fi
fi
if [ -z "$PY" ] && command -v python3 >/dev/null && has_cuda "$(command -v python3)"; then
    PY=$(command -v python3)
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
    say "using $PY (its own CUDA torch) with PYTHONPATH=$REPO"
fi
if [ -z "$PY" ] && [ -n "${NO_INSTALL:-}" ]; then
    say "no python with a CUDA torch found, and NO_INSTALL is set: stopping."
    say "Fix: carry a .venv with a CUDA build of torch, or unset NO_INSTALL to try 'make install' (needs PyPI)."
    exit 2
fi
if [ -z "$PY" ]; then
    say "no python with a CUDA torch found; trying the project's install (needs PyPI)"
    if [ -x .venv/bin/python ]; then
        say "not touching the existing CPU .venv; installing into .venv-gpu instead"
        VENV=.venv-gpu
    else
        VENV=.venv
    fi
    # the Makefile's install step, without the test and ray extras
    if { test -x "$VENV/bin/python" || python3 -m venv "$VENV"; } >"$OUT_DIR/install.log" 2>&1 \
        && timeout 900 "$VENV/bin/python" -m pip install -q -c constraints.txt -e . >>"$OUT_DIR/install.log" 2>&1 \
        && has_cuda "$VENV/bin/python"; then
        PY=$VENV/bin/python
    else
        say "could not set up a CUDA torch (no network, or the pinned wheel has no CUDA); see $OUT_DIR/install.log."
        say "Fix: carry a .venv built on a GPU machine, or install a CUDA build of torch into .venv"
        say "     (.venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cu124)."
        exit 2
    fi
fi

nvidia-smi >"$OUT_DIR/nvidia-smi.txt" 2>&1 || say "nvidia-smi not available (continuing)"
say "device: $("$PY" -c 'import torch; print(torch.cuda.get_device_name(0))')"

START=$(date +%s)
say "ensemble throughput on CUDA, N = 1 8 32 128, plus the plain loop (each in its own process)"
timeout "$BUDGET" "$PY" benchmarks/ensemble.py --device cuda --sizes 1 8 32 128 --steps "$STEPS" --warmup 3 \
    --timeout 120 --project unsupervised_study_v1 --json "$OUT_DIR/ensemble_cuda.json" | tee "$OUT_DIR/ensemble_cuda.md"
STATUS=${PIPESTATUS[0]}
if [ "$STATUS" -ne 0 ]; then
    say "benchmarks/ensemble.py stopped with status $STATUS (124: over the ${BUDGET}s budget); partial output in $OUT_DIR"
fi
say "done in $(( $(date +%s) - START )) s; results in $OUT_DIR"
exit "$STATUS"
