#!/usr/bin/env bash
# Every GPU measurement, in one go (about 5 minutes on one GPU), after the GPU tests
# (tests/train/test_cuda.py: the GPU paths against the CPU, about half a minute):
#   1. the procedural dSprites prepared (a 3 GB uint8 table; ensembles gather batches from
#      it on the GPU), unless already there;
#   2. ensemble training throughput for N = 1, 8, 32, 128 on CUDA in float32, against the
#      plain single-model PyTorch loop on the same GPU (benchmarks/ensemble.py), then
#      N = 32 and 128 with TF32 allowed;
#   3. in the background meanwhile, on one CPU core: the metric suite for one
#      representation at study sizes (benchmarks/metrics.py --skip-reference --jobs 1);
#   4. the projected time of the 12,600-model study, training, encoding and metrics
#      (benchmarks/project.py), in float32 and with TF32;
#   5. one model trained with `disentangled train --device cuda` (TRAIN_STEPS steps; its
#      steps per second and metadata), the command a user runs;
#   6. when disent can be imported (or its wheel lies in .whl/: `pip download --no-deps
#      disent==0.8.0 -d .whl`; everything it needs is on the GPU machines here), one step
#      of disent's BetaVae beside ours and the plain loop on the GPU (benchmarks/peers.py).
# Results go to $OUT (if set) or benchmarks/out/ as two files: gpu_report.md (every table,
# the log lines and nvidia-smi) and gpu_results.json (every measurement); the intermediate
# files and logs stay in $OUT_DIR/work (kept only when OUT is not set).
#
# Python: an existing .venv whose torch sees a GPU is used as is (nothing is downloaded).
# Otherwise a python3 on the PATH whose torch sees a GPU is used, with this checkout on
# PYTHONPATH. Otherwise the script tries the project's install (python3 -m venv, then
# pip install -c constraints.txt -e ., as the Makefile does; needs PyPI) into .venv, or into
# .venv-gpu when a CPU-only .venv is present, and stops with a message if that fails.
#
#   bash benchmarks/gpu.sh            # or: OUT=/some/dir bash benchmarks/gpu.sh
#   NO_INSTALL=1 bash benchmarks/gpu.sh   # never download: stop if no CUDA torch is found
#   DEVICE=cpu SIZES="1 2" PEER_SIZES=2 STEPS=1 METRIC_SIZES=small bash benchmarks/gpu.sh   # rehearse it on a CPU
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
REPO=$(pwd)
OUT_DIR=${OUT:-$REPO/benchmarks/out}
mkdir -p "$OUT_DIR"
if [ -n "${OUT:-}" ]; then WORK=$(mktemp -d); else WORK=$OUT_DIR/work; mkdir -p "$WORK"; fi
BUDGET=${BUDGET:-170}   # seconds for the float32 throughput measurements
STEPS=${STEPS:-10}
DEVICE=${DEVICE:-cuda}
SIZES=${SIZES:-1 8 32 128}
METRIC_SIZES=${METRIC_SIZES:-study}
PEER_SIZES=${PEER_SIZES:-32 128}
TRAIN_STEPS=${TRAIN_STEPS:-2000}   # steps of the single model trained with `disentangled train --device`
DEADLINE=${DEADLINE:-300}   # seconds: optional parts (TF32, disent) are skipped when they would run past it

say() { echo "[gpu.sh] $*" | tee -a "$WORK/log.txt"; }

has_cuda() {  # $1: a python executable; true if its torch sees the device and this package imports
    PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" DEVICE="$DEVICE" "$1" - <<'EOF' >/dev/null 2>&1
import os, torch, disentangled.train, disentangled.evaluate  # noqa: F401
assert os.environ["DEVICE"] == "cpu" or torch.cuda.is_available()
EOF
}

PY=${PYTHON:-}   # PYTHON=/path/to/python chooses the interpreter (it must see the device and import this package)
if [ -n "$PY" ] && ! has_cuda "$PY"; then
    say "PYTHON=$PY does not see the device or cannot import this package; stopping."
    exit 2
