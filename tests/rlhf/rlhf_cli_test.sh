#!/usr/bin/env bash
# `rgemma reward`, `rgemma dpo` and `rgemma score` end to end on a tokenizer and preference sets made here.
# Pairs follow a known rule: the completion with more "whale" words is chosen. Checks:
#  - reward: held-out accuracy near 100% (per kind too); the same pairs with shuffled labels stay at chance;
#    2 ranks follow the single-process loss trajectory; resume continues the run exactly; the folder is a
#    reward model (num_labels, score.weight) that generate refuses and score uses;
#  - dpo: the step-1 loss is log 2 (policy = reference); held-out implicit-reward accuracy rises;
#  - exit 2 with the file named for a text dataset, a reward folder as the policy, a vocabulary mismatch,
#    a DPO key given to reward and a bad rlhf.loss.
# Usage: rlhf_cli_test.sh RGEMMA SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
. "$(dirname "${BASH_SOURCE[0]}")/../tools/check_lib.sh"
cd "$tmp"
export RG_THREADS=1  # ranks share 2 cores

RANDOM=7
words=(the ship sea captain harpoon white deep sailor wind storm boat ocean night moon star rope deck)
# completion_into VAR N: a completion of 6 ordinary words with N "whale" words put in at random places.
completion_into() {
  local -n _ci_into=$1; local _ci_s _ci_k _ci_at
  words_into _ci_s 6; local -a _ci_w=($_ci_s)
  for ((_ci_k = 0; _ci_k < $2; _ci_k++)); do
    _ci_at=$((RANDOM % (${#_ci_w[@]} + 1))); _ci_w=("${_ci_w[@]:0:_ci_at}" whale "${_ci_w[@]:_ci_at}")
  done
  _ci_into="${_ci_w[*]}"
}
# Every word is drawn in this shell with words_into (check_lib.sh), never in $(...): bash reseeds RANDOM in each
# subshell, so fixtures drawn there changed from run to run.
for ((d = 0; d < 300; d++)); do words_into x 8; words_into y 5; echo "$x whale $y."; done > corpus.txt
"$rgemma" tokenizer train --input corpus.txt --vocab-size 300 --output tok.model > /dev/null 2>&1 || fail "tokenizer"
: > pairs.jsonl; : > shuffled.jsonl
for ((p = 0; p < 400; p++)); do
  a=$((RANDOM % 3)) b=$((1 + RANDOM % 3)); chosen_n=$((a + b)); kind=$([ $b = 1 ] && echo close || echo far)
  words_into prompt 4; completion_into c $chosen_n; completion_into r $a
  printf '{"prompt": "%s", "chosen": "%s", "rejected": "%s", "kind": "%s"}\n' "$prompt" "$c" "$r" "$kind" >> pairs.jsonl
  if ((RANDOM % 2)); then c2=$r r2=$c; else c2=$c r2=$r; fi
  printf '{"prompt": "%s", "chosen": "%s", "rejected": "%s"}\n' "$prompt" "$c2" "$r2" >> shuffled.jsonl
done
for set in pairs shuffled; do
  "$rgemma" prepare preference --tokenizer tok.model --input $set.jsonl --validation 0.2 --output $set.h5 > /dev/null 2>&1 \
    || fail "prepare preference $set"
done
"$rgemma" prepare text --tokenizer tok.model --input corpus.txt --output corpus.h5 > /dev/null 2>&1 || fail "prepare text"
"$rgemma" init --config "$src/configs/model/tiny.ini" --model.vocab_size=300 --output sft > /dev/null 2>&1 || fail "init sft"
"$rgemma" init --config "$src/configs/model/tiny.ini" --output sft256 > /dev/null 2>&1 || fail "init sft256"
stop_if_failed "fixtures could not be made"

common=(--data.tokenizer=tok.model --data.seq_len=64 --train.init_from=sft --train.log_every=10
        --optim.warmup_steps=5 --optim.weight_decay=0 --train.eval_batches=100)
train() { local cmd=$1 name=$2 np=$3; shift 3; ranks_run "$name" "$np" $cmd "${common[@]}" "$@"; }  # train CMD NAME NP args...
field() { grep -v '"val_' "$1/metrics.jsonl" | grep -o "\"$2\":[^,}]*" | cut -d: -f2; }
val_field() { grep '"val_' "$1/metrics.jsonl" | tail -1 | grep -o "\"$2\":[^,}]*" | cut -d: -f2; }
in_range() { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v != "" && v >= lo && v <= hi) }'; }

# 1. Reward model: the rule is learnt; shuffled labels are not.
train reward rm 1 --data.train=pairs.h5 --data.micro_batch=8 --train.steps=80 --optim.lr=2e-3
acc=$(val_field rm val_accuracy)
# 80 held-out pairs: a model that learnt the rule scores ~1; 0.9 leaves room for a few near-ties.
in_range "$acc" 0.9 1 && ok "reward: held-out accuracy $acc" || fail "reward: held-out accuracy $acc < 0.9"
for kind in close far; do
  a=$(val_field rm "val_accuracy/$kind")
  in_range "$a" 0.8 1 && ok "reward: accuracy on kind $kind $a" || fail "reward: accuracy on kind $kind '$a'"
done
train reward rm-shuffled 1 --data.train=shuffled.h5 --data.micro_batch=8 --train.steps=80 --optim.lr=2e-3
acc=$(val_field rm-shuffled val_accuracy)
# Chance is 0.5; with 80 held-out pairs the standard error is 0.056, so [0.3, 0.7] is ~3.6 sigma wide.
in_range "$acc" 0.3 0.7 && ok "reward, shuffled labels: held-out accuracy $acc (chance)" \
  || fail "reward, shuffled labels: held-out accuracy $acc is not chance"
grep -q '"num_labels": 1' rm/final/config.json && grep -q '"reward_std"' rm/final/config.json \
  && ok "reward folder: config.json has num_labels and reward_std" || fail "reward folder config.json"
grep -q 'score.weight' rm/final/model.safetensors && ok "reward folder: score.weight" || fail "reward folder lacks score.weight"
check "generate refuses a reward model" 2 "is a reward model" -- \
  "$rgemma" generate --model rm/final --prompt-ids 2,5 --max-new-tokens 2

# 2. Data parallel and resume: 2 ranks x 2 pairs = 1 rank x 4 pairs; stopping at step 5 and resuming.
train reward dp1 1 --data.train=pairs.h5 --data.micro_batch=4 --train.steps=10 --optim.lr=2e-3 --checkpoint.every=5
if [ ${#mpi[@]} = 0 ]; then  # a build without MPI passes no launcher: the 2-rank comparison cannot run
  echo "skip reward: 2 ranks = 1 rank (no MPIEXEC given)"
  cp -r dp1 dp2
else
  train reward dp2 2 --data.train=pairs.h5 --data.micro_batch=2 --train.steps=10 --optim.lr=2e-3
fi
# Rows are padded to each micro-batch's longest pair, so the two runs multiply matrices of other shapes:
# float32 sums in another order, ~1e-7 relative per step, compounding over 10 AdamW steps; 1e-4 is far
# below what a wrong pair split or normalisation does (O(1e-2) from step 1).
worst=$(paste <(field dp1 loss) <(field dp2 loss) | awk '{ d = ($1 - $2) / $1; if (d < 0) d = -d; if (d > m) m = d; n++ }
  END { if (n != 10) print "missing"; else printf "%.3g\n", m }')
if [ "$worst" != missing ] && awk -v w="$worst" 'BEGIN { exit !(w <= 1e-4) }'; then ok "reward: 2 ranks = 1 rank (worst relative $worst)"
else fail "reward: 2 ranks differ from 1 rank ($worst)"; fi
mkdir -p resumed/checkpoints && cp -r dp1/checkpoints/step-000005 resumed/checkpoints/
train reward resumed 1 --data.train=pairs.h5 --data.micro_batch=4 --train.steps=10 --optim.lr=2e-3
[ "$(field dp1 loss | tail -5)" = "$(field resumed loss)" ] && ok "reward: resume continues exactly" \
  || fail "reward: resumed losses differ: $(field resumed loss | tr '\n' ' ') vs $(field dp1 loss | tail -5 | tr '\n' ' ')"

# Per-pair margins: prepare stores the optional field (unit tests check the values and the loss); a margin
# beyond float64 is a malformed line, exit 1 like any other, naming file:line.
head -3 pairs.jsonl > margin.jsonl
sed -n 4p pairs.jsonl | sed 's/}$/, "margin": 1e999}/' >> margin.jsonl
check "prepare refuses an out-of-range margin with file:line" 1 "margin.jsonl:4: malformed JSON: number overflow" -- \
  "$rgemma" prepare preference --tokenizer tok.model --input margin.jsonl --output margin.h5
head -3 pairs.jsonl | sed 's/}$/, "margin": 2.5}/' > margin.jsonl
check "prepare takes finite margins" 0 "3 pairs" -- \
  "$rgemma" prepare preference --tokenizer tok.model --input margin.jsonl --validation 0 --output margin.h5

# 3. Score with the reward model and with a policy.
head -40 pairs.jsonl > score-in.jsonl
check "score with the reward model" 0 "chosen scored higher in" -- \
  "$rgemma" score --model rm/final --tokenizer tok.model --input score-in.jsonl --output scored.jsonl
n=$(grep -c '"reward_chosen"' scored.jsonl); [ "$n" = 40 ] && ok "score: 40 lines with reward_chosen" || fail "score: $n lines"
agree=$(grep -o 'higher in [0-9]*' <("$rgemma" score --model rm/final --tokenizer tok.model --input score-in.jsonl 2>&1 >/dev/null) | grep -o '[0-9]*$')
[ "${agree:-0}" -ge 34 ] && ok "score: reward model prefers chosen in $agree of 40" || fail "score: only '$agree' of 40"
check "score with a policy gives log-probabilities" 0 '"logp_chosen"' -- \
  "$rgemma" score --model sft --tokenizer tok.model --input score-in.jsonl

# 4. DPO.
train dpo dpo 1 --data.train=pairs.h5 --data.micro_batch=8 --train.steps=40 --optim.lr=1e-3 --rlhf.beta=0.1
first=$(field dpo loss | head -1)
# Policy = reference at step 1: h is the difference of two float32 evaluations of the same log-probs
# (~1e-6 of |logp| ~ 50), so the loss is log 2 = 0.693147 within 1e-5.
in_range "$first" 0.693137 0.693157 && ok "dpo: step-1 loss $first = log 2" || fail "dpo: step-1 loss $first != log 2"
acc=$(val_field dpo val_rewards/accuracy)
in_range "$acc" 0.8 1 && ok "dpo: held-out reward accuracy $acc" || fail "dpo: held-out reward accuracy '$acc' < 0.8"
grep -q '"rewards/margin"' dpo/metrics.jsonl && grep -q '"logps/chosen"' dpo/metrics.jsonl \
  && ok "dpo: rewards and logps logged" || fail "dpo: metrics lack rewards/margin or logps/chosen"
[ -f dpo/final/model.safetensors ] && "$rgemma" generate --model dpo/final --prompt-ids 2,5 --max-new-tokens 2 > /dev/null 2>&1 \
  && ok "dpo: the final policy samples" || fail "dpo: final policy"
# The reference pass prints progress (pairs done / total, pairs/s, eta) per tenth, ending at the total.
total=$(grep -o 'reference log-probabilities: [0-9]* pairs in' dpo.log | grep -o '[0-9][0-9]*')
lines=$(grep -c "^reference log-probabilities: [0-9]*/${total:-x} pairs | [0-9.]* pairs/s | eta [0-9]" dpo.log)
grep -q "^reference log-probabilities: ${total:-x}/${total:-x} pairs |" dpo.log && [ "$lines" -ge 5 ] \
  && ok "dpo: reference pass progress, $lines lines up to $total/$total pairs" \
  || fail "dpo: reference pass progress ($lines lines, total '$total')"
train dpo ipo 1 --data.train=pairs.h5 --data.micro_batch=8 --train.steps=3 --optim.warmup_steps=1 --optim.lr=1e-3 --rlhf.loss=ipo
# IPO at h = 0: (0 - 1/(2 beta))^2 = 25 for beta 0.1.
in_range "$(field ipo loss | head -1)" 24.999 25.001 && ok "ipo: step-1 loss 25" || fail "ipo: step-1 loss $(field ipo loss | head -1)"

# 5. Errors a user meets first.
check "reward on a text dataset" 2 "corpus.h5 is a text dataset; rgemma reward needs a preference dataset" -- \
  "$rgemma" reward "${common[@]}" --data.train=corpus.h5 --train.out=e1
check "dpo from a reward model folder" 2 "rm/final: is a reward model" -- \
  "$rgemma" dpo "${common[@]}" --data.train=pairs.h5 --train.init_from=rm/final --train.out=e2
check "reward from a reward model folder" 2 "rm/final: is a reward model" -- \
  "$rgemma" reward "${common[@]}" --data.train=pairs.h5 --train.init_from=rm/final --train.out=e3
check_re "vocabulary mismatch names the dataset and the model" 2 "pairs.h5: dataset vocab_size 300 differs .*the model is train.init_from sft256" -- \
  "$rgemma" reward "${common[@]}" --data.train=pairs.h5 --train.init_from=sft256 --train.out=e4
check "a DPO key given to reward" 2 "rlhf.beta" -- \
  "$rgemma" reward "${common[@]}" --data.train=pairs.h5 --rlhf.beta=0.2 --train.out=e5
check "bad rlhf.loss" 2 "rlhf.loss: expected sigmoid or ipo" -- \
  "$rgemma" dpo "${common[@]}" --data.train=pairs.h5 --rlhf.loss=hinge --train.out=e6
check "label smoothing with ipo" 2 "rlhf.label_smoothing" -- \
  "$rgemma" dpo "${common[@]}" --data.train=pairs.h5 --rlhf.loss=ipo --rlhf.label_smoothing=0.1 --train.out=e7

finish "RLHF command"
