#!/usr/bin/env bash
# `rgemma report` on real run folders made here: a short pretraining run at 1 rank and at 2 ranks (one plot
# compares them) and a short reward model run. Checks:
#  - the PNGs exist and are well-formed PNG files (signature, chunk CRCs, IHDR first, IEND last, the image
#    data inflating to height x (1 + width x channels) bytes), checked by a reader written here;
#  - index.md's row of each run holds the metrics' last values (steps, tokens, loss and validation loss to
#    the 4 decimals printed, tokens/s rounded), read here from metrics.jsonl with grep;
#  - the pretraining rows' unigram entropy equals the closed form of the corpus: documents of digits (each
#    digit one token: the tokenizer splits digits) after one <bos> each, counted here with awk;
#  - the kinds (pretrain from the text dataset, reward from the metrics);
#  - exit 2 naming a folder without metrics.jsonl, exit 2 without --output, exit 1 with one line when the
#    interpreter has no matplotlib or does not exist.
# Usage: report_test.sh RGEMMA SOURCE_DIR [MPIEXEC [MPIEXEC_FLAGS...]]   (no MPIEXEC: the 2-rank run is skipped)
. "$(dirname "${BASH_SOURCE[0]}")/../tools/check_lib.sh"
cd "$tmp"
export RG_THREADS=1  # ranks share 2 cores
py=/usr/bin/python3
if ! "$py" -c 'import matplotlib' 2>/dev/null; then echo "no matplotlib for $py: skipped"; exit 77; fi

# Fixtures: a tokenizer from words and digits; a corpus of digit strings drawn with skewed frequencies, one
# per blank-line separated block (document).
RANDOM=5
words=(the whale ship sea captain harpoon white deep sailor wind storm boat ocean night moon star rope deck)
for ((d = 0; d < 200; d++)); do
  s=""; for ((i = 0; i < 8; i++)); do s+="${words[RANDOM % ${#words[@]}]} "; done
  echo "$s $((RANDOM * RANDOM))."
