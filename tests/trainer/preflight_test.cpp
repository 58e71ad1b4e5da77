// The training run's pre-flight checks (batch arithmetic, dataset vs model, split sizes), the memory
// estimate, and the one-line form of LibTorch and allocation errors, against values worked out by hand.
#include "trainer/preflight.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>

namespace rg::trainer {
namespace {

// The message of what `fn` throws as TrainSetupError ("" and a test failure when it throws nothing).
template <typename Fn>
std::string setup_error(Fn fn) {
  try {
    fn();
  } catch (const TrainSetupError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected TrainSetupError";
  return "";
}

TEST(GlobalBatchShape, ProductOfTheParts) {
  const BatchShape b = global_batch_shape(/*micro_batch=*/4, /*grad_accum=*/2, /*world=*/3, /*seq_len=*/48, 0);
  EXPECT_EQ(b.rows, 24);  // 4 x 2 x 3
  EXPECT_EQ(b.tokens, 1152);  // 24 x 48
  EXPECT_EQ(global_batch_shape(4, 2, 3, 48, /*requested_rows=*/24).rows, 24);
  const std::string msg = setup_error([] { global_batch_shape(4, 1, 1, 48, 6); });
  EXPECT_NE(msg.find("6 rows requested, but data.micro_batch (4) x train.grad_accum (1) x ranks (1) = 4"),
            std::string::npos) << msg;
}

TEST(GlobalBatchShape, OverflowIsAnErrorNotAWrappedProduct) {
  // 2^62 x 4 wraps to exactly 0 in int64 arithmetic: the old plain product accepted it.
  const int64_t big = int64_t{1} << 62;
  std::string msg = setup_error([&] { global_batch_shape(big, 4, 1, 48, 0); });
  EXPECT_NE(msg.find("overflows a 64-bit count of rows"), std::string::npos) << msg;
  EXPECT_NE(msg.find("data.micro_batch (4611686018427387904) x train.grad_accum (4)"), std::string::npos) << msg;
  msg = setup_error([&] { global_batch_shape(2, int64_t{1} << 61, 2, 48, 0); });  // 2^63 rows: just too many
  EXPECT_NE(msg.find("overflows a 64-bit count of rows"), std::string::npos) << msg;
  // Rows fit (2^40) but tokens do not (2^40 x 2^30 = 2^70).
  msg = setup_error([] { global_batch_shape(int64_t{1} << 40, 1, 1, int64_t{1} << 30, 0); });
  EXPECT_NE(msg.find("overflows a 64-bit count of tokens per step"), std::string::npos) << msg;
  // The largest product that fits is fine: (2^62 - 1) x 1 x 1 rows of 1 token.
  EXPECT_EQ(global_batch_shape((int64_t{1} << 62) - 1, 1, 1, 1, 0).tokens, (int64_t{1} << 62) - 1);
}

data::DatasetInfo dataset(int64_t vocab) {
  data::DatasetInfo info;
  info.path = "corpus.h5";
  info.tokenizer.vocab_size = vocab;
  info.tokenizer.id = "fnv1a64:00000000000000aa";
  info.tokenizer.path = "/data/tok.model";
  info.tokenizer.special = {/*pad=*/0, /*eos=*/1, /*bos=*/2, /*unk=*/3, /*start_of_turn=*/-1, /*end_of_turn=*/-1};
  info.train = {10, 400};
  info.validation = {2, 40};
  return info;
}

TEST(CheckDatasetFitsModel, VocabularyTokenizerAndSpecialIds) {
  EXPECT_NO_THROW(check_dataset_fits_model(dataset(300), 300, ""));
  EXPECT_NO_THROW(check_dataset_fits_model(dataset(300), 300, "fnv1a64:00000000000000aa"));

  std::string msg = setup_error([] { check_dataset_fits_model(dataset(300), 400, ""); });
  EXPECT_EQ(msg.rfind("data.train: corpus.h5", 0), 0u) << msg;
  EXPECT_NE(msg.find("300"), std::string::npos) << msg;
  EXPECT_NE(msg.find("400"), std::string::npos) << msg;
  msg = setup_error([] { check_dataset_fits_model(dataset(300), 300, "fnv1a64:00000000000000bb"); });
  EXPECT_NE(msg.find("fnv1a64:00000000000000bb"), std::string::npos) << msg;

  data::DatasetInfo bad_pad = dataset(300);
  bad_pad.tokenizer.special.pad = 300;  // one past the last id: the embedding lookup would read out of range
  msg = setup_error([&] { check_dataset_fits_model(bad_pad, 300, ""); });
  EXPECT_NE(msg.find("corpus.h5: attribute pad_id = 300 is outside the model's vocabulary [0, 300)"),
            std::string::npos) << msg;
  data::DatasetInfo bad_turn = dataset(300);
  bad_turn.tokenizer.special.end_of_turn = 5000;
  msg = setup_error([&] { check_dataset_fits_model(bad_turn, 300, ""); });
  EXPECT_NE(msg.find("end_of_turn_id = 5000"), std::string::npos) << msg;
  data::DatasetInfo negative = dataset(300);
  negative.tokenizer.special.bos = -2;  // -1 means "none"; anything lower is damage
  msg = setup_error([&] { check_dataset_fits_model(negative, 300, ""); });
  EXPECT_NE(msg.find("bos_id = -2"), std::string::npos) << msg;
}

TEST(CheckSplitFitsRow, NamesTheSplitAndItsSizes) {
  const data::DatasetInfo info = dataset(300);  // train 10 sequences / 400 tokens, validation 2 / 40
  EXPECT_NO_THROW(check_split_fits_row(info, false, 48, true));
  EXPECT_NO_THROW(check_split_fits_row(info, true, 40, true));   // exactly one packed row
  EXPECT_NO_THROW(check_split_fits_row(info, true, 48, false));  // unpacked: one sequence is one row
  const std::string msg = setup_error([&] { check_split_fits_row(info, true, 48, true); });
  EXPECT_NE(msg.find("corpus.h5: the validation split has 2 sequences and 40 tokens, less than one row of "
                     "data.seq_len = 48 tokens"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--validation"), std::string::npos) << msg;

  data::DatasetInfo no_validation = info;
  no_validation.validation = {0, 0};
  EXPECT_NO_THROW(check_split_fits_row(no_validation, true, 48, true));  // nothing to evaluate, nothing to fail
  data::DatasetInfo empty_train = info;
  empty_train.train = {0, 0};
  EXPECT_NE(setup_error([&] { check_split_fits_row(empty_train, false, 48, false); }).find("the train split has 0"),
            std::string::npos);
}

TEST(EstimateMemory, ByteCountsByHand) {
  // fp32, 2 ranks, ZeRO-1: weights 1000 x 4; gradient slice 500 x 4 + the flat buffer 1000 x 4; master, m
  // and v for 500 elements x 4; 2 rows x 8 tokens x (3 int64 + 1 float) + logits and their gradient 16 x 100 x 4 x 2.
  MemoryEstimate m = estimate_memory(1000, /*bf16=*/false, /*world=*/2, /*zero_stage=*/1, /*micro_batch=*/2,
                                     /*grad_accum=*/1, /*seq_len=*/8, /*vocab=*/100);
  EXPECT_EQ(m.weights, 4000);
  EXPECT_EQ(m.gradients, 6000);
  EXPECT_EQ(m.optimizer, 6000);
  EXPECT_EQ(m.batch, 16 * 28 + 12800);
  EXPECT_EQ(m.total(), 4000 + 6000 + 6000 + 16 * 28 + 12800);
  // bf16, 4 ranks, ZeRO-2: weights 1000 x 2; gradient slice 250 x 4 plus one bucket of 2^23 x 4 ranks x 4 B;
  // master, m and v for 250 elements x 4; 2 micro-batches; logits of a 2048-token chunk.
  m = estimate_memory(1000, true, 4, 2, 64, 2, 64, 1000, 2048);
  EXPECT_EQ(m.weights, 2000);
  EXPECT_EQ(m.gradients, 1000 + 4.0 * (1 << 23) * 4);
  EXPECT_EQ(m.optimizer, 3000);
  EXPECT_EQ(m.batch, 64.0 * 64 * 2 * 28 + 2.0 * 2048 * 1000 * 4);
  // The 2B preset in fp32: 2,682,862,080 x 4 B = 9.9945 GiB, printed to 3 significant digits.
  m = estimate_memory(2682862080, false, 1, 1, 1, 1, 2048, 256000);
  EXPECT_NE(m.describe().find("2,682,862,080 parameters: weights 9.99 GiB"), std::string::npos) << m.describe();
}

TEST(FormatBytes, Units) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(10.0 * (1 << 30)), "10 GiB");
  EXPECT_EQ(format_bytes(300.0 * (1 << 20)), "300 MiB");
}

TEST(RethrowOneLine, AllocationFailureNamesTheSizes) {
  try {
    try {
      torch::Tensor t = torch::empty({int64_t{1} << 62}, torch::kByte);  // 4 EiB: no allocator can give it
      FAIL() << "allocated 4 EiB";
    } catch (...) {
      rethrow_one_line("building the model on cpu", "about 10 GiB per rank");
    }
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("out of memory while building the model on cpu (the run needs about 10 GiB per rank): ", 0), 0u)
        << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  try {
    try {
      throw std::bad_alloc();
    } catch (...) {
      rethrow_one_line("training step 3", "about 1 MiB per rank");
    }
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "out of memory while training step 3 (the run needs about 1 MiB per rank): allocation failed");
  }
}

TEST(RethrowOneLine, LibTorchErrorsLoseTheBacktraceOthersPassUnchanged) {
  // A c10::Error as CUDA LibTorch builds throw it: what() is the message, then a C++ backtrace.
  try {
    try {
      throw c10::Error("shape '[3]' is invalid for input of size 2", "frame #0: c10::Error::Error\nframe #1: at::view");
    } catch (...) {
      rethrow_one_line("training step 7", "");
    }
  } catch (const c10::Error&) {
    FAIL() << "a c10::Error escaped";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "training step 7: shape '[3]' is invalid for input of size 2");
  }
  // A real one from this build (Debian's LibTorch throws std::runtime_error without a backtrace).
  try {
    try {
      torch::ones({2}).view({3});
      FAIL() << "view succeeded";
    } catch (...) {
      rethrow_one_line("training step 7", "");
    }
  } catch (const c10::Error&) {
    FAIL() << "a c10::Error escaped";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("shape '[3]' is invalid"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  EXPECT_THROW(
      {
        try {
          throw TrainSetupError("data.train: x");
        } catch (...) {
          rethrow_one_line("anything", "");
        }
      },
      TrainSetupError);
  EXPECT_FALSE(is_out_of_memory(std::invalid_argument("out of memory")));  // only allocator errors count
  EXPECT_TRUE(is_out_of_memory(std::bad_alloc()));
}

}  // namespace
}  // namespace rg::trainer
