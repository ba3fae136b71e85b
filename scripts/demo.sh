#!/usr/bin/env bash
# The main job: builds rotor (installing its build requirements first) and runs `rotor demo`.
# Arguments go to the demo: `bash scripts/demo.sh --clusters 1000 --json`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-build-deps.sh
exec cargo run -p rotor -- demo "$@"
