#!/usr/bin/env bash
# The end-to-end demo, from a fresh Debian 12 machine: install, build, then walk through what rgemma does
# today. Each capability adds its step here. Run from anywhere: bash launch/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps.sh
build=${RG_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)"
rgemma="$build/bin/rgemma"
step() { printf '\n== %s\n' "$*"; }

step "rgemma --help"
"$rgemma" --help

step "RecurrentGemma 2B and 9B, and the Gemma 2B baseline: parameters from the config alone"
for m in recurrentgemma-2b recurrentgemma-9b gemma-2b; do
  "$rgemma" info --config "configs/model/$m.ini" | head -4
done
