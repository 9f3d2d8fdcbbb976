#!/usr/bin/env bash
# The main job: set up, build, train SmolLM2-135M-Instruct on MovieLens-100K rating prediction with the
# RecZero reward (RecOne: a short SFT cold start, then GRPO) through recr1d, then evaluate on held-out users
# before and after: the no-LLM baselines, the base model and the trained policy, as a table and charts.
# About 10 minutes on 2 cores once built; every step prints its progress.
#
#   DEMO_RECIPE   recone (default) or reczero (pure RL: SmolLM2 never writes the format unaided, so it learns nothing)
#   DEMO_STEPS    GRPO steps (default 8)          DEMO_USERS   held-out users to evaluate (default 32)
#   DEMO_OUT      the run's folder (default runs/demo-<time>)
#   DEMO_BLAS_THREADS  recr1d's BLAS threads (default: one per core)
#   RECR1D        a built recr1d: skips the build
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
RECIPE=${DEMO_RECIPE:-recone}
STEPS=${DEMO_STEPS:-8}
USERS=${DEMO_USERS:-32}
OUT=${DEMO_OUT:-runs/demo-$(date +%Y%m%d-%H%M%S)}
threads=()
[ -n "${DEMO_BLAS_THREADS:-}" ] && threads=(--blas-threads "$DEMO_BLAS_THREADS")

started=$(date +%s)
phase() { echo "== [$(($(date +%s) - started)) s] $*"; }

phase "set-up (apt and pip: only what is missing)"
bash scripts/setup.sh
if [ -n "${RECR1D:-}" ]; then
    phase "recr1d: $RECR1D (RECR1D is set: no build)"
else
    phase "build (release; the first build takes a few minutes)"
    bash scripts/build.sh
    RECR1D="$(swift build -c release -Xswiftc -enable-testing --show-bin-path)/recr1d"
fi
export RECR1D

phase "train: recr1 run $RECIPE --out $OUT/$RECIPE --steps $STEPS (one line per step on stderr)"
"$PYTHON" -m recr1 run "$RECIPE" --out "$OUT/$RECIPE" --steps "$STEPS" "${threads[@]}"

phase "evaluate: recr1 eval --run $OUT/$RECIPE --users $USERS (baselines, base model, trained policy)"
"$PYTHON" -m recr1 eval --run "$OUT/$RECIPE" --users "$USERS" "${threads[@]}"

phase "done. Training curves: $OUT/$RECIPE/curves.png   evaluation: $OUT/$RECIPE/eval/eval.png, eval.json"
