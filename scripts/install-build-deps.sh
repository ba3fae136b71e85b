#!/usr/bin/env bash
# Installs what building rotor needs beyond the Rust toolchain on a fresh Debian 12 machine,
# idempotently: protoc and the protobuf well-known types, which the etcd client's build script
# compiles its gRPC definitions with.
set -euo pipefail

if ! command -v protoc >/dev/null 2>&1 || [ ! -f /usr/include/google/protobuf/descriptor.proto ]; then
  echo "installing protoc (protobuf-compiler, libprotobuf-dev) for the etcd client's build" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends protobuf-compiler libprotobuf-dev >/dev/null
fi
