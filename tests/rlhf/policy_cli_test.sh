#!/usr/bin/env bash
# `rgemma grpo`, `rgemma rloo` and `rgemma ppo` end to end on a tokenizer, prompt sets and a reward model made
# here. The verifiable task: every prompt's answer is "whale", a word the untrained model already says now and
# then (a 300-piece vocabulary, 8 new tokens: a few percent of samples), so the reward has signal from step 1.
# Checks:
#  - grpo: the held-out success rate rises well above its start; rloo and sequence aggregation run;
#  - grpo and ppo: 2 ranks follow the single-process trajectory (same prompts and seeds, so the same rollouts);
#  - grpo and ppo (adaptive KL): a run killed with SIGKILL and rerun continues bit-exactly (metrics equal);
#  - ppo with a reward model: runs, logs value loss / explained variance, writes the policy and value folders;
#  - exit 2 naming the file for a prompt set without answers (verifiable reward), a reward model with another
#    vocabulary, a preference set given as prompts, and a GRPO key given to ppo.
# Usage: policy_cli_test.sh RGEMMA SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
. "$(dirname "${BASH_SOURCE[0]}")/../tools/check_lib.sh"
cd "$tmp"
export RG_THREADS=1  # ranks share 2 cores

RANDOM=11
words=(the ship sea captain harpoon white deep sailor wind storm boat ocean night moon star rope deck)
# Every word is drawn in this shell with words_into (check_lib.sh), never in $(...): bash reseeds RANDOM in each
# subshell, so fixtures drawn there changed from run to run.
for ((d = 0; d < 300; d++)); do words_into x 8; words_into y 5; echo "$x whale $y."; done > corpus.txt
"$rgemma" tokenizer train --input corpus.txt --vocab-size 300 --output tok.model > /dev/null 2>&1 || fail "tokenizer"
: > prompts.jsonl; : > plain.jsonl; : > pairs.jsonl
for ((p = 0; p < 200; p++)); do
  words_into q 4; q="name the animal: $q"
  printf '{"prompt": "%s", "answer": "whale"}\n' "$q" >> prompts.jsonl
  printf '{"prompt": "%s"}\n' "$q" >> plain.jsonl
  words_into c 3; words_into r 4
  printf '{"prompt": "%s", "chosen": "%s whale", "rejected": "%s"}\n' "$q" "$c" "$r" >> pairs.jsonl
done
"$rgemma" prepare prompts --tokenizer tok.model --input prompts.jsonl --validation 0.2 --output prompts.h5 > /dev/null 2>&1 || fail "prepare prompts"
"$rgemma" prepare prompts --tokenizer tok.model --input plain.jsonl --validation 0.2 --output plain.h5 > /dev/null 2>&1 || fail "prepare plain prompts"
"$rgemma" prepare preference --tokenizer tok.model --input pairs.jsonl --validation 0.1 --output pairs.h5 > /dev/null 2>&1 || fail "prepare preference"
# The "SFT" policy: the tiny model pretrained briefly on the corpus, where "whale" is one word in 15, so it
# says the answer in a fair share of samples (the task is partly solved at the start).
"$rgemma" prepare text --tokenizer tok.model --input corpus.txt --output corpus.h5 > /dev/null 2>&1 || fail "prepare text"
"$rgemma" pretrain --config "$src/configs/model/tiny.ini" --model.vocab_size=300 --data.train=corpus.h5 --data.seq_len=32 \
  --data.micro_batch=8 --train.steps=40 --optim.lr=3e-3 --optim.warmup_steps=5 --train.out=pre --checkpoint.every=0 \
  > pre.log 2>&1 && cp -r pre/final sft || fail "pretrain sft"
"$rgemma" init --config "$src/configs/model/tiny.ini" --output sft256 > /dev/null 2>&1 || fail "init sft256"
"$rgemma" reward --data.train=pairs.h5 --data.tokenizer=tok.model --data.seq_len=64 --train.init_from=sft --train.out=rm \
  --data.micro_batch=8 --train.steps=20 --optim.lr=2e-3 --optim.warmup_steps=2 > rm.log 2>&1 || fail "reward model"
stop_if_failed "fixtures could not be made"

