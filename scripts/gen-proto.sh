#!/usr/bin/env bash
# Regenerates the committed Swift, Python and C code from proto/. Run after any change to a .proto file.
# Needs protoc (protobuf-compiler) and protoc-c (protobuf-c-compiler); protoc-gen-swift is built here from
# the swift-protobuf package that Package.swift pins, so the generator matches the runtime.
set -euo pipefail
cd "$(dirname "$0")/.."

swift build -c release --product protoc-gen-swift
plugin="$(swift build -c release --show-bin-path)/protoc-gen-swift"

protos=(proto/recr1/v1/*.proto)
rel=("${protos[@]#proto/}")

rm -rf Sources/RecR1Proto/recr1 clients/python/recr1/v1/*_pb2.py* clients/c/generated
mkdir -p Sources/RecR1Proto clients/python/recr1/v1 clients/c/generated

protoc -I proto --plugin=protoc-gen-swift="$plugin" \
    --swift_out=Sources/RecR1Proto --swift_opt=Visibility=Public "${rel[@]}"
protoc -I proto --python_out=clients/python --pyi_out=clients/python "${rel[@]}"
protoc-c -I proto --c_out=clients/c/generated "${rel[@]}"

echo "regenerated from ${rel[*]}"
