#!/usr/bin/env bash
# `rgemma tokenizer train` and `rgemma prepare ...` as a user meets them: a trained tokenizer with Gemma's
# ids, progress lines on stderr and a summary on stdout, file:line errors with exit 1, usage errors with
# exit 2, and no partial output (nor temporary files) after a failure; malformed JSONL lines (exit 1), paths
# that are not regular files and unusable datasets (exit 2), each one line on stderr, never a crash or a hang.
# Usage: prepare_cli_test.sh RGEMMA SOURCE_DIR
. "$(dirname "${BASH_SOURCE[0]}")/../tools/check_lib.sh"
no_leftovers() {  # no_leftovers NAME: nothing named *.tmp-* in $tmp
  if ls "$tmp" | grep -q '\.tmp-'; then fail "$1: temporary files left: $(ls "$tmp" | grep '\.tmp-')"; else ok "$1"; fi
}

# Generated text: 2,000 lines of words, and 300 blank-line separated documents.
RANDOM=7
words=(the whale ship sea captain harpoon white deep sailor wind storm boat ocean call me Ishmael years ago
       never mind how long precisely little money in my purse and nothing particular to interest on shore)
for ((n = 0; n < 2000; n++)); do line 10; done > "$tmp/corpus.txt"
for ((d = 0; d < 300; d++)); do line 6; line 4; echo; done > "$tmp/docs.txt"

check tokenizer-train 0 "pad 0 eos 1 bos 2 unk 3 <start_of_turn> 4 <end_of_turn> 5" -- \
  "$rgemma" tokenizer train --input "$tmp/corpus.txt" --vocab-size 300 --output "$tmp/tok.model"
[ -f "$tmp/tok.model" ] && [ -f "$tmp/tok.vocab" ] && ok "tokenizer-files" || fail "tokenizer-files missing"
check tokenizer-too-big 1 "sentencepiece training failed" -- \
  "$rgemma" tokenizer train --input "$tmp/corpus.txt" --vocab-size 50000 --output "$tmp/big.model"
[ ! -e "$tmp/big.model" ] && ok "tokenizer-no-partial" || fail "tokenizer-no-partial: big.model exists"
no_leftovers tokenizer-no-scratch

# Text: progress on stderr (one line per tenth when not a terminal), the summary on stdout.
"$rgemma" prepare text --tokenizer "$tmp/tok.model" --input "$tmp/docs.txt" --document block \
  --validation 0.1 --output "$tmp/text.h5" > "$tmp/out.txt" 2> "$tmp/err.txt"; code=$?
[ $code = 0 ] && ok "prepare-text" || { fail "prepare-text: exit $code"; cat "$tmp/err.txt"; }
grep -qF "train 270 documents" "$tmp/out.txt" && grep -qF "validation 30 documents" "$tmp/out.txt" \
  && ok "prepare-text-summary" || { fail "prepare-text-summary"; cat "$tmp/out.txt"; }
# Not a terminal: one summary line (no bar), with tokens/s and the peak memory.
progress=$(grep -c "prepare text" "$tmp/err.txt")
[ "$progress" = 1 ] && grep -q "^prepare text: .* 300 examples .* tokens/s .* peak memory [0-9]* MiB" "$tmp/err.txt" \
  && ok "prepare-text-progress-summary" || { fail "prepare-text-progress-summary: $progress lines"; cat "$tmp/err.txt"; }

cat > "$tmp/chat.jsonl" <<'JSON'
{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "call me Ishmael"}, {"role": "assistant", "content": "the whale."}]}
{"messages": [{"role": "user", "content": "how long ago?"}, {"role": "model", "content": "years ago."}, {"role": "user", "content": "and the ship?"}, {"role": "model", "content": "the boat."}]}
JSON
check prepare-chat 0 "train 2 conversations" -- \
  "$rgemma" prepare chat --tokenizer "$tmp/tok.model" --input "$tmp/chat.jsonl" --validation 0 --output "$tmp/chat.h5"
echo '{"prompt": "the sea?", "chosen": "deep.", "rejected": "white.", "kind": "faq"}' > "$tmp/pref.jsonl"
check prepare-preference 0 "train 1 pairs" -- \
  "$rgemma" prepare preference --tokenizer "$tmp/tok.model" --input "$tmp/pref.jsonl" --validation 0 --output "$tmp/pref.h5"
echo '{"prompt": "the sea?"}' > "$tmp/prompts.jsonl"
check prepare-prompts 0 "train 1 prompts" -- \
  "$rgemma" prepare prompts --tokenizer "$tmp/tok.model" --input "$tmp/prompts.jsonl" --validation 0 --output "$tmp/prompts.h5"
printf '%s\n' '{"prompt": "the sea?", "answer": "deep"}' '{"prompt": "the ship?"}' > "$tmp/answers.jsonl"
check prepare-prompts-answers 0 "train 2 prompts, " -- \
  "$rgemma" prepare prompts --tokenizer "$tmp/tok.model" --input "$tmp/answers.jsonl" --validation 0 --output "$tmp/answers.h5"
