#!/usr/bin/env bash
# The main job: set up, build, train SmolLM2-135M-Instruct on MovieLens-1M rating prediction with the
# RecZero reward (RecOne: an SFT cold start on rule-written answers, then GRPO) through recr1d, then
# evaluate on held-out targets: the no-LLM baselines, the cold start and the trained policy, each with a 95%
# interval, and the trained policy's paired difference against every other system.
# The recone recipe on ML-1M (2 targets a user, 3 rated movies of history), shortened to fit about 22 minutes
# once built on the 2-core machines here (docs/results.md has the runs it comes from). Every step prints its
# progress.
#
#   DEMO_RECIPE   recone (default) or reczero (pure RL: SmolLM2 never writes the format unaided, so it learns nothing)
#   DEMO_DATASET  ml-1m (default) or ml-100k
#   DEMO_STEPS    GRPO steps (default 4, of 16 users x 4 samples)
#   DEMO_COLD_START_STEPS  SFT steps of the cold start (default 48, on rule-written answers for 10 prompts a step)
#   DEMO_BETA     GRPO's KL coefficient towards the cold start (default 0.1)
#   DEMO_USERS    held-out targets to evaluate (default 300: the first 150 test users x 2; 0 = all)
#   DEMO_SYSTEMS  systems to evaluate (default baseline,trained: the cold start comes with it; add base for
#                 the base model)
#   DEMO_OUT      the run's folder (default runs/demo-<time>)
#   DEMO_BLAS_THREADS  recr1d's BLAS threads (default: one per core)
#   RECR1D        a built recr1d: skips the build
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
RECIPE=${DEMO_RECIPE:-recone}
DATASET=${DEMO_DATASET:-ml-1m}
STEPS=${DEMO_STEPS:-4}
COLD_START_STEPS=${DEMO_COLD_START_STEPS:-48}
BETA=${DEMO_BETA:-0.1}
ROUNDING=${DEMO_ROUNDING:-stochastic}
USERS=${DEMO_USERS:-300}
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

cold_start=()
[ "$RECIPE" = recone ] && cold_start=(--cold-start-steps "$COLD_START_STEPS" --cold-start-prompts $((COLD_START_STEPS * 10))
                                     --cold-start-rounding "$ROUNDING")
phase "train: recr1 run $RECIPE --out $OUT/$RECIPE --dataset $DATASET --steps $STEPS ${cold_start[*]} (one line per step on stderr)"
"$PYTHON" -m recr1 run "$RECIPE" --out "$OUT/$RECIPE" --dataset "$DATASET" --targets-per-user 2 --steps "$STEPS" \
    --prompts-per-step 16 --group-size 4 --beta "$BETA" "${cold_start[@]}" --eval-every "$STEPS" --eval-users 32 "${threads[@]}"

phase "evaluate: recr1 eval --run $OUT/$RECIPE --users $USERS --systems $SYSTEMS (with 95% intervals)"
"$PYTHON" -m recr1 eval --run "$OUT/$RECIPE" --users "$USERS" --systems "$SYSTEMS" --batch 16 "${threads[@]}"

phase "done. Training curves: $OUT/$RECIPE/curves.png   evaluation: $OUT/$RECIPE/eval/eval.png, eval.json"