fi
if [ -n "$PY" ]; then
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
elif [ -x .venv/bin/python ]; then
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
    if { test -x "$VENV/bin/python" || python3 -m venv "$VENV"; } >"$WORK/install.log" 2>&1 \
        && timeout 900 "$VENV/bin/python" -m pip install -q -c constraints.txt -e . >>"$WORK/install.log" 2>&1 \
        && has_cuda "$VENV/bin/python"; then
        PY=$VENV/bin/python
    else
        tail -n 20 "$WORK/install.log"; say "could not set up a CUDA torch (no network, or the pinned wheel has no CUDA); the install log ends above."
        say "Fix: carry a .venv built on a GPU machine, or install a CUDA build of torch into .venv"
        say "     (.venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cu124)."
        exit 2
    fi
fi

nvidia-smi >"$WORK/nvidia-smi.txt" 2>&1 || say "nvidia-smi not available (continuing)"
if [ "$DEVICE" = cuda ]; then
    say "device: $("$PY" -c 'import torch; print(torch.cuda.get_device_name(0), torch.__version__)')"
else
    say "device: cpu (a rehearsal; the numbers are not GPU numbers)"
fi

START=$(date +%s)
if [ "$DEVICE" = cuda ]; then
    say "correctness on the GPU first: tests/train/test_cuda.py (batches, ensembles, codes, evaluation against the CPU)"
    timeout 150 "$PY" -m pytest -q -p no:cacheprovider tests/train/test_cuda.py >"$WORK/cuda_tests.log" 2>&1 \
        && say "GPU tests passed" || say "GPU tests FAILED or timed out (see cuda_tests.log in the report); measuring anyway"
fi
export DISENTANGLED_DATA=${DISENTANGLED_DATA:-$REPO/benchmarks/out/data}
say "preparing the procedural dSprites in $DISENTANGLED_DATA (skipped when present)"
timeout 150 "$PY" -m disentangled data prepare dsprites_full --source procedural >"$WORK/prepare.log" 2>&1 \
    || say "preparing dSprites failed or took too long (see prepare.log); ensembles then render batches on the CPU"

say "metric suite on one CPU core, in the background (for the projection)"
timeout $(( DEADLINE - ($(date +%s) - START) > 60 ? DEADLINE - ($(date +%s) - START) : 60 )) "$PY" benchmarks/metrics.py --skip-reference --sizes "$METRIC_SIZES" --jobs 1 --threads 1 \
    --output "$WORK/metrics.json" >"$WORK/metrics.md" 2>"$WORK/metrics.log" &
METRICS=$!

say "ensemble throughput on $DEVICE, float32, N = $SIZES, plus the plain loop (each in its own process)"
# shellcheck disable=SC2086
timeout "$BUDGET" "$PY" benchmarks/ensemble.py --device "$DEVICE" --sizes $SIZES --steps "$STEPS" --warmup 3 \
    --data dsprites_full --source procedural --timeout 90 --json "$WORK/ensemble_cuda.json" | tee "$WORK/ensemble_cuda.md"
STATUS=${PIPESTATUS[0]}
[ "$STATUS" -ne 0 ] && say "benchmarks/ensemble.py stopped with status $STATUS (124: over the ${BUDGET}s budget)"

say "one model with the command users run: disentangled train --device $DEVICE ($TRAIN_STEPS steps of beta_vae, batches from the device table)"
rm -rf "$WORK/train_one"
TRAIN_T0=$(date +%s.%N)
timeout 120 "$PY" -m disentangled train data.source=procedural train.steps="$TRAIN_STEPS" train.eval_batches=10 \
    train.checkpoint_every="$TRAIN_STEPS" --out "$WORK/train_one" --device "$DEVICE" --no-progress >"$WORK/train_one.log" 2>&1 \
    && "$PY" - "$WORK/train_one" "$TRAIN_T0" "$(date +%s.%N)" "$TRAIN_STEPS" >"$WORK/train_one.json" <<'PYEOF' \
    && say "train --device: $(cat "$WORK/train_one.json")" || say "train --device $DEVICE failed or timed out (see train_one.log)"
