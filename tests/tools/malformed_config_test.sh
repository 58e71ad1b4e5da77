#!/usr/bin/env bash
# Malformed configuration through the real `rgemma` binary: a table of (key, bad value, message) given on
# the command line, and bad config files (missing, a directory, /dev/zero, a FIFO, duplicate and unknown
# keys, bad lines). Every case must exit 2 with one line naming the key or file, and never crash.
# Usage: malformed_config_test.sh RGEMMA SOURCE_DIR
. "$(dirname "${BASH_SOURCE[0]}")/../tools/check_lib.sh"

# bad NAME FRAGMENT -- command...: exit 2 (never >= 128, a crash), FRAGMENT in the output, and exactly one
# line of output. The command runs once (each start loads LibTorch); check judges the replayed result.
bad() {
  local name=$1 fragment=$2; shift 3
  # Globals, not locals: check's own locals `out` and `code` would hide them from replay.
  bad_code=0
  bad_out=$("$@" 2>&1 </dev/null) || bad_code=$?
  replay() { printf '%s\n' "$bad_out"; return "$bad_code"; }
  check "$name" 2 "$fragment" -- replay
  local lines
  lines=$(printf '%s\n' "$bad_out" | wc -l)
  [ "$lines" = 1 ] || fail "$name: $lines lines of output, expected 1"
}

# The training commands parse every key before they touch the dataset, so a missing one is fine here.
train=("$rgemma" pretrain --data.train="$tmp/none.h5" --train.out="$tmp/run")

# One row per kind of bad value (the whole table, from files too, is in tests/configs/options_test.cpp):
# key | bad value | the message after "command line: KEY: "
while IFS='|' read -r key value expected; do
  [ -z "$key" ] && continue
  case $key in model.*) cmd=("$rgemma" info) ;; *) cmd=("${train[@]}") ;; esac
  bad "cli $key=$value" "command line: $key: $expected" -- "${cmd[@]}" "--$key=$value"
done <<'TABLE'
optim.beta1|1|expected a finite number in [0, 1), got '1'
optim.beta1|-3|expected a finite number in [0, 1), got '-3'
optim.beta2|nan|expected a finite number in [0, 1), got 'nan'
optim.weight_decay|inf|expected a finite number in [0, 1], got 'inf'
optim.min_lr_ratio|-inf|expected a finite number in [0, 1], got '-inf'
optim.eps|-1|expected a finite number in (0, 1], got '-1'
optim.lr|0|expected a finite number in (0, 1], got '0'
optim.lr|3e-4x|expected a finite number in (0, 1], got '3e-4x'
model.logits_soft_cap|nan|expected a finite number in [0, 1e+06], got 'nan'
model.norm_eps|inf|expected a finite number in (0, 1], got 'inf'
model.rope_base|inf|expected a finite number in (0, 1e+12], got 'inf'
data.micro_batch|288230376151711744|expected an integer in [1, 1048576], got '288230376151711744'
data.micro_batch|288230376151711745|expected an integer in [1, 1048576], got '288230376151711745'
data.seq_len|4294967296|expected an integer in [1, 1048576], got '4294967296'
data.seq_len|12abc|expected an integer in [1, 1048576], got '12abc'
data.seq_len|1.5|expected an integer in [1, 1048576], got '1.5'
data.seq_len||expected an integer, got ''
train.max_nonfinite|4294967296|expected an integer in [1, 1000000], got '4294967296'
train.dtype|float16|expected float32, bfloat16 or auto, got 'float16'
data.pack|maybe|expected true or false, got 'maybe'
model.vocab_size|1000000000000000000|expected an integer in [1, 16777216], got '1000000000000000000'
model.attention_window|1000000000|expected an integer in [0, 1048576], got '1000000000'
model.width|wide|expected an integer in [1, 65536], got 'wide'
TABLE

# Products of in-range factors.
bad micro-batch-tokens "command line: data.micro_batch: tokens per micro-batch" -- \
  "${train[@]}" --data.micro_batch=1048576 --data.seq_len=1048576
bad model-parameters "more than the 4398046511104 supported" -- \
  "$rgemma" info --model.width=65536 --model.mlp_hidden=1048576 --model.depth=1024 --model.lru_width=65536 \
  --model.num_heads=1024 --model.head_dim=64

# Config files that are not config files, or are malformed.
bad missing-file "$tmp/nope.ini: cannot open config file" -- "$rgemma" info --config "$tmp/nope.ini"
bad empty-path ": cannot open config file" -- "$rgemma" info --config ""
bad directory "$tmp: cannot use as a config file: a directory" -- "$rgemma" info --config "$tmp"
bad dev-zero "/dev/zero: cannot use as a config file: a character device" -- "$rgemma" info --config /dev/zero
mkfifo "$tmp/fifo.ini"
bad fifo "$tmp/fifo.ini: cannot use as a config file: a FIFO" -- timeout 10 "$rgemma" info --config "$tmp/fifo.ini"
printf '[model]\nwidth = 64\ndepth = 2\nwidth = 128\n' > "$tmp/dup.ini"
bad duplicate-key "$tmp/dup.ini:4: duplicate key 'model.width', first set at $tmp/dup.ini:2" -- \
  "$rgemma" info --config "$tmp/dup.ini"
printf '[model]\nwidht = 64\n' > "$tmp/unknown.ini"
bad unknown-key "$tmp/unknown.ini:2: unknown key 'model.widht' (did you mean 'model.width'?)" -- \
  "$rgemma" info --config "$tmp/unknown.ini"
printf '[model]\nwidth 64\n' > "$tmp/line.ini"
bad bad-line "$tmp/line.ini:2: expected 'key = value' or a [section] header, got 'width 64'" -- \
  "$rgemma" info --config "$tmp/line.ini"
printf '[optim]\nlr = 3e-4\nbeta2 = nan\n' > "$tmp/nan.ini"
bad nan-in-file "$tmp/nan.ini:3: optim.beta2: expected a finite number in [0, 1), got 'nan'" -- \
  "${train[@]}" --config "$tmp/nan.ini"
printf '[model]\nvocab_size = 4294967296\n' > "$tmp/wrap.ini"
bad wrap-in-file "$tmp/wrap.ini:2: model.vocab_size: expected an integer in [1, 16777216], got '4294967296'" -- \
  "$rgemma" info --config "$tmp/wrap.ini"
head -c 4096 "$rgemma" > "$tmp/binary.ini"  # an executable's bytes: NULs, control characters, no '='
bad binary-file "$tmp/binary.ini" -- "$rgemma" info --config "$tmp/binary.ini"

# What still works: ranges in --help, and the largest accepted vocabulary counted without overflow.
check help-range 0 "AdamW beta1, in [0, 1)" -- "${train[@]}" --help
check_re info-largest-vocab 0 "weights: 20[0-9][0-9]\.[0-9]+ GiB in bfloat16" -- \
  "$rgemma" info --model.vocab_size=16777216 --model.width=65536 --model.depth=1 --model.lru_width=64
finish "malformed configuration"
