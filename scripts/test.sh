#!/usr/bin/env bash
# Every test of recr1, from a fresh Debian 12 machine with the Swift toolchain: set-up, build, the Swift
# tests, then the Python tests that drive the real recr1d binary over nng.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

bash scripts/setup.sh
echo "== build"
bash scripts/build.sh --build-tests
echo "== Swift tests"
swift test -c release -Xswiftc -enable-testing --skip-build --disable-swift-testing
echo "== Swift engine tests on the portable kernels (the path of CPUs without AVX-512)"
RECR1_KERNELS=portable swift test -c release -Xswiftc -enable-testing --skip-build --disable-swift-testing \
    --filter "KernelTests|QuantizedTests|DecoderTests|TrainingPassTests|GradientParityTests|LoRATests|ParityTests|OptimizerTests"
echo "== Swift engine tests on the AVX2 kernels (the path of CPUs with AVX2 but not AVX-512)"
RECR1_KERNELS=avx2 swift test -c release -Xswiftc -enable-testing --skip-build --disable-swift-testing \
    --filter "QuantizedTests|DecoderTests|ParityTests"
echo "== Python tests"
RECR1D="$(swift build -c release -Xswiftc -enable-testing --show-bin-path)/recr1d" \
    "$PYTHON" -m pytest -q clients/python/tests
echo "== Fuzz: 20k random, truncated, bit-flipped and absurd frames against a real recr1d (scripts/fuzz.py)"
RECR1D="$(swift build -c release -Xswiftc -enable-testing --show-bin-path)/recr1d" "$PYTHON" scripts/fuzz.py --frames 20000
echo "== C SDK tests" && RECR1D="$(swift build -c release -Xswiftc -enable-testing --show-bin-path)/recr1d" make -C clients/c test
