// `rgemma pretrain` and `rgemma sft`: one rank per process; launched under mpirun for data parallelism
// (launch/local.sh, launch/multinode.sh, launch/slurm.sbatch). Settings: [model] (or --train.init_from),
// [data], [train], [optim], [checkpoint].
#include "configs/sections.h"
#include "data/data_error.h"
#include "tools/command.h"
#include "trainer/comm/backend.h"
#include "trainer/trainer.h"

#include <torch/cuda.h>

#include <iostream>
#include <sstream>

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
  // MPI moves CPU tensors and NCCL CUDA ones, so the communicator follows the device the trainer will pick.
  const bool cuda = config.train.device != "cpu" && torch::cuda::is_available();
  std::unique_ptr<rg::comm::Communicator> comm;
  try {
    comm = rg::comm::make_communicator(config.train.comm,
                                       cuda ? rg::comm::TensorDevice::kCuda : rg::comm::TensorDevice::kCpu);
  } catch (const rg::comm::BackendError& e) {
    options.fail("train.comm", e.what());
  }
  std::ostringstream effective;
  options.print_effective(effective);
  if (comm->rank() == 0) std::cout << effective.str();
  // One rank alone reports like any command (one line, exit 2 or 1). With several, a failure on one rank
  // must end the whole job, never leave the others waiting in a collective.
  auto fail = [&](const std::string& message, int exit_code) {
    std::cerr << argv[0] << ": rank " << comm->rank() << ": " << message << std::endl;
    comm->abort(exit_code);
  };
  int code = 0;
  try {
    code = rg::trainer::run_training(task, config, model, *comm, effective.str());
  } catch (const rg::trainer::TrainSetupError& e) {
    if (comm->world_size() == 1) throw rg::config::ConfigError(e.what());
    fail(e.what(), 2);
  } catch (const rg::data::DataError& e) {  // an unusable dataset file exits 2 (BadDataFile), as with one rank
    if (comm->world_size() == 1) throw;
    fail(e.what(), e.exit_code());
  } catch (const std::exception& e) {
    if (comm->world_size() == 1) throw;
    fail(std::string("error: ") + e.what(), 1);
  }
  return code;
}

int run_pretrain(int argc, char** argv) { return run(rg::trainer::Task::kPretrain, argc, argv); }
int run_sft(int argc, char** argv) { return run(rg::trainer::Task::kSft, argc, argv); }

}  // namespace

RG_COMMAND("pretrain", "pretrain on a text dataset (data parallel under mpirun, ZeRO-sharded AdamW)", run_pretrain);
RG_COMMAND("sft", "instruction-tune on a chat dataset, loss on model turns only", run_sft);
