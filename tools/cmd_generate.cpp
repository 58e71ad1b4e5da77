// `rgemma generate`: sample from a model folder (or a config with random weights) with the fixed-size
// state. Prints the generated ids on one line, and the text when a tokenizer is given.
#include "data/tokenizer.h"
#include "model/sampler.h"
#include "tools/command.h"
#include "tools/model_source.h"

#include <chrono>
#include <iostream>

namespace {

int run_generate(int argc, char** argv) {
  rg::config::Options options(argv[0], "Generate tokens from a prompt (ids, or text with --tokenizer).");
  rg::tools::ModelSource source;
  std::string prompt_ids, prompt_text, tokenizer_path, stop_ids;
  rg::SamplerOptions s;
  int64_t seed = 0;
  options.add("prompt-ids", &prompt_ids, "comma-separated prompt token ids, BOS included (e.g. 2,651,1234)")
      .add("prompt", &prompt_text, "prompt text (needs --tokenizer; BOS is prepended)")
      .add("tokenizer", &tokenizer_path, "sentencepiece model, for --prompt and to print text")
      .add("max-new-tokens", &s.max_new_tokens, "tokens to generate at most")
      .add("greedy", &s.greedy, "argmax decoding")
      .add("temperature", &s.temperature, "sampling temperature (> 0)")
      .add("top-k", &s.top_k, "keep the k most likely tokens (0 = all)")
      .add("top-p", &s.top_p, "nucleus: keep the smallest set with this much probability (1 = all)")
      .add("seed", &seed, "sampling seed")
      .add("stop-ids", &stop_ids, "comma-separated ids that end a row (default: the tokenizer's EOS and "
                                  "<end_of_turn>, else 1)");
  rg::tools::add_model_source_options(options, &source);
  if (!options.parse(argc, argv)) return 0;
  s.seed = static_cast<uint64_t>(seed);

  std::unique_ptr<rg::Tokenizer> tok;
  if (!tokenizer_path.empty()) tok = std::make_unique<rg::Tokenizer>(rg::Tokenizer::load(tokenizer_path));
  std::vector<int64_t> prompt;
  if (!prompt_ids.empty() == !prompt_text.empty()) {
    throw rg::config::ConfigError("command line: give exactly one of --prompt-ids and --prompt");
  }
  if (!prompt_ids.empty()) {
    prompt = rg::tools::parse_ids(prompt_ids, "prompt-ids");
  } else {
    if (!tok) options.fail("prompt", "needs --tokenizer");
    prompt.push_back(tok->bos_id());
    for (int32_t id : tok->encode(prompt_text)) prompt.push_back(id);
  }
  if (!stop_ids.empty()) {
    s.stop_ids = rg::tools::parse_ids(stop_ids, "stop-ids");
  } else if (tok) {
    s.stop_ids.push_back(tok->eos_id());
    if (int32_t eot = tok->piece_to_id("<end_of_turn>"); eot >= 0) s.stop_ids.push_back(eot);
  } else {
    s.stop_ids = {1};  // Gemma's EOS
  }

  rg::Griffin model = rg::tools::make_model(source, options);
  model->eval();
  const auto start = std::chrono::steady_clock::now();
  const rg::Generation g = rg::generate(model, {prompt}, s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (size_t i = 0; i < g.ids[0].size(); ++i) std::cout << (i ? "," : "") << g.ids[0][i];
  std::cout << "\n";
  if (tok) {
    std::vector<int32_t> ids(g.ids[0].begin(), g.ids[0].end());
    std::cout << tok->decode(ids) << "\n";
  }
  std::cerr << "generate: " << g.ids[0].size() << " tokens in " << seconds << " s ("
            << (g.stopped[0] ? "stop token" : "max-new-tokens") << "), sampling state " << g.state_bytes
            << " bytes\n";
  return 0;
}

}  // namespace

RG_COMMAND("generate", "sample tokens from a model with its fixed-size state", run_generate);