import json, sys
from disentangled.rundir import RunDir
run, t0, t1, steps = RunDir(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
meta, res = run.metadata(), run.results()
print(json.dumps({"device": meta["device"], "gpu": meta.get("gpu"), "optimizer": meta["optimizer"], "steps": steps,
                  "train_seconds": round(res["elapsed_time"], 2), "steps_per_second": round(steps / res["elapsed_time"], 1),
                  "command_seconds": round(t1 - t0, 1), "loss": round(res["loss"], 3)}))
PYEOF

left() { echo $(( DEADLINE - ($(date +%s) - START) )); }
if [ "$DEVICE" = cuda ] && [ "$(left)" -lt 90 ]; then
    say "skipping the TF32 measurement: $(left) s left of the ${DEADLINE} s deadline"
elif [ "$DEVICE" = cuda ]; then
    say "the same with TF32 allowed, N = 32 128"
    timeout "$(left)" "$PY" benchmarks/ensemble.py --device cuda --sizes 32 128 --steps "$STEPS" --warmup 3 --tf32 \
        --data dsprites_full --source procedural --timeout 60 --json "$WORK/ensemble_cuda_tf32.json" | tee "$WORK/ensemble_cuda_tf32.md"
fi

say "waiting for the metric suite"
wait "$METRICS" || say "the metric suite did not finish (see metrics.log); projecting with the 2-core CPU's figure"
if [ -s "$WORK/metrics.json" ]; then METRIC_ARGS=(--metrics "$WORK/metrics.json"); else METRIC_ARGS=(--metrics-seconds 116); fi
if ls .whl/disent-*.whl >/dev/null 2>&1 && ! "$PY" -c 'import disent' >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --target /tmp/peer-site .whl/disent-*.whl >"$WORK/peer-install.log" 2>&1 \
        && export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}/tmp/peer-site"
fi
if [ "$(left)" -lt 60 ]; then
    say "skipping the disent comparison: $(left) s left of the ${DEADLINE} s deadline"
elif "$PY" -c 'import disent' >/dev/null 2>&1; then
    say "disent beside ours on $DEVICE (benchmarks/peers.py)"
    # shellcheck disable=SC2086
    timeout "$(left)" "$PY" benchmarks/peers.py --device "$DEVICE" --rounds 3 --steps "$STEPS" --ensemble $PEER_SIZES --trainer \
        --source procedural 2>"$WORK/peers.log" | grep -v '^GPU available\|^TPU available\|Tip:\|max_steps' | tee "$WORK/peers.md"
else
    say "disent not importable: no peer comparison on $DEVICE (put its wheel in .whl/ to have one)"
fi

for kind in ensemble_cuda ensemble_cuda_tf32; do
    [ -s "$WORK/$kind.json" ] || continue
    say "projection from $kind"
    timeout 60 "$PY" benchmarks/project.py --ensemble "$WORK/$kind.json" "${METRIC_ARGS[@]}" --device "$DEVICE" \
        --json "$WORK/project_$kind.json" | tee "$WORK/project_$kind.md"
done
say "done in $(( $(date +%s) - START )) s"
{
    echo "# benchmarks/gpu.sh, $(date -u '+%Y-%m-%d %H:%M UTC')"
    for f in log.txt nvidia-smi.txt train_one.log ensemble_cuda.md ensemble_cuda_tf32.md metrics.md project_ensemble_cuda.md \
             project_ensemble_cuda_tf32.md peers.md cuda_tests.log prepare.log metrics.log peers.log; do
        [ -s "$WORK/$f" ] || continue
        printf '\n## %s\n\n' "$f"
        case "$f" in *.md) cat "$WORK/$f" ;; *) echo '```'; tail -n 60 "$WORK/$f"; echo '```' ;; esac
    done
} >"$OUT_DIR/gpu_report.md"
"$PY" - "$WORK" "$OUT_DIR/gpu_results.json" <<'EOF'
import json, pathlib, sys
work, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
merged = {}
for path in sorted(work.glob("*.json")):
    try:
        merged[path.stem] = json.loads(path.read_text())
    except ValueError as err:
        merged[path.stem] = {"error": f"unreadable: {err}"}
out.write_text(json.dumps(merged, indent=1))
EOF
echo "[gpu.sh] results: $OUT_DIR/gpu_report.md and $OUT_DIR/gpu_results.json"
exit "$STATUS"
