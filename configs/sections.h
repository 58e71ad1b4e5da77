// One function per library's config struct binds its fields to `[section] key` options. Commands call
// the ones they need; the key names here are the user-facing names documented in README.md.
#pragma once

#include "configs/options.h"
#include "model/config.h"
#include "trainer/train_config.h"

namespace rg::config {

// [model]: every ModelConfig field; block_pattern is validated and ModelConfig::validate() runs after
// parsing, with errors located at the offending key.
void add_model_options(Options& options, ModelConfig* model);

// [data], [train], [optim], [checkpoint] for pretrain and sft; data.train is required.
void add_train_options(Options& options, trainer::TrainConfig* train);

}  // namespace rg::config
