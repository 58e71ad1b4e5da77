#!/usr/bin/env bash
# Malformed checkpoints, table-driven: a real checkpoint from a tiny `rgemma pretrain` run, then one thing
# corrupted per case (truncated and deleted files, nested JSON, zero sizes, float / huge / negative steps,
# wrong types, missing keys, another model's shapes, garbage), and `rgemma pretrain` resuming from it must
# exit 2 (1 for I/O) with one line on stderr naming the file; never a crash (exit >= 128), never "done",
# and neither the original nor the corrupted copy is modified.
# Usage: malformed_checkpoint_test.sh RGEMMA SOURCE_DIR
. "$(dirname "${BASH_SOURCE[0]}")/../tools/check_lib.sh"
cd "$tmp"
export RG_THREADS=1

RANDOM=7
words=(the whale ship sea captain harpoon white deep sailor wind storm boat ocean night moon star rope deck)
for ((d = 0; d < 200; d++)); do line 9; line 6; echo; done > corpus.txt
"$rgemma" tokenizer train --input corpus.txt --vocab-size 300 --output tok.model > /dev/null 2>&1 &&
  "$rgemma" prepare text --tokenizer tok.model --input corpus.txt --document block --output corpus.h5 > /dev/null 2>&1 ||
  { echo "FAIL fixtures could not be made"; exit 1; }

# Checkpoints at steps 1 and 2 of a 2-step run; the cases resume from copies of them.
common=(--config "$src/configs/model/tiny.ini" --model.vocab_size=300 --data.train=corpus.h5 --data.seq_len=32
        --data.micro_batch=2 --train.steps=2 --optim.warmup_steps=1 --checkpoint.every=1 --train.eval_batches=1)
"$rgemma" pretrain "${common[@]}" --train.out=good > good.log 2>&1 || { echo "FAIL the tiny run"; tail -5 good.log; exit 1; }
for s in 1 2; do
  [ -f "good/checkpoints/step-00000$s/COMPLETE" ] || { echo "FAIL no checkpoint at step $s"; ls -R good; exit 1; }
done
tree_sum() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum); }
good_sum=$(tree_sum good/checkpoints)

# The marker's sizes as the files now are: the corruption then looks like one made before the save, and
# the content checks must find it on their own (not the size check).
remark() {
  local f size
  for f in $(cd "$1" && ls); do
    [ "$f" = COMPLETE ] && continue
    size=$(stat -c %s "$1/$f")
    sed -i -E "s|(\"$f\": )[0-9]+|\1$size|" "$1/COMPLETE"
  done
}
# An array nested 300,000 deep: what recurses once per level (dump(), a json copy) overflows 8 MiB of stack.
deep=$(printf '%*s' 300000 '' | tr ' ' '[')$(printf '%*s' 300000 '' | tr ' ' ']')
# set_in FILE FROM TO: replaces the first FROM with TO in bash (no argument-length limit for $deep).
set_in() { local text; text=$(<"$1"); [[ $text == *"$2"* ]] || { echo "  (set_in: '$2' not in $1)"; return 1; }
           printf '%s\n' "${text/"$2"/"$3"}" > "$1"; }

