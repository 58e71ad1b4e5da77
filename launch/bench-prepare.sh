#!/usr/bin/env bash
# `rgemma prepare text` speed and memory, as docs/benchmarks.md records them: tokens/s with 1 thread and with
# every core on the real corpus (launch/build-real-data.sh's corpus/*.jsonl and tokenizer), and the peak
# resident memory (VmHWM, printed by prepare itself) for one GB-sized text file read as a single document
# (--document file) and as blank-line blocks. Prints prepare's own summary lines, then `uptime`.
# Usage: launch/bench-prepare.sh [RGEMMA=build/bin/rgemma] [DATA=build-real-data] [GB=1]
set -euo pipefail
rgemma=${1:-build/bin/rgemma} data=${2:-build-real-data} gb=${3:-1}
tok=$data/tokenizer.model
[ -x "$rgemma" ] || { echo "no rgemma at $rgemma (build first)" >&2; exit 2; }
[ -f "$tok" ] && [ -d "$data/corpus" ] || { echo "no $tok or $data/corpus (run launch/build-real-data.sh)" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "== $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for threads in 1 0; do
  echo "== real corpus, --threads $threads ($([ $threads = 0 ] && echo every core || echo one))"
  "$rgemma" prepare text --tokenizer "$tok" --input "$data/corpus" --threads "$threads" --output "$tmp/corpus-$threads.h5" 2>&1 >/dev/null
done
cmp -s "$tmp/corpus-1.h5" "$tmp/corpus-0.h5" && echo "== same bytes at 1 thread and every core" \
  || { echo "== DIFFERENT bytes at 1 thread and every core" >&2; exit 1; }
rm -f "$tmp"/corpus-*.h5
# A GB-sized text: the tokenizer's training text (the corpus as plain text) repeated.
src=$data/tokenizer-input.txt
[ -f "$src" ] || src=$(ls "$data"/corpus/*.jsonl | head -1)
while [ "$(stat -c %s "$tmp/big.txt" 2>/dev/null || echo 0)" -lt $((gb * 1024 * 1024 * 1024)) ]; do cat "$src" >> "$tmp/big.txt"; done
truncate -s $((gb * 1024 * 1024 * 1024)) "$tmp/big.txt"
# truncate may cut a UTF-8 character: end the file at its last line break instead.
python3 - "$tmp/big.txt" <<'PY'
import os, sys
p = sys.argv[1]
with open(p, "rb+") as f:
    f.seek(-65536, os.SEEK_END)
    tail = f.read()
    f.truncate(os.path.getsize(p) - len(tail) + tail.rfind(b"\n") + 1)
PY
for mode in file block; do
  echo "== $(($(stat -c %s "$tmp/big.txt") / 1048576)) MiB text, --document $mode, every core"
  "$rgemma" prepare text --tokenizer "$tok" --input "$tmp/big.txt" --document "$mode" --output "$tmp/big.h5" 2>&1 >/dev/null
  rm -f "$tmp/big.h5"
done
echo "== load: $(uptime)"
