#!/bin/bash
# The paper's Figure 1 with our code, in one command: recurrentgemma-100m against gemma-100m (a Gemma
# transformer of matched parameter count), random weights (speed does not depend on them):
#   sampling tokens/s and state bytes at 512, 2048, 8192 and 16384 generated tokens (one generation per
#   model, reported at each length), and prefill tokens/s against the prompt length.
# Writes the JSON lines to docs/img/figure1.jsonl and the picture to docs/img/figure1.png, and prints the
# table for docs/benchmarks.md. Sized for about 10 minutes on 2 cores; environment overrides:
#   RGEMMA (default build/bin/rgemma), DTYPE (float32), BATCH (1), PROMPT (64), THREADS (2),
#   LENGTHS (512,2048,8192,16384), PREFILL_LENGTHS (512,2048,8192,16384).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
rgemma=${RGEMMA:-$root/build/bin/rgemma}
dtype=${DTYPE:-float32} batch=${BATCH:-1} prompt=${PROMPT:-64} threads=${THREADS:-2}
lengths=${LENGTHS:-512,2048,8192,16384} prefill_lengths=${PREFILL_LENGTHS:-512,2048,8192,16384}
results=$root/docs/img/figure1.jsonl
cd "$root"
echo "# $(date -u +%FT%TZ) $(uname -n) load: $(uptime | sed 's/.*load average: //')" > "$results"
start=$SECONDS
"$rgemma" bench sample --config configs/model/recurrentgemma-100m.ini --vs configs/model/gemma-100m.ini \
  --lengths "$lengths" --batch "$batch" --prompt-length "$prompt" --dtype "$dtype" --threads "$threads" | tee -a "$results"
"$rgemma" bench prefill --config configs/model/recurrentgemma-100m.ini --vs configs/model/gemma-100m.ini \
  --lengths "$prefill_lengths" --batch "$batch" --dtype "$dtype" --threads "$threads" | tee -a "$results"
echo "# $(( SECONDS - start )) s; load after: $(uptime | sed 's/.*load average: //')" | tee -a "$results"
/usr/bin/python3 tools/plot/figure1.py docs/img/figure1.png "$results"