# case NAME CODE FILE CORRUPTION [-- EXTRA PRETRAIN ARGS...]: CORRUPTION runs in the copied checkpoint
# directory (step 1 unless FROM_STEP=2 is set); the run must exit CODE naming FILE on one stderr line.
case_() {
  local name=$1 want=$2 file=$3 corruption=$4; shift 4
  [ "${1:-}" = -- ] && shift
  local dir="cases/$name" step="step-00000${FROM_STEP:-1}"
  mkdir -p "$dir/checkpoints" && cp -r "good/checkpoints/$step" "$dir/checkpoints/"
  if ! (cd "$dir/checkpoints/$step" && eval "$corruption"); then fail "$name: corruption failed"; return; fi
  local before; before=$(tree_sum "$dir/checkpoints")
  "$rgemma" pretrain "${common[@]}" --train.out="$dir" "$@" > "$dir.out" 2> "$dir.err"
  local code=$? problems=()
  [ "$code" = "$want" ] || problems+=("exit $code, expected $want")
  [ "$code" -lt 128 ] || problems+=("crashed")
  ! grep -q '^done' "$dir.out" || problems+=("printed done")
  [ "$(wc -l < "$dir.err")" = 1 ] || problems+=("$(wc -l < "$dir.err") stderr lines, expected 1")
  grep -qF -- "$file" "$dir.err" || problems+=("message does not name $file")
  [ "$(tree_sum "$dir/checkpoints")" = "$before" ] || problems+=("the checkpoint was modified")
  if [ ${#problems[@]} = 0 ]; then ok "$name: $(head -c 200 "$dir.err")"
  else fail "$name: ${problems[*]}"; head -c 600 "$dir.err"; echo; fi
}

# The pristine copy resumes (the table's baseline: only the corruption makes a case fail).
mkdir -p cases/pristine/checkpoints && cp -r good/checkpoints/step-000001 cases/pristine/checkpoints/
check "pristine copy resumes and finishes" 0 "resumed from cases/pristine/checkpoints/step-000001 at step 1" -- \
  "$rgemma" pretrain "${common[@]}" --train.out=cases/pristine

shard=optim-rank0-of-1.pt
# Files that are not what COMPLETE recorded: found from the marker before anything is read.
case_ truncated-weights 2 weights.safetensors 'truncate -s -1 weights.safetensors'
case_ truncated-shard 2 $shard "truncate -s 100 $shard"
case_ truncated-state 2 trainer_state.json 'truncate -s 10 trainer_state.json'
case_ deleted-rng 2 rng-rank0.pt 'rm rng-rank0.pt'
case_ deleted-layout 2 optim-layout.json 'rm optim-layout.json'
case_ marker-unlisted-layout 2 COMPLETE 'sed -i "/optim-layout.json/d" COMPLETE'
case_ marker-without-file-list 2 COMPLETE 'echo "{\"step\": 1, \"world_size\": 1}" > COMPLETE'
case_ marker-path-escapes 2 COMPLETE 'sed -i "s|\"rng-rank0.pt\"|\"../../rng-rank0.pt\"|" COMPLETE'
case_ marker-garbage 2 COMPLETE 'echo "not json {" > COMPLETE'
case_ marker-world-size-0 2 COMPLETE 'sed -i "s/\"world_size\": 1/\"world_size\": 0/" COMPLETE'
case_ marker-step-float 2 COMPLETE 'sed -i "s/\"step\": 1,/\"step\": 1.0,/" COMPLETE'
# Same size, wrong content.
case_ garbage-shard 2 $shard "yes | head -c \$(stat -c %s $shard) > $shard"
case_ garbage-weights 2 weights.safetensors 'yes | head -c $(stat -c %s weights.safetensors) > weights.safetensors'
case_ garbage-rng 2 rng-rank0.pt 'yes | head -c $(stat -c %s rng-rank0.pt) > rng-rank0.pt'
# optim-layout.json fields.
case_ shard-numel-0 2 optim-layout.json 'sed -i -E "s/\"shard_numel\": [0-9]+/\"shard_numel\": 0/" optim-layout.json; remark .'
case_ layout-world-size-0 2 optim-layout.json 'sed -i "s/\"world_size\": 1/\"world_size\": 0/" optim-layout.json; remark .'
case_ layout-step-mismatch 2 optim-layout.json 'sed -i -E "s/\"step\": [0-9]+/\"step\": 5/" optim-layout.json; remark .'
case_ layout-total-string 2 optim-layout.json 'sed -i -E "s/\"total_numel\": ([0-9]+)/\"total_numel\": \"\1\"/" optim-layout.json; remark .'
case_ layout-nested-json 2 optim-layout.json 'set_in optim-layout.json "\"name\": \"" "\"junk\": $deep, \"name\": \"X" && remark .'
case_ layout-garbage 2 optim-layout.json 'echo "{\"format\": " > optim-layout.json; remark .'
# trainer_state.json fields.
case_ step-float-huge 2 trainer_state.json 'sed -i "s/\"step\": 1,/\"step\": 1e15,/" trainer_state.json; remark .'
case_ step-float 2 trainer_state.json 'sed -i "s/\"step\": 1,/\"step\": 1.0,/" trainer_state.json; remark .'
case_ step-negative 2 trainer_state.json 'sed -i "s/\"step\": 1,/\"step\": -1,/" trainer_state.json; remark .'
case_ step-huge 2 trainer_state.json 'sed -i "s/\"step\": 1,/\"step\": 1000000000000000,/" trainer_state.json; remark .'
case_ tokens-string 2 trainer_state.json 'sed -i -E "s/\"tokens\": [0-9]+/\"tokens\": \"many\"/" trainer_state.json; remark .'
case_ skipped-missing 2 trainer_state.json 'sed -i "/\"skipped_steps\"/d" trainer_state.json; remark .'
case_ cursor-behind-step 2 trainer_state.json 'sed -i -E "s/\"cursor\": [0-9]+/\"cursor\": 0/" trainer_state.json; remark .'
case_ state-world-size-0 2 trainer_state.json 'sed -i "s/\"world_size\": 1/\"world_size\": 0/" trainer_state.json; remark .'
case_ state-nested-json 2 trainer_state.json 'set_in trainer_state.json "\"schedule\": {" "\"schedule\": {\"deep\": $deep," && remark .'
case_ state-garbage 2 trainer_state.json 'echo "{\"step\": 1," > trainer_state.json; remark .'
# The run's settings against a good checkpoint: another model's shapes, a step beyond train.steps.
case_ other-model-shapes 2 weights.safetensors ':' -- --model.mlp_hidden=128
FROM_STEP=2 case_ step-beyond-train-steps 2 "beyond train.steps (1)" ':' -- --train.steps=1

# train.comm: NCCL asked for on a machine without it (not built, or training on the CPU) and a bad name are
# configuration errors naming the key, before any work.
check_re "train.comm = nccl refused here" 2 "train.comm: communicator 'nccl' (was requested but|moves CUDA tensors only)" -- \
  "$rgemma" pretrain "${common[@]}" --train.device=cpu --train.comm=nccl --train.out=comm-nccl
check "train.comm = bogus refused" 2 "train.comm: expected auto, single, mpi or nccl, got 'gloo'" -- \
  "$rgemma" pretrain "${common[@]}" --train.comm=gloo --train.out=comm-bogus

[ "$(tree_sum good/checkpoints)" = "$good_sum" ] && ok "the original checkpoints are unchanged" ||
  fail "the original checkpoints were modified"
finish malformed-checkpoint
