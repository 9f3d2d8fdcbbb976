#!/usr/bin/env bash
# The quick look: set up, build, start recr1d with its defaults (SmolLM2-135M-Instruct), ask it
# what it runs, let it answer a question and sample a few completions, stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

bash scripts/setup.sh
echo "== build (release; the first build takes a few minutes)"
bash scripts/build.sh
bin="$(swift build -c release -Xswiftc -enable-testing --show-bin-path)/recr1d"

log=$(mktemp -t recr1d.XXXXXX.log)
echo "== start: $bin serve   (log: $log)"
"$bin" serve >"$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
for _ in $(seq 600); do
    "$PYTHON" -m recr1 health >/dev/null 2>&1 && break
    kill -0 $pid 2>/dev/null || { cat "$log"; echo "recr1d exited" >&2; exit 1; }
    sleep 0.1
done

echo "== recr1 info"
"$PYTHON" -m recr1 info
echo "== recr1 health"
"$PYTHON" -m recr1 health
echo "== recr1 generate --chat (greedy)"
"$PYTHON" -m recr1 generate --chat "What is the capital of France?" "Name three primary colours."
echo "== recr1 generate -n 4 --temperature 0.8 --seed 1 (four samples share one prefill)"
"$PYTHON" -m recr1 generate -n 4 --temperature 0.8 --top-p 0.95 --seed 1 --max-new-tokens 24 --chat "Suggest a title for a mystery novel."

echo "== stop (SIGTERM)"
kill -TERM $pid
wait $pid
trap - EXIT
cat "$log"
