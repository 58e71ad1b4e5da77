#!/bin/bash
# The paper's Figure 1 with our code, in one command: recurrentgemma-100m against gemma-100m (a Gemma
# transformer of matched parameter count), random weights (speed does not depend on them):
#   sample:  sampling tokens/s and state bytes at 512, 2048, 8192 and 16384 generated tokens (one
#            generation per model, reported at each length), batch 8 by default: the paper's figure is a
#            batched throughput, where a transformer's KV cache grows with the batch while the weights'
#            read is shared by the rows;
#   prefill: prompt-processing tokens/s against the prompt length, batch 1.
# Each part writes its JSON lines to docs/img/figure1-<part>.jsonl, so one part can be rerun alone
# (PARTS=prefill); the picture (docs/img/figure1.png) and the table for docs/benchmarks.md come from both
# files. On the 2-core AMD EPYC: sample 28 minutes; prefill ran 25 minutes before gemma-100m's 16k prompt
# (quadratic attention, minutes per pass) was stopped by hand: PREFILL_LENGTHS=512,2048,8192 skips it.
# Environment overrides: RGEMMA (default build/bin/rgemma), PARTS ("sample prefill"), DTYPE (float32),
# BATCH (8), PREFILL_BATCH (1), PROMPT (64), THREADS (2), LENGTHS (512,2048,8192,16384),
# PREFILL_LENGTHS (512,2048,8192,16384).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
rgemma=${RGEMMA:-$root/build/bin/rgemma}
parts=${PARTS:-sample prefill}
dtype=${DTYPE:-float32} batch=${BATCH:-8} prefill_batch=${PREFILL_BATCH:-1} prompt=${PROMPT:-64}
threads=${THREADS:-2} lengths=${LENGTHS:-512,2048,8192,16384}
prefill_lengths=${PREFILL_LENGTHS:-512,2048,8192,16384}
models=(--config configs/model/recurrentgemma-100m.ini --vs configs/model/gemma-100m.ini)
cd "$root"
stamp() { echo "# $(date -u +%FT%TZ) $(uname -n) $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores," \
               "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, main at $(git rev-parse --short HEAD 2>/dev/null || echo '?');" \
               "load: $(uptime | sed 's/.*load average: //')"; }
for part in $parts; do
  results=docs/img/figure1-$part.jsonl
  stamp > "$results"
  start=$SECONDS
  case $part in
    sample) "$rgemma" bench sample "${models[@]}" --lengths "$lengths" --batch "$batch" --prompt-length "$prompt" \
              --dtype "$dtype" --threads "$threads" | tee -a "$results" ;;
    prefill) "$rgemma" bench prefill "${models[@]}" --lengths "$prefill_lengths" --batch "$prefill_batch" \
              --dtype "$dtype" --threads "$threads" | tee -a "$results" ;;
    *) echo "run-figure1.sh: PARTS: unknown part '$part' (expected sample and/or prefill)" >&2; exit 2 ;;
  esac
  echo "# $part: $(( SECONDS - start )) s; load after: $(uptime | sed 's/.*load average: //')" | tee -a "$results"
done
/usr/bin/python3 tools/plot/figure1.py docs/img/figure1.png docs/img/figure1-sample.jsonl docs/img/figure1-prefill.jsonl
