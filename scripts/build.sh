#!/usr/bin/env bash
# The one build of recr1: release, with testing enabled so that the tests reuse the same build.
# Extra arguments go to `swift build` (e.g. --build-tests).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release -Xswiftc -enable-testing "$@"
