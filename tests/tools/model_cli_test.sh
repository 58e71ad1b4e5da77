#!/usr/bin/env bash
# The model commands as users run them: init -> generate (from a folder and from a config), the
# benchmarks' JSON lines, and one-line errors with exit codes for bad prompts and conflicting options.
# Usage: model_cli_test.sh RGEMMA SOURCE_DIR
set -u
rgemma=$1 src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/check_lib.sh"
tiny="$src/configs/model/tiny.ini"
check_re init 0 "init: [0-9]+ parameters" -- "$rgemma" init --config "$tiny" --output "$tmp/tiny"
[ -f "$tmp/tiny/config.json" ] && [ -f "$tmp/tiny/model.safetensors" ] && echo "ok   init-files" || { echo "FAIL init-files"; fails=$((fails+1)); }
check_re generate-folder 0 "^[0-9]+(,[0-9]+){4}$" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2,5,7 --max-new-tokens 5 --greedy --stop-ids 300
check_re generate-config 0 "^[0-9]+(,[0-9]+){4}$" -- "$rgemma" generate --config "$tiny" --prompt-ids 2,5,7 --max-new-tokens 5 --stop-ids 300
a=$("$rgemma" generate --model "$tmp/tiny" --prompt-ids 2,9 --max-new-tokens 20 --seed 3 --temperature 1.3 --stop-ids 300 2>/dev/null)
b=$("$rgemma" generate --model "$tmp/tiny" --prompt-ids 2,9 --max-new-tokens 20 --seed 3 --temperature 1.3 --stop-ids 300 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && echo "ok   generate-seeded" || { echo "FAIL generate-seeded: '$a' vs '$b'"; fails=$((fails+1)); }
check_re bad-id 1 "token id 999 outside the vocabulary" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2,999
check_re bad-ids 2 "prompt-ids: expected comma-separated token ids, got 'x'" -- "$rgemma" generate --model "$tmp/tiny" --prompt-ids 2,x
check_re conflict 2 "model.width: conflicts with --model" -- "$rgemma" generate --model "$tmp/tiny" --model.width=32 --prompt-ids 2
check_re missing-folder 1 "nope" -- "$rgemma" generate --model "$tmp/nope" --prompt-ids 2
check_re bench-scan 0 '"name":"scan_speedup"' -- "$rgemma" bench scan --batch 1 --seq 64 --width 32 --repeats 1
check_re bench-step 0 '"tokens_per_s":' -- "$rgemma" bench step --config "$tiny" --batch 1 --seq 32 --repeats 1
check_re bench-sample 0 '"state_bytes":' -- "$rgemma" bench sample --config "$tiny" --lengths 8,16
check_re bench-unknown 2 "unknown benchmark 'scna'" -- "$rgemma" bench scna
[ $fails = 0 ] && echo "all model command checks passed" || exit 1