common=(--data.tokenizer=tok.model --data.seq_len=64 --train.init_from=sft --train.log_every=5 --rlhf.max_new_tokens=8)
verifiable=(--data.train=prompts.h5 --rlhf.verifiable_weight=1)
run() { local cmd=$1 name=$2 np=$3; shift 3; ranks_run "$name" "$np" $cmd "${common[@]}" "$@"; }  # run CMD NAME NP args...
field() { grep -v '"val_' "$1/metrics.jsonl" | grep -o "\"$2\":[^,}]*" | cut -d: -f2; }
val_fields() { grep '"val_' "$1/metrics.jsonl" | grep -o "\"$2\":[^,}]*" | cut -d: -f2; }
# metrics.jsonl without the wall-clock fields (time/..., rollout_tokens_per_s): what must repeat exactly.
stable() { sed -E 's/"(time\/[a-z_]+|rollout_tokens_per_s)":[^,}]*,?//g' "$1/metrics.jsonl"; }

# 1. GRPO raises the held-out success rate (32 held-out prompts, one sample each, fixed seeds).
run grpo learn 1 "${verifiable[@]}" --data.micro_batch=4 --train.steps=30 --optim.lr=3e-3 --rlhf.group=8 \
  --train.eval_every=1000 --rlhf.eval_prompts=32 --checkpoint.every=0
before=$(val_fields learn val_success | head -1) after=$(val_fields learn val_success | tail -1)
# Start: a few percent (the chance of the word in 8 tokens). 32 prompts give a standard error of at most 0.09,
# so a rise of 0.3 is > 3 sigma of noise; a policy that learnt to say the word is near 1.
awk -v a="$before" -v b="$after" 'BEGIN { exit !(a != "" && b != "" && b >= a + 0.3) }' \
  && ok "grpo: held-out success $before -> $after" || fail "grpo: held-out success $before -> $after (no rise of 0.3)"
for key in score reward kl entropy response_length stopped clipfrac approx_kl group_reward_std zero_std_groups \
           time/rollout_s time/scoring_s time/reference_s time/training_s rollout_tokens_per_s success; do
  grep -q "\"$key\"" learn/metrics.jsonl || fail "grpo: metrics lack $key"
done
ok "grpo: metrics keys present"
[ -f learn/final/model.safetensors ] && "$rgemma" generate --model learn/final --prompt-ids 2,5 --max-new-tokens 2 > /dev/null 2>&1 \
  && ok "grpo: the final policy samples" || fail "grpo: final policy"
run rloo rloo 1 "${verifiable[@]}" --data.micro_batch=2 --train.steps=2 --rlhf.group=4 --rlhf.loss_aggregation=sequence
grep -q 'estimator = rloo' rloo/config.ini && ok "rloo: estimator rloo" || fail "rloo: config.ini lacks estimator = rloo"

