#!/usr/bin/env bash
# The main job: set up, build, train SmolLM2-135M-Instruct on MovieLens-100K rating prediction with the
# RecZero reward (RecOne: an SFT cold start on rule-written answers, then GRPO) through recr1d, then
# evaluate on held-out targets: the no-LLM baselines, the cold start and the trained policy, each with a 95%
# interval, and the trained policy's paired difference against every other system.
# On the AVX2-only EPYC of 2026-12-03 (2 cores): about 22 minutes of training and 11 of evaluation once
# built (docs/results.md); every step prints its progress.
#
#   DEMO_RECIPE   recone (default) or reczero (pure RL: SmolLM2 never writes the format unaided, so it learns nothing)
#   DEMO_STEPS    GRPO steps (default 7: the best validation point of docs/results.md's run)
#   DEMO_USERS    held-out targets to evaluate (default 128: the first 32 test users x 4; 0 = all 384)
#   DEMO_SYSTEMS  systems to evaluate (default baseline,trained: the cold start comes with it; add base for
#                 the base model, ~12 more minutes here)
#   DEMO_OUT      the run's folder (default runs/demo-<time>)
#   DEMO_BLAS_THREADS  recr1d's BLAS threads (default: one per core)
#   RECR1D        a built recr1d: skips the build
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
RECIPE=${DEMO_RECIPE:-recone}
STEPS=${DEMO_STEPS:-7}
USERS=${DEMO_USERS:-128}
SYSTEMS=${DEMO_SYSTEMS:-baseline,trained}
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
"$PYTHON" -m recr1 run "$RECIPE" --out "$OUT/$RECIPE" --steps "$STEPS" --eval-every "$STEPS" --eval-users 32 "${threads[@]}"

phase "evaluate: recr1 eval --run $OUT/$RECIPE --users $USERS --systems $SYSTEMS (with 95% intervals)"
"$PYTHON" -m recr1 eval --run "$OUT/$RECIPE" --users "$USERS" --systems "$SYSTEMS" --batch 16 "${threads[@]}"

phase "done. Training curves: $OUT/$RECIPE/curves.png   evaluation: $OUT/$RECIPE/eval/eval.png, eval.json"
