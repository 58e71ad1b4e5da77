// The loader against a slow reference built from the tokenizer alone: text -> HDF5 -> loader -> text round
// trip, packing targets/masks/positions, per-epoch shuffles, world size 2 == world size 1, exact resume.
#include "data/loader.h"
#include "data/prepare.h"
#include "tests/data/data_test_support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

namespace rg::data {
namespace {

using test::fs::path;

struct Corpus {
  std::vector<std::string> docs;  // in input order
  std::string h5;
};

// 30 documents: 20 blank-line blocks of a .txt file (some spanning lines) and 10 JSONL lines.
const Corpus& corpus() {
  static const Corpus c = [] {
    Corpus c;
    const path dir = test::scratch_dir("loader");
    std::mt19937 rng(3);
    std::string txt, jsonl;
    for (int d = 0; d < 30; ++d) {
      std::string doc;
      const int sentences = 1 + static_cast<int>(rng() % 6);
      for (int s = 0; s < sentences; ++s) doc += (s ? (s % 3 ? " " : "\n") : "") + test::sentence(rng, 3 + rng() % 9);
      c.docs.push_back(doc);
      if (d < 20) {
        txt += doc + "\n\n";
      } else {
        jsonl += nlohmann::json{{"text", doc}, {"source", "generated"}}.dump() + "\n";
      }
    }
    test::write_file(dir / "a.txt", "\n" + txt + "\n\n");
    test::write_file(dir / "b.jsonl", jsonl);
    PrepareOptions o;
    o.tokenizer = test::tokenizer_path();
    o.output = (dir / "corpus.h5").string();
    o.document = "block";
    o.validation_fraction = 0.1;  // documents 9, 19 and 29 are held out
    prepare_text({(dir / "a.txt").string(), (dir / "b.jsonl").string()}, o);
    c.h5 = o.output;
    return c;
  }();
  return c;
}

std::vector<int32_t> encoded(const std::string& text) {
  std::vector<int32_t> t = {test::tokenizer().bos_id()};
  const auto ids = test::tokenizer().encode(text);
  t.insert(t.end(), ids.begin(), ids.end());
  return t;
}

bool held_out(int d) { return d == 9 || d == 19 || d == 29; }

LoaderOptions options(int64_t seq, int64_t micro, int rank = 0, int world = 1) {
  LoaderOptions o;
  o.path = corpus().h5, o.seq_len = seq, o.micro_batch = micro, o.rank = rank, o.world_size = world, o.seed = 17;
  return o;
}

void expect_same(const Batch& a, const Batch& b, const std::string& what) {
  EXPECT_EQ(a.rows, b.rows) << what;
  EXPECT_EQ(a.tokens, b.tokens) << what;
  EXPECT_EQ(a.targets, b.targets) << what;
  EXPECT_EQ(a.segment_pos, b.segment_pos) << what;
  EXPECT_EQ(a.loss_mask, b.loss_mask) << what;
}

Batch rows_of(const Batch& b, int64_t first, int64_t count) {
  Batch r;
  r.rows = count, r.seq = b.seq;
  const auto lo = first * b.seq, hi = (first + count) * b.seq;
  r.tokens.assign(b.tokens.begin() + lo, b.tokens.begin() + hi);
  r.targets.assign(b.targets.begin() + lo, b.targets.begin() + hi);
  r.segment_pos.assign(b.segment_pos.begin() + lo, b.segment_pos.begin() + hi);
  r.loss_mask.assign(b.loss_mask.begin() + lo, b.loss_mask.begin() + hi);
  return r;
}

TEST(Loader, TextRoundTripsThroughHdf5AndPackedRows) {
  const Corpus& c = corpus();
  const DatasetInfo info = read_dataset_info(c.h5);
  EXPECT_EQ(info.kind, DatasetKind::kText);
  EXPECT_EQ(info.train.sequences, 27);
  EXPECT_EQ(info.validation.sequences, 3);
  EXPECT_EQ(info.tokenizer.vocab_size, 320);
  EXPECT_EQ(info.tokenizer.id, tokenizer_id(test::tokenizer_path()));

  // Reference stream: the train documents in input order, each <bos> + its tokens.
  std::vector<int32_t> stream, doc_of, pos_of;
  std::vector<std::string> train_docs;
  for (int d = 0; d < 30; ++d) {
    if (held_out(d)) continue;
    const auto t = encoded(c.docs[d]);
    for (size_t i = 0; i < t.size(); ++i) stream.push_back(t[i]), doc_of.push_back(d), pos_of.push_back(int32_t(i));
    train_docs.push_back(c.docs[d]);
  }
  LoaderOptions o = options(16, 3);
  o.shuffle = false;
  Loader loader(o);
  const int64_t R = loader.samples_per_epoch(), S = 16;
  ASSERT_EQ(R, static_cast<int64_t>(stream.size()) / S);
  const Batch all = loader.samples(0, R);
  for (int64_t p = 0; p < R * S; ++p) {
    ASSERT_EQ(all.tokens[p], stream[p]) << p;
    ASSERT_EQ(all.segment_pos[p], pos_of[p]) << p;
    const bool same_doc = p + 1 < static_cast<int64_t>(stream.size()) && doc_of[p + 1] == doc_of[p];
    ASSERT_EQ(all.targets[p], same_doc ? stream[p + 1] : test::tokenizer().pad_id()) << p;
    ASSERT_EQ(all.loss_mask[p], same_doc ? 1.0f : 0.0f) << p;
  }
  // Detokenised, the rows give back the documents: split at segment_pos 0, drop <bos>, decode.
  std::vector<std::vector<int32_t>> pieces;
  for (int64_t p = 0; p < R * S; ++p) {
    if (all.segment_pos[p] == 0) pieces.emplace_back();
    pieces.back().push_back(all.tokens[p]);
  }
  ASSERT_GE(pieces.size(), train_docs.size() - 1);
  for (size_t k = 0; k < pieces.size(); ++k) {
    EXPECT_EQ(pieces[k][0], test::tokenizer().bos_id());
    const std::string text = test::tokenizer().decode({pieces[k].begin() + 1, pieces[k].end()});
    if (k + 1 < pieces.size()) {
      EXPECT_EQ(text, train_docs[k]);
    } else {
      EXPECT_EQ(train_docs[k].substr(0, text.size()), text);  // the epoch's tail (< one row) is not served
    }
  }
  // The prefetching next() serves exactly those rows, in order, across the epoch boundary.
  for (int64_t step = 0; step * 3 < R + 6; ++step) {
    const Batch b = loader.next();
    for (int64_t r = 0; r < 3; ++r) {
      const int64_t s = (step * 3 + r) % R;
      expect_same(rows_of(b, r, 1), rows_of(all, s, 1), "sample " + std::to_string(step * 3 + r));
    }
  }
  EXPECT_EQ(loader.cursor(), static_cast<uint64_t>(3 * ((R + 6 + 2) / 3)));
}

TEST(Loader, ValidationSplitHoldsTheHeldOutDocuments) {
  LoaderOptions o = options(256, 3);
  o.split = "validation", o.pack = false, o.shuffle = false;
  Loader loader(o);
  ASSERT_EQ(loader.samples_per_epoch(), 3);
  const Batch b = loader.next();
  const int docs[] = {9, 19, 29};
  for (int r = 0; r < 3; ++r) {
    const auto want = encoded(corpus().docs[docs[r]]);
    const std::vector<int32_t> got(b.tokens.begin() + r * 256, b.tokens.begin() + r * 256 + want.size());
    EXPECT_EQ(got, want);
    EXPECT_EQ(test::tokenizer().decode({got.begin() + 1, got.end()}), corpus().docs[docs[r]]);
    // Unpacked rows are padded: pad tokens, no targets, nothing learned.
    for (int64_t p = want.size(); p < 256; ++p) {
      EXPECT_EQ(b.tokens[r * 256 + p], test::tokenizer().pad_id());
      EXPECT_EQ(b.loss_mask[r * 256 + p], 0.0f);
    }
    EXPECT_EQ(b.loss_mask[r * 256 + want.size() - 1], 0.0f);  // the last token has no target
    EXPECT_EQ(b.targets[r * 256 + want.size() - 2], want.back());
  }
}

TEST(Loader, EachShuffledEpochVisitsEveryDocumentOnce) {
  LoaderOptions o = options(256, 1);
  o.pack = false;
  Loader loader(o);
  const int64_t n = loader.samples_per_epoch();
  ASSERT_EQ(n, 27);
  auto epoch_docs = [&](uint64_t epoch) {
    const Batch b = loader.samples(epoch * n, n);
    std::vector<std::string> texts;
    for (int64_t r = 0; r < n; ++r) {
      std::vector<int32_t> ids;
      for (int64_t p = 1; p < 256 && b.tokens[r * 256 + p] != test::tokenizer().pad_id(); ++p) ids.push_back(b.tokens[r * 256 + p]);
      texts.push_back(test::tokenizer().decode(ids));
    }
    return texts;
  };
  const auto e0 = epoch_docs(0), e1 = epoch_docs(1);
  std::vector<std::string> want;
  for (int d = 0; d < 30; ++d) {
    if (!held_out(d)) want.push_back(corpus().docs[d]);
  }
  auto sorted = [](std::vector<std::string> v) { return std::sort(v.begin(), v.end()), v; };
  EXPECT_EQ(sorted(e0), sorted(want));
  EXPECT_EQ(sorted(e1), sorted(want));
  EXPECT_NE(e0, e1);    // a new order each epoch
  EXPECT_NE(e0, want);  // and not the file order
  EXPECT_EQ(epoch_permutation(27, 17, 0), epoch_permutation(27, 17, 0));
  EXPECT_NE(epoch_permutation(27, 17, 0), epoch_permutation(27, 18, 0));
}

TEST(Loader, WorldSizeTwoCoversExactlyWhatWorldSizeOneCovers) {
  Loader single(options(8, 2));
  Loader rank0(options(8, 2, 0, 2)), rank1(options(8, 2, 1, 2));
  const int64_t steps = single.samples_per_epoch() / 4 + 3;  // runs into the second epoch
  for (int64_t k = 0; k < steps; ++k) {
    const Batch a = single.next(), b = single.next();
    expect_same(rank0.next(), a, "rank 0, step " + std::to_string(k));
    expect_same(rank1.next(), b, "rank 1, step " + std::to_string(k));
    ASSERT_EQ(rank0.cursor(), single.cursor());
    ASSERT_EQ(rank1.cursor(), single.cursor());
  }
  EXPECT_GT(single.epoch(), 0u);
}

TEST(Loader, ResumeContinuesExactlyAtTheSameOrAnotherWorldSize) {
  Loader reference(options(8, 2));
  std::vector<Batch> ref;
  for (int k = 0; k < 12; ++k) ref.push_back(reference.next());  // ref[k] = samples [2k, 2k + 2)

  Loader resumed(options(8, 2));
  resumed.seek(8);
  expect_same(resumed.next(), ref[4], "seek(8)");
  expect_same(resumed.next(), ref[5], "after seek(8)");

  Loader rewound(options(8, 2));  // seek while batches are already read ahead
  for (int k = 0; k < 5; ++k) rewound.next();
  rewound.seek(2);
  EXPECT_EQ(rewound.cursor(), 2u);
  expect_same(rewound.next(), ref[1], "seek back to 2");

  // A run saved at world size 1, resumed at world size 2 (one row each) and at world size 4.
  Loader w2r0(options(8, 1, 0, 2)), w2r1(options(8, 1, 1, 2));
  w2r0.seek(14), w2r1.seek(14);
  for (int k = 7; k < 12; ++k) {
    expect_same(w2r0.next(), rows_of(ref[k], 0, 1), "world 2 rank 0, batch " + std::to_string(k));
    expect_same(w2r1.next(), rows_of(ref[k], 1, 1), "world 2 rank 1, batch " + std::to_string(k));
  }
  EXPECT_EQ(w2r0.cursor(), 24u);
  for (int r = 0; r < 4; ++r) {
    Loader w4(options(8, 1, r, 4));
    w4.seek(w2r0.cursor() - 8);  // samples 16..19 = ref[8], ref[9]
    expect_same(w4.next(), rows_of(ref[8 + r / 2], r % 2, 1), "world 4 rank " + std::to_string(r));
  }
}

TEST(Loader, RefusesBadOptionsAndShortSplits) {
  EXPECT_THROW(Loader(options(0, 1)), std::invalid_argument);
  EXPECT_THROW(Loader(options(8, 1, 2, 2)), std::invalid_argument);
  LoaderOptions o = options(100000, 1);
  try {
    Loader loader(o);
    FAIL() << "expected an error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("not one row of seq_len 100000"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace rg::data
