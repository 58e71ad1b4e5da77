// `rgemma init`: a randomly initialised model (docs/architecture.md §11) written as a Hugging Face folder, the
// starting point of pretraining from scratch and of the demo.
#include "model/pretrained.h"
#include "model/io/safetensors.h"
#include "tools/command.h"
#include "tools/model_source.h"

#include <iostream>

namespace {

int run_init(int argc, char** argv) {
  rg::config::Options options(argv[0], "Write a randomly initialised model ([model] config) as a Hugging Face folder.");
  rg::tools::ModelSource source;
  std::string output;
  options.add("output", &output, "folder to write (config.json + model.safetensors)");
  rg::tools::add_model_source_options(options, &source);
  options.required("output");
  if (!options.parse(argc, argv)) return 0;
  if (!source.dir.empty()) options.fail("model", "init builds a new model from [model] keys; drop --model");
  rg::Griffin model = rg::tools::make_model(source, options, /*compute=*/false);  // float16 only stored
  rg::save_pretrained(model, output, rg::io::parse_float_dtype(source.dtype));
  std::cout << "init: " << model->num_parameters() << " parameters -> " << output << "\n";
  return 0;
}

}  // namespace

RG_COMMAND("init", "write a randomly initialised model as a Hugging Face folder", run_init);