# 2. Data parallel: 2 ranks x 2 prompts = 1 rank x 4 prompts (one minibatch, so every update sees the same rows).
dp_args=("${verifiable[@]}" --train.steps=4 --optim.lr=3e-3 --rlhf.epochs=2 --rlhf.eval_prompts=0)
run grpo gdp1 1 "${dp_args[@]}" --rlhf.group=4 --data.micro_batch=4
run ppo pdp1 1 "${dp_args[@]}" --data.micro_batch=8
if [ ${#mpi[@]} = 0 ]; then
  echo "skip: 2 ranks = 1 rank (no MPIEXEC given)"
else
  run grpo gdp2 2 "${dp_args[@]}" --rlhf.group=4 --data.micro_batch=2
  run ppo pdp2 2 "${dp_args[@]}" --data.micro_batch=4
  for pair in "gdp1 gdp2" "pdp1 pdp2"; do
    set -- $pair
    # Same prompts and seeds: the same completions, so scores agree exactly (the rare sample that float32
    # noise in another batch shape could flip would show here). The losses are sums in another order
    # (~1e-7 relative per step) compounding over 8 AdamW steps: 1e-3 relative on losses is far below what a
    # wrong split or normaliser does (a factor of 2 from step 1).
    [ "$(field $1 score)" = "$(field $2 score)" ] && ok "$1 vs $2: same scores (same rollouts)" || fail "$1 vs $2: scores differ"
    worst=$(paste <(field $1 policy_loss) <(field $2 policy_loss) | awk '{ d = $1 - $2; if (d < 0) d = -d; s = ($1 < 0 ? -$1 : $1) + 1e-3;
      if (d / s > m) m = d / s; n++ } END { if (n != 4) print "missing"; else printf "%.3g\n", m }')
    if [ "$worst" != missing ] && awk -v w="$worst" 'BEGIN { exit !(w <= 1e-3) }'; then ok "$1 vs $2: 2 ranks = 1 rank (worst $worst)"
    else fail "$1 vs $2: 2 ranks differ from 1 rank ($worst)"; fi
  done
fi

# 3. Resume after SIGKILL continues bit-exactly (same world size). PPO with an adaptive KL coefficient, so the
#    controller's value must come back too.
for cmd in grpo ppo; do
  args=("${verifiable[@]}" --data.micro_batch=4 --train.steps=6 --optim.lr=3e-3 --rlhf.eval_prompts=0 --checkpoint.every=2)
  if [ $cmd = ppo ]; then args+=(--rlhf.kl_target=0.5 --rlhf.kl_horizon=100); else args+=(--rlhf.group=4); fi
  run $cmd ${cmd}-whole 1 "${args[@]}"
  "$rgemma" $cmd "${common[@]}" --train.out=${cmd}-killed "${args[@]}" > ${cmd}-killed.log 2>&1 &
  pid=$!
  for ((i = 0; i < 600; i++)); do [ -e ${cmd}-killed/checkpoints/step-000002/COMPLETE ] && break; sleep 0.1; done
  kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  run $cmd ${cmd}-killed 1 "${args[@]}"
  grep -q "resumed from" ${cmd}-killed.log && ok "$cmd: resumed after SIGKILL" || fail "$cmd: the rerun did not resume"
  [ "$(stable ${cmd}-whole)" = "$(stable ${cmd}-killed)" ] && ok "$cmd: resumed run = uninterrupted run (metrics equal)" \
    || { fail "$cmd: resumed run differs"; diff <(stable ${cmd}-whole) <(stable ${cmd}-killed) | head -6; }
done
kl_coefs=$(field ppo-whole kl_coef | sort -u | wc -l)
[ "$kl_coefs" -gt 1 ] && ok "ppo: the adaptive KL coefficient moves" || fail "ppo: kl_coef never changed"

# 4. PPO with a reward model (value model from it, normalised scores).
run ppo ppo-rm 1 --data.train=plain.h5 --rlhf.reward_model=rm/final --data.micro_batch=4 --train.steps=3 --rlhf.epochs=2 --rlhf.minibatches=2
for key in value_loss vf_clipfrac explained_variance kl_coef; do grep -q "\"$key\"" ppo-rm/metrics.jsonl || fail "ppo: metrics lack $key"; done
[ -f ppo-rm/final/model.safetensors ] && grep -q '"num_labels"' ppo-rm/final-value/config.json \
  && ok "ppo: policy and value folders written" || fail "ppo: final folders"

# 5. Errors.
check "verifiable reward on prompts without answers" 2 "plain.h5 has no \`answer\` field" -- \
  "$rgemma" grpo "${common[@]}" --data.train=plain.h5 --rlhf.verifiable_weight=1 --train.out=e1
check_re "reward model with another vocabulary" 2 "rlhf.reward_model: rm/final has a vocabulary of 300 tokens.*has 256" -- \
  "$rgemma" grpo "${common[@]}" --data.train=prompts.h5 --train.init_from=sft256 --rlhf.reward_model=rm/final --train.out=e2
check "preference set as prompts" 2 "pairs.h5 is a preference dataset; rgemma grpo needs a prompt set" -- \
  "$rgemma" grpo "${common[@]}" --data.train=pairs.h5 --rlhf.verifiable_weight=1 --train.out=e3
check "a GRPO key given to ppo" 2 "rlhf.group" -- \
  "$rgemma" ppo "${common[@]}" "${verifiable[@]}" --rlhf.group=4 --train.out=e4
check "no reward at all" 2 "rlhf.reward_model: no reward" -- \
  "$rgemma" grpo "${common[@]}" --data.train=prompts.h5 --train.out=e5

finish "policy command"
