// `rgemma bench rollout` (dispatched from tools/cmd_bench.cpp): the cost of RL rollouts through
// rlhf/rollout.h. Speed: G samples per prompt with the prompt prefilled once and its state copied G times
// (PromptState::repeat) against every copy prefilling the prompt itself. Memory: sampling-state bytes and
// peak resident memory growth against the number of new tokens (stop tokens off, every row runs to the end).
#pragma once

namespace rg::tools {

// argv[0] is "rgemma bench rollout". Prints one JSON object per line; returns the exit code.
int bench_rollout(int argc, char** argv);

}  // namespace rg::tools
