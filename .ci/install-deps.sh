#!/usr/bin/env bash
# Installs rgemma's build and runtime dependencies from Debian 12 packages.
# Idempotent: packages already present are skipped, so re-running costs a few seconds.
# Uses sudo only when not root. Called by .ci/run and by both README commands.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libtorch-dev libopenblas0-pthread
  libopenmpi-dev openmpi-bin
  libhdf5-dev
  libsentencepiece-dev sentencepiece
  libboost-program-options-dev
  libgtest-dev
  nlohmann-json3-dev
  python3-matplotlib  # plots: rgemma report, the benchmark figures (tools/plot/)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
