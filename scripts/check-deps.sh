#!/usr/bin/env bash
# Fails when a C-built crypto stack slips into the build: rotor uses rustls on ring (rotor-aws),
# and the cloud SDKs' default features would add aws-lc-sys (a C build needing cmake) or OpenSSL.
set -euo pipefail
cd "$(dirname "$0")/.."

forbidden='^(aws-lc-sys|aws-lc-rs|openssl-sys|openssl|cmake) '
# A failing `cargo tree` fails the check (set -e), never passes it.
tree=$(cargo tree --workspace --locked -e normal,build --prefix none --format '{p}')
found=$(echo "$tree" | sort -u | grep -E "$forbidden" || true)
if [[ -n "$found" ]]; then
  echo "forbidden crates in the build (a default feature slipped in?):" >&2
  echo "$found" >&2
  for crate in $(echo "$found" | awk '{print $1}' | sort -u); do
    cargo tree --workspace --locked -e normal,build -i "$crate" >&2 || true
  done
  exit 1
fi
echo "dependency check: no aws-lc, OpenSSL or cmake in the build"
