#!/usr/bin/env bash
# The model commands as users run them: init -> generate (from a folder and from a config), the
# benchmarks' JSON lines, and one-line errors with exit codes for bad prompts and conflicting options.
# Usage: model_cli_test.sh RGEMMA SOURCE_DIR
. "$(dirname "${BASH_SOURCE[0]}")/../tools/check_lib.sh"
tiny="$src/configs/model/tiny.ini"
check_re init 0 "init: [0-9]+ parameters" -- "$rgemma" init --config "$tiny" --output "$tmp/tiny"
[ -f "$tmp/tiny/config.json" ] && [ -f "$tmp/tiny/model.safetensors" ] && ok init-files || fail init-files
check_re generate-folder 0 "^[0-9]+(,[0-9]+){4}$" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2,5,7 --max-new-tokens 5 --greedy --stop-ids none
check_re generate-config 0 "^[0-9]+(,[0-9]+){4}$" -- "$rgemma" generate --config "$tiny" --prompt-ids 2,5,7 --max-new-tokens 5 --stop-ids none
a=$("$rgemma" generate --model "$tmp/tiny" --prompt-ids 2,9 --max-new-tokens 20 --seed 3 --temperature 1.3 --stop-ids none 2>/dev/null)
b=$("$rgemma" generate --model "$tmp/tiny" --prompt-ids 2,9 --max-new-tokens 20 --seed 3 --temperature 1.3 --stop-ids none 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && ok generate-seeded || fail "generate-seeded: '$a' vs '$b'"
check_re bad-id 2 "prompt-ids: token id 999 is outside the model's vocabulary \[0, 256\)" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2,999
check_re bad-ids 2 "prompt-ids: expected comma-separated integers >= 0, got 'x'" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2,x
# Partial numbers used to be read as their prefix ("2 3" as 2, "1-2" as 1); every id must be whole.
check bad-ids-space 2 "prompt-ids: expected comma-separated integers >= 0, got '2 3'" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids "2 3"
check bad-ids-range 2 "got '1-2'" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 1-2
check bad-ids-empty-item 2 "got an empty item" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2,,3
check bad-ids-negative 2 "got -1" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2,-1
check bad-ids-overflow 2 "out of range" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2,99999999999999999999
check bad-stop-ids 2 "stop-ids: expected comma-separated integers >= 0, got '1 2'" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2 --stop-ids "1 2"
check bad-stop-id-vocab 2 "stop-ids: token id 256 is outside the model's vocabulary [0, 256)" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2 --stop-ids 256
check_re spaces-around-ids 0 "^[0-9]+(,[0-9]+){2}$" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids " 2, 5 ,7" --max-new-tokens 3 --greedy --stop-ids none
# Sampling options: a temperature so small that logits / T overflow (it used to give token V-1), NaN, ranges.
check temperature-tiny 2 "temperature: expected a finite number >= 1e-06" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2 --temperature 1e-320
check temperature-nan 2 "temperature: expected" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2 --temperature nan
check temperature-zero 2 "temperature: expected" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2 --temperature 0
check top-p-nan 2 "top-p: expected" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2 --top-p nan
check top-p-big 2 "top-p: expected a number in (0, 1]" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2 --top-p 1.5
check top-k-negative 2 "top-k: expected >= 0" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2 --top-k -1
check max-new-negative 2 "max-new-tokens: expected >= 0" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2 --max-new-tokens -1
check float16-cpu 2 "dtype: float16 is not supported for computing on the CPU" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2 --dtype float16
check_re init-float16 0 "init: [0-9]+ parameters" -- "$rgemma" init --config "$tiny" --dtype float16 --output "$tmp/tiny16"
mkfifo "$tmp/tok.fifo"
check tokenizer-fifo 2 "tokenizer: $tmp/tok.fifo: is a FIFO" -- timeout 60 "$rgemma" generate --model "$tmp/tiny" --prompt x --tokenizer "$tmp/tok.fifo"
# Memory: a model larger than the machine is refused before allocating, naming the bytes; an allocation
# LibTorch itself refuses prints its one-line message, not a 20-line C++ backtrace.
check_re model-too-big 1 "building the model: [0-9]+ parameters as float32 .*out of memory: needs about" -- "$rgemma" generate --config "$tiny" --model.vocab_size=16777216 --model.width=65536 --model.lru_width=65536 --prompt-ids 2
out=$("$rgemma" bench step --config "$tiny" --batch 1000000 --seq 1000000 --repeats 1 2>&1); code=$?
[ "$code" = 1 ] && [ "$(wc -l <<<"$out")" = 1 ] && ! grep -q "Exception raised from\|frame #" <<<"$out" && grep -qi "alloc" <<<"$out" \
  && ok libtorch-error-one-line || { fail "libtorch-error-one-line: exit $code"; echo "$out" | head -5; }
check_re conflict 2 "model.width: conflicts with --model" -- "$rgemma" generate --model "$tmp/tiny" --model.width=32 --prompt-ids 2
check_re missing-folder 2 "model: $tmp/nope: no such folder" -- "$rgemma" generate --model "$tmp/nope" --prompt-ids 2
check_re bench-scan 0 '"name":"scan_speedup"' -- "$rgemma" bench scan --batch 1 --seq 64 --width 32 --repeats 1
check_re bench-step 0 '"tokens_per_s":' -- "$rgemma" bench step --config "$tiny" --batch 1 --seq 32 --repeats 1
# bench step --profile: the seven classes partition the profiled time, so their shares sum to 1 (printed
# to 6 decimals: a sum of 7 doubles is 1 to ~1e-15); a range counted twice or lost would move it; the
# fused RG-LRU's scope is found.
out=$("$rgemma" bench step --config "$tiny" --batch 1 --seq 32 --repeats 1 --profile 2>&1); code=$?
line=$(grep '"name":"train_step_profile"' <<<"$out")
shares=$(grep -o '"[a-z_]*_share":[-0-9.e+]*' <<<"$line" | cut -d: -f2)
sum=$(awk '{s += $1} END {printf "%.6f", s}' <<<"$shares")
[ "$code" = 0 ] && [ "$(wc -l <<<"$shares")" = 7 ] && [ "$sum" = 1.000000 ] && grep -q '"rg_lru_ms":[0-9]' <<<"$line" \
  && ! grep -q '"rg_lru_ms":0.0[,}]' <<<"$line" && ok bench-step-profile \
  || { fail "bench-step-profile: exit $code, shares sum to $sum"; echo "$out" | tail -3; }
check_re bench-sample 0 '"state_bytes":' -- "$rgemma" bench sample --config "$tiny" --lengths 8,16
check_re bench-rollout 0 '"all_rows_to_length":true' -- "$rgemma" bench rollout --config "$tiny" --group 2 --prompt-length 8 \
  --speed-new-tokens 4 --new-tokens 4,8 --repeats 1
check bench-rollout-group 2 "group: expected an integer in [1, 4096], got '0'" -- "$rgemma" bench rollout --config "$tiny" --group 0
check_re bench-unknown 2 "unknown benchmark 'scna'" -- "$rgemma" bench scna
check bench-lengths 2 "lengths: expected comma-separated integers in [1, " -- "$rgemma" bench sample --config "$tiny" --lengths 1-2
check bench-repeats 2 "repeats: expected an integer >= 1, got 0" -- "$rgemma" bench scan --repeats 0
check bench-ranks 2 "ranks: expected comma-separated integers in [1, 4096], got '2 3'" -- "$rgemma" bench train --config "$tiny" --ranks "2 3"
finish "model command"
