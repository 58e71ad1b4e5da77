// `rgemma pretrain` and `rgemma sft`: one rank per process; launched under mpirun for data parallelism
// (launch/local.sh, launch/multinode.sh, launch/slurm.sbatch). Settings: [model] (or --train.init_from),
// [data], [train], [optim], [checkpoint].
#include "configs/sections.h"
#include "tools/command.h"
#include "tools/training_launch.h"
#include "trainer/trainer.h"

namespace {

int run(rg::trainer::Task task, int argc, char** argv) {
  const bool sft = task == rg::trainer::Task::kSft;
  rg::config::Options options(
      argv[0], sft ? "Instruction-tune a model on a chat dataset (loss on model turns only)."
                   : "Pretrain a model on a text dataset (packed documents, next-token loss).");
  rg::ModelConfig model;
  rg::trainer::TrainConfig config;
  if (sft) config.data.pack = false;  // one conversation per row by default
  rg::config::add_model_options(options, &model);
  rg::config::add_train_options(options, &config);
  if (!options.parse(argc, argv)) return 0;
  if (!config.train.init_from.empty()) {
    // The folder's config.json defines the model. [model] keys from files are ignored (a saved run
    // config.ini carries them, and must replay); on the command line they are a contradiction.
    for (const char* key : {"model.vocab_size", "model.width", "model.depth"}) {
      if (options.where(key) == "command line") {
        options.fail(key, "conflicts with --train.init_from (its config.json defines the model)");
      }
    }
  }
  auto comm = rg::tools::make_training_communicator(options, config);
  const std::string effective = rg::tools::announce_effective_config(options, *comm);
  return rg::tools::run_training_command(argv[0], *comm, [&] {
    return rg::trainer::run_training(task, config, model, *comm, effective);
  });
}

int run_pretrain(int argc, char** argv) { return run(rg::trainer::Task::kPretrain, argc, argv); }
int run_sft(int argc, char** argv) { return run(rg::trainer::Task::kSft, argc, argv); }

}  // namespace

RG_COMMAND("pretrain", "pretrain on a text dataset (data parallel under mpirun, ZeRO-sharded AdamW)", run_pretrain);
RG_COMMAND("sft", "instruction-tune on a chat dataset, loss on model turns only", run_sft);