check prepare-prompts-answer-count 0 "; 1 with an answer" -- \
  "$rgemma" prepare prompts --tokenizer "$tmp/tok.model" --input "$tmp/answers.jsonl" --validation 0 --output "$tmp/answers.h5"
echo '{"prompt": "the sea?", "answer": 7}' > "$tmp/bad-answer.jsonl"
check bad-answer 1 "bad-answer.jsonl:1: answer: expected a string" -- \
  "$rgemma" prepare prompts --tokenizer "$tmp/tok.model" --input "$tmp/bad-answer.jsonl" --output "$tmp/bad-answer.h5"

# Failures: exit 1 with file:line, the earlier chat.h5 untouched, nothing half-written.
cp "$tmp/chat.h5" "$tmp/chat.before"
{ head -1 "$tmp/chat.jsonl"; echo '{"messages": [{"role": "user", "content": "hi"}'; } > "$tmp/bad.jsonl"
check bad-json 1 "$tmp/bad.jsonl:2: malformed JSON" -- \
  "$rgemma" prepare chat --tokenizer "$tmp/tok.model" --input "$tmp/bad.jsonl" --output "$tmp/chat.h5"
cmp -s "$tmp/chat.h5" "$tmp/chat.before" && ok "failed-run-keeps-output" || fail "failed-run-keeps-output"
echo '{"messages": [{"role": "robot", "content": "hi"}]}' > "$tmp/role.jsonl"
check bad-role 1 "role.jsonl:1: message 1: unknown role 'robot'" -- \
  "$rgemma" prepare chat --tokenizer "$tmp/tok.model" --input "$tmp/role.jsonl" --output "$tmp/role.h5"
: > "$tmp/empty.txt"
check empty-corpus 1 "empty corpus" -- \
  "$rgemma" prepare text --tokenizer "$tmp/tok.model" --input "$tmp/empty.txt" --output "$tmp/empty.h5"
[ ! -e "$tmp/role.h5" ] && [ ! -e "$tmp/empty.h5" ] && ok "no-partial-output" || fail "no-partial-output"
no_leftovers no-temporary-files
check unknown-verb 2 "expected text, chat, preference or prompts after 'prepare', got 'txt'" -- "$rgemma" prepare txt
check missing-key 2 "missing required key 'tokenizer'" -- "$rgemma" prepare text --input "$tmp/docs.txt" --output "$tmp/x.h5"
check bad-overlong 2 "overlong: expected drop or truncate" -- \
  "$rgemma" prepare chat --tokenizer "$tmp/tok.model" --input "$tmp/chat.jsonl" --output "$tmp/x.h5" --overlong cut

# refuse NAME CODE PATTERN -- command...: exits CODE (so no crash, >= 128, and no hang: timeout gives 124)
# with exactly one line on stderr besides progress lines, and that line holds PATTERN.
refuse() {
  local name=$1 want=$2 pattern=$3; shift 4
  local code lines
  timeout 60 "$@" > "$tmp/refuse.out" 2> "$tmp/refuse.err"; code=$?
  lines=$(grep -v '^prepare [a-z]* \[' "$tmp/refuse.err")
  if [ "$code" != "$want" ]; then fail "$name: exit $code, expected $want"; cat "$tmp/refuse.err"; return; fi
  if [ "$(grep -c . <<<"$lines")" != 1 ]; then fail "$name: not one line on stderr"; cat "$tmp/refuse.err"; return; fi
  if ! grep -qF -- "$pattern" <<<"$lines"; then fail "$name: stderr lacks '$pattern'"; echo "$lines"; return; fi
  ok "$name"
}

# Malformed JSONL, one bad line after a good one: exit 1 naming file:2 and the field.
deep=$(head -c 100000 /dev/zero | tr '\0' '[')$(head -c 100000 /dev/zero | tr '\0' ']')
good='{"messages": [{"role": "user", "content": "hi"}, {"role": "model", "content": "the sea."}]}'
jsonl_case() {  # jsonl_case NAME LINE PATTERN
  printf '%s\n%s\n' "$good" "$2" > "$tmp/case.jsonl"
  refuse "jsonl-$1" 1 "$tmp/case.jsonl:2: $3" -- \
    "$rgemma" prepare chat --tokenizer "$tmp/tok.model" --input "$tmp/case.jsonl" --output "$tmp/case.h5"
}
jsonl_case not-json 'messages: hi' "malformed JSON"
jsonl_case deep-messages "{\"messages\": $deep}" "messages[0]: expected an object"
jsonl_case deep-content "{\"messages\": [{\"role\": \"user\", \"content\": $deep}]}" \
  "messages[0].content: expected a string, got an array of 1 values"
