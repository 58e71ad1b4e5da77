#!/usr/bin/env bash
# The speed figures of docs/benchmarks.md's "Sampling and training speed on the CI kind" table, in one
# command (about 2 minutes on 2 idle cores): sampling tokens/s of the reference config (width 256, depth 6,
# vocab 4096, window 128, batch 4, 512 new tokens) at 2 and 1 threads, of `tiny` with vocab 4,096 and
# 256,000, the batch-1 step of recurrentgemma-100m in float32 and bfloat16 next to the time one read of its
# weights takes (numpy's max over an array of the same bytes; also the 256k head's 65.5 MB), and the
# training step of the reference config (`bench step`, then its per-class profile). Prints the machine and the load before and after:
# figures from a busy machine are not figures. Needs the release build (build/bin/rgemma by default).
# Usage: launch/bench-speed.sh [RGEMMA]
set -euo pipefail
cd "$(dirname "$0")/.."
rgemma=${1:-build/bin/rgemma}
[ -x "$rgemma" ] || { echo "bench-speed: no rgemma at $rgemma (build first)" >&2; exit 2; }
ref=(--config configs/model/tiny.ini --model.vocab_size=4096 --model.width=256 --model.depth=6 --model.num_heads=4
     --model.head_dim=64 --model.lru_width=256 --model.mlp_hidden=768 --model.attention_window=128)
echo "# $(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, load: $(uptime | sed 's/.*load average: //')"
for i in 1 2 3; do "$rgemma" bench sample "${ref[@]}" --batch 4 --lengths 512 --prompt-length 8 --threads 2; done
"$rgemma" bench sample "${ref[@]}" --batch 4 --lengths 512 --prompt-length 8 --threads 1
for vocab in 4096 256000; do
  "$rgemma" bench sample --config configs/model/tiny.ini --model.vocab_size=$vocab --batch 4 --lengths 512 --threads 2
done
for dtype in float32 bfloat16; do
  "$rgemma" bench sample --config configs/model/recurrentgemma-100m.ini --batch 1 --lengths 128 --dtype $dtype --threads 2
done
/usr/bin/python3 - <<'PY'
import time
import numpy as np
# recurrentgemma-100m holds 108,485,376 parameters: one read of them in float32 and in bfloat16; and the
# tied embedding of `tiny` at vocab 256,000 (256,000 x 64 floats), which each of its decode steps must read.
for name, a in (("recurrentgemma-100m float32, 434 MB", np.ones(108_485_376, np.float32)),
                ("recurrentgemma-100m bfloat16, 217 MB", np.ones(108_485_376, np.uint16)),
                ("tiny vocab 256000 head, 65.5 MB", np.ones(256_000 * 64, np.float32))):
    t = []
    for _ in range(5 if a.size > 50_000_000 else 20):
        s = time.perf_counter(); a.max(); t.append(time.perf_counter() - s)
    print(f'{{"name":"read_weights_once","what":"{name}","ms":{min(t) * 1e3:.2f}}}')
PY
for i in 1 2; do "$rgemma" bench step "${ref[@]}" --batch 4 --seq 512 --threads 2; done
for dtype in float32 bfloat16; do
  "$rgemma" bench step "${ref[@]}" --batch 4 --seq 512 --threads 2 --dtype $dtype --repeats 5 --profile
done
echo "# end $(date -u +%FT%TZ), load: $(uptime | sed 's/.*load average: //')"
