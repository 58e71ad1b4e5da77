// `rgemma generate`: sample from a model folder (or a config with random weights) with the fixed-size
// state. Prints the generated ids on one line, and the text when a tokenizer is given.
#include "data/tokenizer.h"
#include "model/sampler.h"
#include "tools/command.h"
#include "tools/model_source.h"

#include <algorithm>
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
      .add("temperature", &s.temperature, "sampling temperature (finite, >= 1e-6; --greedy for argmax)")
      .add("top-k", &s.top_k, "keep the k most likely tokens (>= 0; 0 = all)")
      .add("top-p", &s.top_p, "nucleus: keep the smallest set with this much probability (in (0, 1]; 1 = all)")
      .add("seed", &seed, "sampling seed")
      .add("stop-ids", &stop_ids, "comma-separated ids that end a row, or 'none' (default: the tokenizer's EOS "
                                  "and <end_of_turn>, else 1)");
  rg::tools::add_model_source_options(options, &source);
  if (!options.parse(argc, argv)) return 0;
  s.seed = static_cast<uint64_t>(seed);
  try {
    rg::check_sampler_options(s);
  } catch (const std::invalid_argument& e) {
    // "top_k: expected ..." -> the option as typed, --top-k
    std::string field = e.what(), rest;
    const size_t colon = field.find(": ");
    if (colon != std::string::npos) rest = field.substr(colon + 2), field.resize(colon);
    std::replace(field.begin(), field.end(), '_', '-');
    options.fail(field, rest);
  }

  std::unique_ptr<rg::Tokenizer> tok;
  if (!tokenizer_path.empty()) {
    rg::tools::require_input_file(tokenizer_path, "tokenizer");
    tok = std::make_unique<rg::Tokenizer>(rg::Tokenizer::load(tokenizer_path));
  }
  std::vector<int64_t> prompt;
  if (!prompt_ids.empty() == !prompt_text.empty()) {
    throw rg::config::ConfigError("command line: give exactly one of --prompt-ids and --prompt");
  }
  if (!prompt_ids.empty()) {
    prompt = rg::tools::parse_ids(prompt_ids, "prompt-ids");  // in [0, vocab) checked once the model is known
  } else {
    if (!tok) options.fail("prompt", "needs --tokenizer");
    prompt.push_back(tok->bos_id());
    for (int32_t id : tok->encode(prompt_text)) prompt.push_back(id);
  }
  if (stop_ids == "none") {
    s.stop_ids.clear();  // always max-new-tokens (ids outside the vocabulary are refused, so say it this way)
  } else if (!stop_ids.empty()) {
    s.stop_ids = rg::tools::parse_ids(stop_ids, "stop-ids");
  } else if (tok) {
    s.stop_ids.push_back(tok->eos_id());
    if (int32_t eot = tok->piece_to_id("<end_of_turn>"); eot >= 0) s.stop_ids.push_back(eot);
  } else {
    s.stop_ids = {1};  // Gemma's EOS
  }

  rg::Griffin model = rg::tools::make_model(source, options);
  model->eval();
  const rg::ModelConfig& c = model->config();
  rg::tools::check_ids(prompt, c.vocab_size, prompt_ids.empty() ? "prompt (the tokenizer's ids)" : "prompt-ids");
  rg::tools::check_ids(s.stop_ids, c.vocab_size, stop_ids.empty() ? "stop-ids (the tokenizer's)" : "stop-ids");
  // What generation allocates beyond the weights: the prompt's logits (P, V) and the sampling state,
  // whose attention blocks keep `attention_window` keys and values (a window of 2^20 is GBs).
  const double elem = static_cast<double>(c10::elementSize(model->dtype()));
  const double window = c.attention_window > 0 ? static_cast<double>(c.attention_window)
                                               : static_cast<double>(prompt.size() + s.max_new_tokens);
  const double state = static_cast<double>(c.num_blocks_of(rg::BlockType::kAttention)) *
                           window * (2.0 * c.num_kv_heads * c.head_dim * elem + 8) +
                       static_cast<double>(c.num_blocks_of(rg::BlockType::kRecurrent)) * c.lru_width * c.conv_width * 4.0;
  const double prompt_logits = static_cast<double>(prompt.size()) * c.vocab_size * (elem + 8);
  const std::string what = "generate: a prompt of " + std::to_string(prompt.size()) + " tokens (" +
                           rg::tools::bytes_text(prompt_logits) + " of logits) and a sampling state of about " +
                           rg::tools::bytes_text(state) + " (attention_window " + std::to_string(c.attention_window) + ")";
  rg::tools::require_memory(prompt_logits + state, what);
  const auto start = std::chrono::steady_clock::now();
  rg::Generation g;
  rg::tools::with_memory_context(what, [&] { g = rg::generate(model, {prompt}, s); });
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
