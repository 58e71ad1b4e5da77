#!/usr/bin/env bash
# `rgemma pretrain` / `rgemma sft` end to end under real mpirun, on a tokenizer and datasets made here:
#  - the same global batch split over 1, 2 and 4 ranks (ZeRO 1 and 2), over micro-batches, and with
#    activation recomputation follows the single-process loss trajectory (20 steps, 1e-6 relative);
#  - resuming from a checkpoint is bit-exact at the same world size and continues (same data, same
#    tokens) after resharding 2 -> 1 and 2 -> 4 ranks;
#  - SIGTERM writes a complete checkpoint and exits 0; a killed rank ends the job non-zero, never hangs;
#  - SFT trains on a chat set; wrong batch arithmetic and a wrong dataset kind exit 2 with the numbers;
#  - a run that cannot finish cleanly never ends "done": non-finite last steps or weights exit 1 without
#    final/ and keep the last good checkpoint; sizes that cannot work (validation split shorter than a row,
#    vocabulary mismatch, overflowing batch) exit 2 before any step; SFT rows without a supervised target
#    are counted and warned about, and a step with none at all exits 1.
# Usage: train_cli_test.sh RGEMMA SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
. "$(dirname "${BASH_SOURCE[0]}")/../tools/check_lib.sh"
cd "$tmp"
export RG_THREADS=1  # ranks share 2 cores

RANDOM=11
words=(the whale ship sea captain harpoon white deep sailor wind storm boat ocean night moon star rope deck)
for ((d = 0; d < 400; d++)); do line 9; line 6; echo; done > corpus.txt
"$rgemma" tokenizer train --input corpus.txt --vocab-size 300 --output tok.model > /dev/null 2>&1 || fail "tokenizer"
"$rgemma" prepare text --tokenizer tok.model --input corpus.txt --document block --validation 0.05 \
  --output corpus.h5 > /dev/null 2>&1 || fail "prepare text"
for ((c = 0; c < 60; c++)); do
  words_into prompt 5 .; words_into answer 7 .
  printf '{"messages": [{"role": "user", "content": "%s"}, {"role": "assistant", "content": "%s"}]}\n' "$prompt" "$answer"
done > chat.jsonl
"$rgemma" prepare chat --tokenizer tok.model --input chat.jsonl --output chat.h5 > /dev/null 2>&1 || fail "prepare chat"
stop_if_failed "fixtures could not be made"

common=(--config "$src/configs/model/tiny.ini" --model.vocab_size=300 --data.train=corpus.h5 --data.seq_len=48
        --data.tokenizer=tok.model --train.steps=20 --train.log_every=10 --checkpoint.every=10 --optim.lr=1e-3)
