// `rgemma prepare text|chat|preference|prompts`: user data -> an HDF5 token dataset (docs/data-formats.md),
// with a progress bar on stderr (one line when it is not a terminal) and a one-line summary on stdout. The work is rg::data::prepare_*.
#include "configs/options.h"
#include "tools/command.h"
#include "tools/model_source.h"

#include <filesystem>

#ifdef RG_WITH_HDF5
#include "data/prepare.h"
#endif

#include <iostream>
#include <string>

namespace {

int run_prepare(int argc, char** argv) {
#ifndef RG_WITH_HDF5
  throw rg::config::ConfigError("this build has no HDF5 (configure with -DRG_WITH_HDF5=ON)");
#else
  const std::string what = argc >= 2 ? argv[1] : "";
  if (what != "text" && what != "chat" && what != "preference" && what != "prompts") {
    if (what == "--help" || what == "-h") {
      std::cout << "usage: rgemma prepare text|chat|preference|prompts --tokenizer TOK.model --input FILE... "
                   "--output OUT.h5 [options]\n(`rgemma prepare text --help` lists the options)\n";
      return 0;
    }
    throw rg::config::ConfigError("expected text, chat, preference or prompts after 'prepare', got '" + what + "'");
  }
  const std::string command = std::string(argv[0]) + " " + what;
  rg::config::Options options(command, "Tokenize " + what + " inputs into an HDF5 token dataset.");
  rg::data::PrepareOptions p;
  std::vector<std::string> inputs;
  options.add("input", &inputs, "input files or directories (text: .txt or .jsonl; others: JSONL)")
      .add("tokenizer", &p.tokenizer, "sentencepiece model (e.g. from `rgemma tokenizer train`)")
      .add("output", &p.output, "HDF5 file to write (replaced atomically)")
      .add("validation", &p.validation_fraction, "fraction of examples held out in /validation")
      .add("document", &p.document, "text files: 'file' (one document each) or 'block' (blank-line separated)")
      .add("text-field", &p.text_field, "JSONL text inputs: the field holding the document")
      .add("max-tokens", &p.max_tokens, "chat/preference/prompts: longest example kept (0: no limit)")
      .add("overlong", &p.overlong, "'drop' or 'truncate' examples over max-tokens (prompts: always drop)")
      .add("threads", &p.threads, "text: tokenizing threads, 0 for every core (the output is the same for any count)")
      .range(0, 1024)
      .required("input").required("tokenizer").required("output");
  std::vector<const char*> args = {command.c_str()};
  for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
  if (!options.parse(static_cast<int>(args.size()), args.data())) return 0;
  if (p.validation_fraction < 0 || p.validation_fraction >= 1) options.fail("validation", "expected a fraction in [0, 1)");
  if (p.overlong != "drop" && p.overlong != "truncate") options.fail("overlong", "expected drop or truncate");
  if (p.document != "file" && p.document != "block") options.fail("document", "expected file or block");
  // Inputs are files or folders of files; a FIFO or device would block or never end. (Missing paths are
  // left to prepare_*, which reports them in its own words.)
  namespace fs = std::filesystem;
  if (fs::exists(p.tokenizer)) rg::tools::require_input_file(p.tokenizer, "tokenizer");
  for (const auto& in : inputs) {
    if (fs::exists(in) && !fs::is_directory(in)) rg::tools::require_input_file(in, "input");
  }

  p.progress = rg::data::console_progress(std::cerr, "prepare " + what);
  const rg::data::PrepareSummary s = what == "text"         ? rg::data::prepare_text(inputs, p)
                                     : what == "chat"       ? rg::data::prepare_chat(inputs, p)
                                     : what == "preference" ? rg::data::prepare_preference(inputs, p)
                                                            : rg::data::prepare_prompts(inputs, p);
  std::cout << rg::data::describe(s) << "\n";
  return 0;
#endif
}

}  // namespace

RG_COMMAND("prepare", "tokenize text, chats, preference pairs or prompts into an HDF5 dataset", run_prepare);