jsonl_case deep-line "$deep" "expected a JSON object per line, got an array of 1 values"
jsonl_case invalid-utf8 $'{"messages": [{"role": "user", "content": "caf\xe9"}]}' "malformed JSON"
jsonl_case nan '{"messages": NaN}' "malformed JSON"
jsonl_case long-string "{\"messages\": \"$(head -c 1000000 /dev/zero | tr '\0' a)" "malformed JSON"
jsonl_case role-newline '{"messages": [{"role": "user\nmodel", "content": "hi"}]}' "message 1: unknown role '\"user\\nmodel\"'"
jsonl_case content-null '{"messages": [{"role": "user", "content": null}]}' "messages[0].content: expected a string, got null"
jsonl_case out-of-order '{"messages": [{"role": "model", "content": "a"}, {"role": "user", "content": "b"}]}' \
  "message 1 (model): the conversation must start with a user turn"
printf 'the sea.\n\ncaf\xe9\n' > "$tmp/latin1.txt"
refuse text-not-utf8 1 "$tmp/latin1.txt:3: not UTF-8" -- \
  "$rgemma" prepare text --tokenizer "$tmp/tok.model" --input "$tmp/latin1.txt" --output "$tmp/case.h5"

# Paths that are not regular files: exit 2 before anything is opened (a FIFO must not block). Only the path
# is matched: `rgemma prepare` may refuse them before rg::data does, in its own words.
mkfifo "$tmp/pipe.jsonl"
refuse fifo-input 2 "$tmp/pipe.jsonl: " -- \
  "$rgemma" prepare chat --tokenizer "$tmp/tok.model" --input "$tmp/pipe.jsonl" --output "$tmp/case.h5"
refuse fifo-tokenizer 2 "$tmp/pipe.jsonl: " -- \
  "$rgemma" prepare chat --tokenizer "$tmp/pipe.jsonl" --input "$tmp/chat.jsonl" --output "$tmp/case.h5"
refuse device-input 2 "/dev/zero: " -- \
  "$rgemma" prepare text --tokenizer "$tmp/tok.model" --input /dev/zero --output "$tmp/case.h5"
refuse device-tokenizer 2 "/dev/zero: " -- \
  "$rgemma" prepare text --tokenizer /dev/zero --input "$tmp/docs.txt" --output "$tmp/case.h5"
refuse directory-tokenizer 2 "$tmp: " -- \
  "$rgemma" prepare text --tokenizer "$tmp" --input "$tmp/docs.txt" --output "$tmp/case.h5"
refuse device-output 2 "/dev/null: is a device, not a regular file" -- \
  "$rgemma" prepare chat --tokenizer "$tmp/tok.model" --input "$tmp/chat.jsonl" --output /dev/null
[ -c /dev/null ] && ok "dev-null-still-a-device" || fail "dev-null-still-a-device"
refuse missing-input 2 "$tmp/absent.jsonl: no such file" -- \
  "$rgemma" prepare chat --tokenizer "$tmp/tok.model" --input "$tmp/absent.jsonl" --output "$tmp/case.h5"
no_leftovers no-temporary-files-after-refusals

# Unusable datasets given to training: exit 2 with the file named (the model is the tiny preset).
train=(--config "$src/configs/model/tiny.ini" --model.vocab_size=300 --data.tokenizer="$tmp/tok.model"
       --data.seq_len=16 --data.micro_batch=1 --train.steps=1 --optim.warmup_steps=0 --train.out="$tmp/run")
echo "not hdf5" > "$tmp/text.txt.h5"
refuse train-not-hdf5 2 "$tmp/text.txt.h5: not an HDF5 file" -- "$rgemma" pretrain "${train[@]}" --data.train="$tmp/text.txt.h5"
refuse train-fifo 2 "$tmp/pipe.jsonl: " -- "$rgemma" pretrain "${train[@]}" --data.train="$tmp/pipe.jsonl"
refuse sft-preference 2 "preference dataset" -- "$rgemma" sft "${train[@]}" --data.train="$tmp/pref.h5"
# Bounded memory: a 24 MiB text read as ONE document (--document file) on two threads. Before streaming it
# took ~120 bytes of memory per input byte (~3 GiB here); now prepare holds a few 1 MiB blocks, the 256 KiB
# work items in flight and one 64 KiB segment per thread on top of the process's ~170-200 MiB of libraries
# (LibTorch), whatever the input size. prepare prints its own VmHWM (/proc/self/status) as "peak memory".
yes "the whale and the sea, call me Ishmael; years ago never mind how long precisely." | head -c 24M > "$tmp/big.txt"
"$rgemma" prepare text --tokenizer "$tmp/tok.model" --input "$tmp/big.txt" --threads 2 --output "$tmp/big.h5" \
  > "$tmp/out.txt" 2> "$tmp/err.txt"
peak=$(sed -n 's/.*peak memory \([0-9]*\) MiB.*/\1/p' "$tmp/err.txt")
[ -n "$peak" ] && [ "$peak" -lt 320 ] && grep -qF "train 1 documents" "$tmp/out.txt" \
  && ok "prepare-bounded-memory ($peak MiB for a 24 MiB document, bound 320)" \
  || { fail "prepare-bounded-memory: peak '$peak' MiB (bound 320)"; cat "$tmp/err.txt" "$tmp/out.txt"; }
rm -f "$tmp/big.txt" "$tmp/big.h5"

finish "prepare CLI"