run() { local name=$1 np=$2; shift 2; ranks_run "$name" "$np" pretrain "${common[@]}" "$@"; }  # run NAME NP args...
losses() { grep -v val_loss "$1/metrics.jsonl" | grep -o '"loss":[^,}]*' | cut -d: -f2; }
# same_losses NAME A B TOL [SKIP]: the loss lines of B match A's (A's first SKIP lines skipped) within TOL.
same_losses() {
  local name=$1 a=$2 b=$3 tol=$4 skip=${5:-0}
  local worst
  worst=$(paste <(losses "$a" | tail -n +$((skip + 1))) <(losses "$b") | awk -v n=0 '
    { if ($2 == "") { print "missing"; exit } d = ($1 - $2) / $1; if (d < 0) d = -d; if (d > m) m = d; n++ }
    END { if (n == 0) print "missing"; else printf "%.3g\n", m }')
  if [ "$worst" = missing ] || awk -v w="$worst" -v t="$tol" 'BEGIN { exit !(w > t) }'; then
    fail "$name: loss trajectories differ (worst relative $worst, tolerance $tol)"
  else ok "$name (worst relative difference $worst)"; fi
}

# 1. One global batch of 4 rows, split every way.
run single 1 --data.micro_batch=4
[ "$(losses single | wc -l)" = 20 ] && ok "single: 20 steps logged" || fail "single: $(losses single | wc -l) steps logged"
awk 'NR == 1 { first = $1 } END { exit !($1 < first - 0.3) }' <(losses single) && ok "single: loss decreases" \
  || fail "single: loss did not decrease: $(losses single | head -1) -> $(losses single | tail -1)"
run np2-zero1 2 --data.micro_batch=2 --optim.zero_stage=1
run np2-zero2 2 --data.micro_batch=2 --optim.zero_stage=2
run np4-zero2 4 --data.micro_batch=1 --optim.zero_stage=2
run accum4 1 --data.micro_batch=1 --train.grad_accum=4
run recompute 1 --data.micro_batch=4 --train.recompute
# Float32 sums in another order (per rank, then across ranks) differ by ~1e-7 relative after 20 steps.
same_losses "2 ranks ZeRO-1 = 1 rank" single np2-zero1 1e-6
same_losses "2 ranks ZeRO-2 = 1 rank" single np2-zero2 1e-6
same_losses "4 ranks ZeRO-2 = 1 rank" single np4-zero2 1e-6
same_losses "4 micro-batches accumulated = 1 batch" single accum4 1e-6
same_losses "recomputed activations = stored" single recompute 0
grep -q '"val_loss"' single/metrics.jsonl && ok "validation loss logged" || fail "no val_loss in metrics"
[ -f single/final/config.json ] && [ -f single/final/model.safetensors ] && ok "final HF folder" || fail "no final/ folder"
[ -f single/config.ini ] && grep -q "seq_len = 48" single/config.ini && ok "effective config saved" || fail "config.ini"
"$rgemma" generate --model single/final --tokenizer tok.model --prompt "the whale" --max-new-tokens 5 > /dev/null 2>&1 \
  && ok "generate from the trained folder" || fail "generate from single/final"

# 2. Resume: the step-10 checkpoint, continued at the same and at other world sizes.
mkdir -p resume1/checkpoints resume2to1/checkpoints resume2to4/checkpoints
cp -r single/checkpoints/step-000010 resume1/checkpoints/
cp -r np2-zero1/checkpoints/step-000010 resume2to1/checkpoints/
cp -r np2-zero1/checkpoints/step-000010 resume2to4/checkpoints/
run resume1 1 --data.micro_batch=4
run resume2to1 1 --data.micro_batch=4
run resume2to4 4 --data.micro_batch=1
grep -q "resumed from resume1/checkpoints/step-000010 at step 10" resume1.log && ok "resume auto found step 10" \
  || fail "resume1 did not resume: $(grep -m1 resumed resume1.log)"
same_losses "resume at 1 rank is bit-exact" single resume1 0 10
grep -q "resharded from 2 to 4 ranks" resume2to4.log && ok "resharded 2 -> 4 announced" || fail "no reshard line"
same_losses "resume 2 -> 1 ranks continues" np2-zero1 resume2to1 1e-6 10
same_losses "resume 2 -> 4 ranks continues" np2-zero1 resume2to4 1e-6 10
t_resumed=$(grep -v val_loss resume2to4/metrics.jsonl | grep -o '"tokens":[0-9]*' | tail -1)
t_straight=$(grep -v val_loss np2-zero1/metrics.jsonl | grep -o '"tokens":[0-9]*' | tail -1)
[ -n "$t_resumed" ] && [ "$t_resumed" = "$t_straight" ] \
  && ok "resharded run consumed the same tokens" || fail "token counts differ after resharding"

# 3. SIGTERM: a complete checkpoint, exit 0, and resume continues from it.
"$rgemma" pretrain "${common[@]}" --data.micro_batch=4 --train.steps=100000 --checkpoint.every=0 --train.out=term \
  > term.log 2>&1 &
pid=$!
for ((i = 0; i < 300; i++)); do [ -s term/metrics.jsonl ] && [ "$(wc -l < term/metrics.jsonl)" -ge 3 ] && break; sleep 0.1; done
kill -TERM $pid; wait $pid; code=$?
ckpt=$(ls term/checkpoints 2>/dev/null | grep '^step-' | tail -1)
if [ $code = 0 ] && [ -n "$ckpt" ] && [ -f "term/checkpoints/$ckpt/COMPLETE" ] && grep -q "stopped by signal 15" term.log; then
  ok "SIGTERM saved $ckpt and exited 0"
else fail "SIGTERM: exit $code, checkpoint '$ckpt'"; tail -3 term.log; fi

# 4. A rank killed mid-run ends the job, non-zero, well within the timeout.
"${mpi[@]}" -np 2 "$rgemma" pretrain "${common[@]}" --data.micro_batch=2 --train.steps=100000 --checkpoint.every=0 \
  --train.out=killed > killed.log 2>&1 &
pid=$!
for ((i = 0; i < 300; i++)); do [ -s killed/metrics.jsonl ] && break; sleep 0.1; done
victim=$(pgrep -f "rgemma pretrain.*--train.out=killed" | grep -v "^$pid$" | tail -1)
[ -n "$victim" ] || fail "killed rank: no rank process found"
start=$(date +%s)
kill -KILL "$victim"
for ((i = 0; i < 600; i++)); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done  # at most 60 s
kill -KILL $pid 2>/dev/null
wait $pid; code=$?
elapsed=$(( $(date +%s) - start ))
[ -n "$victim" ] && [ $code != 0 ] && [ $elapsed -lt 60 ] && ok "killed rank ended the job (exit $code in ${elapsed}s)" \
  || fail "killed rank: exit $code after ${elapsed}s"

# 5. SFT, and the errors a user meets first.
"$rgemma" sft "${common[@]}" --data.train=chat.h5 --data.micro_batch=4 --train.steps=4 --optim.warmup_steps=1 --train.out=sft > sft.log 2>&1 \
  && [ "$(losses sft | wc -l)" = 4 ] && ok "sft trains on a chat set" || { fail "sft"; tail -3 sft.log; }
"$rgemma" sft --data.train=chat.h5 --data.tokenizer=tok.model --data.seq_len=48 --data.micro_batch=4 --train.steps=3 \
  --optim.warmup_steps=1 --train.init_from=single/final --train.out=sft-init > sft-init.log 2>&1 \
  && [ "$(losses sft-init | wc -l)" = 3 ] && ok "sft from the pretrained folder (--train.init_from)" \
  || { fail "sft --train.init_from"; tail -3 sft-init.log; }
"$rgemma" sft --config sft-init/config.ini --train.out=sft-replay > sft-replay.log 2>&1 \
  || { fail "replaying sft-init/config.ini"; tail -3 sft-replay.log; }
same_losses "replaying a run's config.ini reproduces it" sft-init sft-replay 0
out=$("$rgemma" pretrain "${common[@]}" --data.micro_batch=4 --train.global_batch=6 --train.out=bad 2>&1); code=$?
[ $code = 2 ] && grep -q "data.micro_batch (4) x train.grad_accum (1) x ranks (1) = 4" <<<"$out" \
  && ok "batch arithmetic error spelled out" || fail "global_batch: exit $code: $out"
out=$("$rgemma" pretrain "${common[@]}" --train.steps=5 --train.out=bad 2>&1); code=$?
[ $code = 2 ] && grep -q "optim.warmup_steps: expected 0 to train.steps (5), got 10" <<<"$out" \
  && ok "schedule error names both keys" || fail "warmup > steps: exit $code: $out"
out=$("$rgemma" pretrain "${common[@]}" --data.train=chat.h5 --train.out=bad 2>&1); code=$?
[ $code = 2 ] && grep -q "is a chat dataset; rgemma pretrain needs a text dataset" <<<"$out" \
  && ok "wrong dataset kind refused" || fail "dataset kind: exit $code: $out"
out=$("$rgemma" pretrain "${common[@]}" --model.vocab_size=400 --train.out=bad 2>&1); code=$?
[ $code = 2 ] && grep -q "400" <<<"$out" && grep -q "300" <<<"$out" && ok "vocab mismatch refused with both sizes" \
  || fail "vocab mismatch: exit $code: $out"

# 6b. How a run ends. RG_FAULT_INJECT (trainer/faults.h) provokes the non-finite paths deterministically.
short=(--data.micro_batch=2 --optim.warmup_steps=1 --checkpoint.keep_last=1)
ckpt_ok() { [ -f "$1/checkpoints/$2/COMPLETE" ]; }
out=$(RG_FAULT_INJECT=nan-loss-from=4 "$rgemma" pretrain "${common[@]}" "${short[@]}" --train.steps=5 \
      --checkpoint.every=3 --train.out=nanloss 2>&1); code=$?
[ $code = 1 ] && grep -q "the last 2 step(s) (4-5 of 5) were skipped" <<<"$out" && [ ! -e nanloss/final ] \
  && ckpt_ok nanloss step-000003 && [ ! -e nanloss/checkpoints/step-000005 ] && ! grep -q "^done" <<<"$out" \
  && ok "last steps skipped: exit 1, no final/, step-3 checkpoint kept" || fail "nan-loss end: exit $code: $out"
out=$(RG_FAULT_INJECT=nan-weights-at=5 "$rgemma" pretrain "${common[@]}" "${short[@]}" --train.steps=5 \
      --checkpoint.every=3 --train.out=nanfinal 2>&1); code=$?
[ $code = 1 ] && grep -q "weights after step 5 are not finite" <<<"$out" && [ ! -e nanfinal/final ] \
  && ckpt_ok nanfinal step-000003 && [ ! -e nanfinal/checkpoints/step-000005 ] \
  && ok "non-finite final weights: exit 1, no final/, step-3 checkpoint kept" || fail "nan weights at end: exit $code: $out"
# Weights poisoned after step 3: steps 4.. are skipped, and the step-4 checkpoint must not rotate step 2 out.
out=$(RG_FAULT_INJECT=nan-weights-at=3 "$rgemma" pretrain "${common[@]}" "${short[@]}" --train.steps=6 \
      --checkpoint.every=2 --train.max_nonfinite=10 --train.out=nanmid 2>&1); code=$?
[ $code = 1 ] && grep -q "weights after step 4 are not finite" <<<"$out" && grep -q "nanmid/checkpoints/step-000002, is kept" <<<"$out" \
  && ckpt_ok nanmid step-000002 && [ ! -e nanmid/checkpoints/step-000004 ] && [ ! -e nanmid/final ] \
  && ok "non-finite weights are never checkpointed; the good one stays" || fail "nan weights mid-run: exit $code: $out"

# A validation split shorter than one row is found at start (it used to fail the final evaluation).
"$rgemma" prepare text --tokenizer tok.model --input corpus.txt --document block --validation 0.003 \
  --output tinyval.h5 > /dev/null 2>&1 || fail "prepare tinyval.h5"
out=$("$rgemma" pretrain "${common[@]}" --data.train=tinyval.h5 --train.out=tinyval 2>&1); code=$?
[ $code = 2 ] && grep -Eq "tinyval.h5: the validation split has 1 sequences and [0-9]+ tokens, less than one row of data.seq_len = 48" <<<"$out" \
  && [ ! -e tinyval/metrics.jsonl ] && ok "short validation split refused before any step" || fail "short validation: exit $code: $out"
out=$("$rgemma" pretrain "${common[@]}" --data.micro_batch=4611686018427387904 --train.grad_accum=4 --train.out=bad 2>&1); code=$?
[ $code = 2 ] && grep -q "data.micro_batch" <<<"$out" && ok "overflowing global batch refused" || fail "batch overflow: exit $code: $out"

# SFT rows whose prompt fills data.seq_len: counted and warned about once; no supervised row at all fails.
# Every 4th conversation has a 40-word prompt (no model token within 24), the others a 2-word one (the model
# turn starts near token 12); with data.seed 0 no step of 4 rows draws only long ones.
# The lines are drawn in this shell, not in $(...): bash reseeds RANDOM in every subshell, which made the
# file (and so the draw) differ from run to run.
for ((c = 0; c < 40; c++)); do
  words_into prompt $(((c % 4) ? 2 : 40)) .; words_into answer 5 .
  printf '{"messages": [{"role": "user", "content": "%s"}, {"role": "assistant", "content": "%s"}]}\n' \
    "$prompt" "$answer"
done > mixed.jsonl
"$rgemma" prepare chat --tokenizer tok.model --input mixed.jsonl --output mixed.h5 > /dev/null 2>&1 || fail "prepare mixed"
out=$("$rgemma" sft "${common[@]}" --data.train=mixed.h5 --data.seq_len=24 --data.micro_batch=4 --train.steps=4 \
      --optim.warmup_steps=1 --train.out=sft-mixed 2>&1); code=$?
[ $code = 0 ] && [ "$(grep -c "rows have no supervised target" <<<"$out")" = 1 ] \
  && grep -Eq "^done: .*\([0-9]+ rows had no supervised target\)" <<<"$out" \
  && ok "unsupervised SFT rows warned once and counted" || fail "sft mixed: exit $code: $out"
out=$("$rgemma" sft "${common[@]}" --data.train=mixed.h5 --data.seq_len=8 --data.micro_batch=4 --train.steps=2 \
      --optim.warmup_steps=1 --train.out=sft-none 2>&1); code=$?
[ $code = 1 ] && grep -q "step 1: no target of the global batch (4 rows of 8 tokens) is supervised" <<<"$out" \
  && [ ! -e sft-none/final ] && ok "a step without any supervised target fails" || fail "sft none: exit $code: $out"

# Running out of memory names what needed how much. 2048 unpadded rows of 2^20 tokens are 2^31 positions per
# micro-batch (at the configs' limit): 3 int32 + 1 float arrays = 32 GiB, never granted under a 4 GB address space.
out=$(ulimit -v 4000000; "$rgemma" pretrain "${common[@]}" --train.device=cpu --data.pack=false --data.micro_batch=2048 \
      --data.seq_len=1048576 --train.out=oom 2>&1); code=$?
[ $code = 1 ] && grep -Eq "error: out of memory while training step 1 \(the run needs about [0-9.]+ GiB per rank.*batch and logits [0-9.]+ GiB\)" <<<"$out" \
  && [ "$(grep -c . <<<"$(grep -A100 'out of memory' <<<"$out")")" = 1 ] && ok "out of memory named with the sizes, on one line" \
  || fail "oom: exit $code: $(tail -3 <<<"$out")"

# 6. The weak-scaling benchmark launches itself at 1 and 2 ranks.
out=$(RG_MPIEXEC="${mpi[0]}" "$rgemma" bench train --config "$src/configs/model/tiny.ini" --batch 1 --seq 32 --repeats 1 \
      --ranks 1,2 2>&1); code=$?
[ $code = 0 ] && grep -q '"name":"weak_scaling"' <<<"$out" && grep -q '"ranks":2' <<<"$out" \
  && ok "bench train reports weak scaling" || fail "bench train: exit $code: $out"

finish training