done > words.txt
"$rgemma" tokenizer train --input words.txt --vocab-size 300 --output tok.model > /dev/null 2>&1 || fail "tokenizer"
digits=(0 0 0 0 0 0 1 1 1 1 2 2 2 3 3 4 5 6 7 8 9)  # skewed: the entropy is well below log(10)
for ((d = 0; d < 240; d++)); do
  s=""; for ((i = 0; i < 40 + RANDOM % 40; i++)); do s+=${digits[RANDOM % ${#digits[@]}]}; done
  printf '%s\n\n' "$s"
done > digits.txt
"$rgemma" prepare text --tokenizer tok.model --input digits.txt --document block --validation 0.25 \
  --output digits.h5 > /dev/null 2>&1 || fail "prepare text"
RANDOM=9
: > pairs.jsonl
for ((p = 0; p < 120; p++)); do
  kind=$([ $((p % 2)) = 0 ] && echo even || echo odd)
  printf '{"prompt": "%s", "chosen": "whale whale %s", "rejected": "%s", "kind": "%s"}\n' \
    "${words[RANDOM % 18]} ${words[RANDOM % 18]}" "${words[RANDOM % 18]}" "${words[RANDOM % 18]} ${words[RANDOM % 18]}" \
    "$kind" >> pairs.jsonl
done
"$rgemma" prepare preference --tokenizer tok.model --input pairs.jsonl --validation 0.25 --output pairs.h5 \
  > /dev/null 2>&1 || fail "prepare preference"
"$rgemma" init --config "$src/configs/model/tiny.ini" --model.vocab_size=300 --output init > /dev/null 2>&1 || fail "init"
stop_if_failed "fixtures could not be made"

# The runs.
pretrain=(pretrain --config "$src/configs/model/tiny.ini" --model.vocab_size=300 --data.train=digits.h5
          --data.tokenizer=tok.model --data.seq_len=32 --data.micro_batch=4 --train.steps=16 --train.log_every=4
          --train.eval_every=8 --train.eval_batches=2 --optim.lr=3e-3 --optim.warmup_steps=4)
ranks_run pretrain-1rank 1 "${pretrain[@]}"
runs=(pretrain-1rank)
if [ ${#mpi[@]} -gt 0 ]; then ranks_run pretrain-2ranks 2 "${pretrain[@]}"; runs+=(pretrain-2ranks)
else echo "no MPIEXEC given: the 2-rank run is skipped"; fi
ranks_run rm 1 reward --data.train=pairs.h5 --data.tokenizer=tok.model --data.seq_len=48 --data.micro_batch=4 \
  --train.init_from=init --train.steps=16 --train.log_every=4 --train.eval_every=8 --train.eval_batches=100 \
  --optim.lr=2e-3 --optim.warmup_steps=4
runs+=(rm)
stop_if_failed "the runs failed"

# The report.
"$rgemma" report "${runs[@]}" --output rep > report.log 2>&1 && ok "report: exit 0" || { fail "report: exit $?"; cat report.log; }

# PNG well-formedness, read here (no matplotlib): prints the problem, or nothing.
png_problem() {
  "$py" - "$1" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n": sys.exit(print("no PNG signature"))
pos, chunks, idat = 8, [], b""
while pos < len(data):
    if pos + 12 > len(data): sys.exit(print(f"truncated chunk at byte {pos}"))
    n, = struct.unpack(">I", data[pos:pos + 4]); kind = data[pos + 4:pos + 8]; body = data[pos + 8:pos + 8 + n]
    crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
    if len(body) != n or zlib.crc32(kind + body) != crc: sys.exit(print(f"bad CRC in chunk {kind}"))
    chunks.append(kind); idat += body if kind == b"IDAT" else b""; pos += 12 + n
    if kind == b"IHDR": w, h, depth, color = struct.unpack(">IIBB", body[:10])
if chunks[0] != b"IHDR" or chunks[-1] != b"IEND": sys.exit(print(f"chunks {chunks[0]} ... {chunks[-1]}"))
channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color)
if depth != 8 or channels is None: sys.exit(print(f"depth {depth} color {color}"))
if not (100 <= w <= 5000 and 100 <= h <= 5000): sys.exit(print(f"size {w}x{h}"))
if len(zlib.decompress(idat)) != h * (1 + w * channels): sys.exit(print("image data of the wrong size"))
PY
}
for png in loss lr throughput accuracy; do
  if [ ! -f "rep/$png.png" ]; then fail "$png.png not written"; continue; fi
  p=$(png_problem "rep/$png.png")
  [ -z "$p" ] && ok "$png.png is a valid PNG" || fail "$png.png: $p"
  grep -q "($png.png)" rep/index.md && ok "index.md shows $png.png" || fail "index.md lacks $png.png"
done
[ ! -e rep/rl.png ] && ok "no rl.png without PPO/GRPO runs" || fail "rl.png drawn without PPO/GRPO runs"

# index.md against the metrics' last values.
last() {  # last RUN FIELD [val]: the last value of FIELD in the step lines (or, with val, the eval lines)
  if [ "${3:-}" = val ]; then grep '"val_' "$1/metrics.jsonl"; else grep -v '"val_' "$1/metrics.jsonl"; fi |
    grep -o "\"$2\":[^,}]*" | tail -1 | cut -d: -f2
}
cell() {  # cell RUN COLUMN: the run's index.md row, column 1-9, commas dropped
  awk -F'|' -v r="$1" -v c="$2" '{ n = $2; gsub(/ /, "", n) } n == r { v = $(c + 1); gsub(/^ +| +$|,/, "", v); print v }' rep/index.md
}
near() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b != "" && d <= t) }'; }
for r in "${runs[@]}"; do
  [ "$(cell "$r" 3)" = "$(last "$r" step)" ] && ok "$r: steps $(cell "$r" 3)" || fail "$r: steps '$(cell "$r" 3)' != $(last "$r" step)"
  [ "$(cell "$r" 4)" = "$(last "$r" tokens)" ] && ok "$r: tokens" || fail "$r: tokens '$(cell "$r" 4)' != $(last "$r" tokens)"
  # 4 decimals printed: within half a unit of the last place (and a little for the decimal conversion).
  near "$(cell "$r" 5)" "$(last "$r" loss)" 0.0000501 && ok "$r: final loss $(cell "$r" 5)" \
    || fail "$r: final loss '$(cell "$r" 5)' != $(last "$r" loss)"
  near "$(cell "$r" 6)" "$(last "$r" val_loss val)" 0.0000501 && ok "$r: final val loss $(cell "$r" 6)" \
    || fail "$r: final val loss '$(cell "$r" 6)' != $(last "$r" val_loss val)"
  near "$(cell "$r" 7)" "$(last "$r" tokens_per_s)" 0.501 && ok "$r: tokens/s" \
    || fail "$r: tokens/s '$(cell "$r" 7)' != $(last "$r" tokens_per_s)"
done
[ "$(cell pretrain-1rank 2)" = pretrain ] && ok "kind pretrain" || fail "kind '$(cell pretrain-1rank 2)', expected pretrain"
[ "$(cell rm 2)" = reward ] && ok "kind reward" || fail "kind '$(cell rm 2)', expected reward"
acc=$(cell rm 9 | grep -o 'val accuracy [0-9.]*' | cut -d' ' -f3)
near "$acc" "$(last rm val_accuracy val)" 0.0005 && ok "reward: val accuracy $acc" || fail "reward: val accuracy '$acc'"

# Unigram entropy of the training documents (prepare's split: document k is held out when
# floor((k+1)/4) > floor(k/4), i.e. k % 4 == 3), each document <bos> + one token per digit.
want=$(awk 'NF { if (k++ % 4 == 3) next; c["bos"]++; n++; for (i = 1; i <= length($0); i++) { c[substr($0, i, 1)]++; n++ } }
            END { for (t in c) h -= c[t] / n * log(c[t] / n); printf "%.6f\n", h }' digits.txt)
got=$(cell pretrain-1rank 9 | grep -o 'unigram entropy [0-9.]*' | cut -d' ' -f3)
# printed to 4 significant digits: within half a unit of the 4th
near "$got" "$want" 0.0005 && ok "unigram entropy $got (closed form $want)" || fail "unigram entropy '$got', closed form $want"

# Bad input.
mkdir empty
check "folder without metrics.jsonl" 2 "empty: no metrics.jsonl" -- "$rgemma" report pretrain-1rank empty --output rep2
check "no --output" 2 "output" -- "$rgemma" report pretrain-1rank
check "no run folder" 2 "no run folders" -- "$rgemma" report --output rep2
printf '#!/bin/sh\nexec %s -S "$@"\n' "$py" > nosite-python; chmod +x nosite-python  # Python without site-packages
check "python without matplotlib" 1 "matplotlib is missing" -- "$rgemma" report pretrain-1rank --output rep2 --python="$tmp/nosite-python"
check "no python" 1 "no Python interpreter at $tmp/none" -- "$rgemma" report pretrain-1rank --output rep2 --python="$tmp/none"
lines=$("$rgemma" report pretrain-1rank --output rep2 --python="$tmp/nosite-python" 2>&1 | wc -l)
[ "$lines" = 1 ] && ok "one-line error" || fail "missing matplotlib: $lines lines"
finish report
