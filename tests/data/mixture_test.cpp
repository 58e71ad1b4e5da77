// Datasets made of shards and weighted mixtures (data/sources.h, the Loader): shard sets serve the samples of
// the single file they were split from (folder, list, glob); a mixture's rows come from each source in that
// source's own order (checked against one loader per source, not against the mixture's code), in proportions
// within a binomial tolerance; world size 2 == world size 1; resume at another world size; a changed mixture
// on resume continues each source from its saved count (one left out and brought back from its count in the
// history); bad specs and shards refused naming the file.
#include "data/h5.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/sources.h"
#include "tests/data/data_test_support.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace rg::data {
namespace {

using test::fs::path;

struct MixtureFixture {
  path dir;
  std::vector<std::string> parts;  // three text datasets of different generated text
  std::string whole;               // the three inputs prepared as one file
};

// Three .txt inputs of blank-line separated documents, prepared one per file (the shards) and all together.
const MixtureFixture& mixture_fixture() {
  static const MixtureFixture f = [] {
    MixtureFixture f;
    f.dir = test::scratch_dir("mixture");
    std::vector<std::string> inputs;
    for (int p = 0; p < 3; ++p) {
      std::mt19937 rng(100 + p);
      std::string text;
      for (int d = 0; d < 25 + 10 * p; ++d) text += test::sentence(rng, 3 + static_cast<int>(rng() % 12)) + "\n\n";
      const path in = f.dir / ("part" + std::to_string(p) + ".txt");
      test::write_file(in, text);
      inputs.push_back(in.string());
      test::fs::create_directories(f.dir / ("src" + std::to_string(p)));
      PrepareOptions o = test::prepare_options(f.dir / ("src" + std::to_string(p)) / ("shard" + std::to_string(p) + ".h5"));
      o.document = "block";
      prepare_text({in.string()}, o);
      f.parts.push_back(o.output);
    }
    PrepareOptions o = test::prepare_options(f.dir / "whole.h5");
    o.document = "block";
    prepare_text(inputs, o);
    f.whole = o.output;
    // The three shards also side by side in one folder.
    test::fs::create_directories(f.dir / "shards");
    for (int p = 0; p < 3; ++p) test::fs::copy_file(f.parts[p], f.dir / "shards" / ("part-" + std::to_string(p) + ".h5"));
    return f;
  }();
  return f;
}

LoaderOptions mixture_options(const std::string& spec, int64_t micro_batch = 4, bool pack = true) {
  LoaderOptions o;
  o.path = spec, o.seq_len = 16, o.micro_batch = micro_batch, o.seed = 7, o.pack = pack, o.prefetch = 0;
  return o;
}

void expect_same_batch(const Batch& a, const Batch& b, const std::string& what) {
  EXPECT_EQ(a.tokens, b.tokens) << what;
  EXPECT_EQ(a.targets, b.targets) << what;
  EXPECT_EQ(a.segment_pos, b.segment_pos) << what;
  EXPECT_EQ(a.loss_mask, b.loss_mask) << what;
}

std::vector<int32_t> row_of(const Batch& b, int64_t r) {
  return std::vector<int32_t>(b.tokens.begin() + r * b.seq, b.tokens.begin() + (r + 1) * b.seq);
}

TEST(Shards, AFolderListOrGlobServesTheSamplesOfTheSingleFile) {
  const auto& f = mixture_fixture();
  const std::string folder = (f.dir / "shards").string() + "/";
  const std::string list = f.parts[0] + ", " + f.parts[1] + "," + f.parts[2];
  const std::string glob = (f.dir / "src*" / "*.h5").string();
  for (bool pack : {true, false}) {
    Loader whole(mixture_options(f.whole, 4, pack));
    ASSERT_GT(whole.samples_per_epoch(), 10);
    const int64_t n = 2 * whole.samples_per_epoch() + 3;  // past two epochs: every epoch's permutation
    const Batch want = whole.samples(0, n);
    for (const std::string& spec : {folder, list, glob}) {
      Loader shards(mixture_options(spec, 4, pack));
      EXPECT_EQ(shards.samples_per_epoch(), whole.samples_per_epoch()) << spec;
      expect_same_batch(shards.samples(0, n), want, spec + (pack ? " packed" : " unpacked"));
    }
  }
  EXPECT_EQ(read_sources_info(folder).train.sequences, read_dataset_info(f.whole).train.sequences);
}

// Rewrites a string root attribute of a dataset file (a shard made with another tokenizer, say).
void set_string_attr(const path& file, const char* name, const std::string& value) {
  const hid_t h = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(h, 0);
  H5Adelete(h, name);
  h5::write_attr(h, name, value);
  H5Fclose(h);
}

void expect_spec_refused(const std::string& spec, const std::string& want) {
  try {
    Loader l(mixture_options(spec));
    ADD_FAILURE() << "accepted: " << spec;
  } catch (const BadDataFile& e) {  // exit 2: a configuration error
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
  }
}

TEST(Shards, BadShardsAndSpecsAreRefusedNamingTheFile) {
  const auto& f = mixture_fixture();
  const path bad = f.dir / "bad";
  test::fs::create_directories(bad);
  test::fs::copy_file(f.parts[0], bad / "a.h5", test::fs::copy_options::overwrite_existing);
  test::fs::copy_file(f.parts[1], bad / "b.h5", test::fs::copy_options::overwrite_existing);
  set_string_attr(bad / "b.h5", "tokenizer_id", "fnv1a64:0000000000000000");
  expect_spec_refused((bad / "a.h5").string() + "," + (bad / "b.h5").string(),
                 (bad / "b.h5").string() + ": tokenizer fnv1a64:0000000000000000 differs from");
  expect_spec_refused("web=" + (bad / "a.h5").string() + ":1, code=" + (bad / "b.h5").string() + ":1",
                 (bad / "b.h5").string() + ": tokenizer");
  {
    // An empty shard: a valid file with no training sequence.
    DatasetWriter w((bad / "empty.h5").string(), DatasetKind::kText, identify(test::tokenizer()), 0, "test");
    w.commit();
  }
  expect_spec_refused(f.parts[0] + "," + (bad / "empty.h5").string(), (bad / "empty.h5").string() + ": an empty shard");
  const std::string a = f.parts[0], b = f.parts[1];
  expect_spec_refused(a + ":0", "weight '0' is not a positive number");
  expect_spec_refused(a + ":-0.5, " + b + ":1", "weight '-0.5' is not a positive number");
  expect_spec_refused(a + ":abc", "weight 'abc' is not a positive number");
  expect_spec_refused(a + ":nan", "weight 'nan' is not a positive number");
  expect_spec_refused(a + ":0.5, " + b, "has no weight while others have");
  expect_spec_refused(a + ":0.5, " + (f.dir / "nothing").string() + "/:0.5", (f.dir / "nothing").string() + "/: no such file or folder");
  expect_spec_refused(a + ":0.5, " + (f.dir / "none-*.h5").string() + ":0.5", "matches no file");
  expect_spec_refused(a + ":0.5, " + (f.dir / "src0").string() + "/:0.5", "is named twice");
  expect_spec_refused(a + ":0.5, x=" + b + ":0.5, x=" + f.parts[2] + ":1", "are both named 'x'");
  expect_spec_refused(a + ",," + b, "an empty entry");
  expect_spec_refused((f.dir / "src0" / "nothing.txt").string(), "no such file or folder");
}

// The mixture's rows, each matched to the source whose next expected row it is: the sources' own loaders
// give that order, so this checks the per-source cursors independently of the mixture's bookkeeping.
std::vector<int64_t> rows_per_source(Loader& mix, const std::vector<std::string>& sources, int64_t steps,
                                     std::vector<uint64_t> start = {}) {
  std::vector<std::unique_ptr<Loader>> alone;
  for (const auto& s : sources) alone.push_back(std::make_unique<Loader>(mixture_options(s, 1)));
  if (start.empty()) start.assign(sources.size(), 0);
  std::vector<uint64_t> next = start;
  std::vector<int64_t> count(sources.size(), 0);
  for (int64_t step = 0; step < steps; ++step) {
    const Batch b = mix.next();
    for (int64_t r = 0; r < b.rows; ++r) {
      const auto row = row_of(b, r);
      size_t k = 0;
      while (k < sources.size() && row_of(alone[k]->samples(next[k], 1), 0) != row) ++k;
      if (k == sources.size()) {
        ADD_FAILURE() << "step " << step << " row " << r << " is no source's next row";
        return count;
      }
      ++next[k], ++count[k];
    }
  }
  return count;
}

TEST(Mixture, RowsFollowEachSourceInProportionWithinBinomialTolerance) {
  const auto& f = mixture_fixture();
  const std::string spec = "web=" + f.parts[0] + ":0.7, code=" + f.parts[1] + ":0.2, books=" + f.parts[2] + ":0.1";
  Loader mix(mixture_options(spec, 8));
  const int64_t steps = 250, n = steps * 8;
  const std::vector<int64_t> count = rows_per_source(mix, f.parts, steps);
  const double p[] = {0.7, 0.2, 0.1};
  for (int k = 0; k < 3; ++k) {
    // Each sample is an independent draw: count_k ~ Binomial(n, p_k). 5 sigma: a false failure ~1e-6.
    const double sigma = std::sqrt(n * p[k] * (1 - p[k]));
    EXPECT_NEAR(static_cast<double>(count[k]), n * p[k], 5 * sigma) << "source " << k;
  }
  const auto usage = mix.usage();
  ASSERT_EQ(usage.size(), 3u);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(static_cast<int64_t>(usage[k].samples), count[k]);
    EXPECT_EQ(usage[k].tokens, count[k] * 16);
  }
  EXPECT_EQ(usage[0].name, "web");
}

TEST(Mixture, WorldSizeTwoServesWhatWorldSizeOneServesAndResumesAtAnyWorldSize) {
  const auto& f = mixture_fixture();
  const std::string spec = (f.dir / "src0").string() + "/:0.5, " + (f.dir / "src1").string() + "/:0.3, " + f.parts[2] + ":0.2";
  Loader one(mixture_options(spec, 2));
  LoaderOptions o = mixture_options(spec, 2);
  o.world_size = 2, o.prefetch = 2;
  o.rank = 0;
  Loader r0(o);
  o.rank = 1;
  Loader r1(o);
  for (int step = 0; step < 20; ++step) {
    const Batch a = one.next(), b = one.next();
    expect_same_batch(r0.next(), a, "rank 0 step " + std::to_string(step));
    expect_same_batch(r1.next(), b, "rank 1 step " + std::to_string(step));
  }
  // Resume from world size 1 at world size 2 (through the JSON a checkpoint stores), and back.
  const nlohmann::json saved = nlohmann::json::parse(one.state().dump());
  EXPECT_EQ(saved["cursor"], 80);
  Loader q0(o), q1([&] { LoaderOptions p = o; p.rank = 0; return p; }());
  EXPECT_EQ(q0.restore(saved), "");
  EXPECT_EQ(q1.restore(saved), "");
  for (int step = 0; step < 10; ++step) {
    const Batch a = one.next(), b = one.next();
    expect_same_batch(q1.next(), a, "resumed rank 0 step " + std::to_string(step));
    expect_same_batch(q0.next(), b, "resumed rank 1 step " + std::to_string(step));
  }
  Loader back(mixture_options(spec, 2));
  back.restore(nlohmann::json::parse(q0.state().dump()));
  expect_same_batch(back.next(), one.next(), "resumed at world size 1");
  // A saved count that the replay does not reach (another seed) is refused.
  nlohmann::json wrong = saved;
  wrong["sources"]["src0"] = wrong["sources"]["src0"].get<int64_t>() + 1;
  Loader w(mixture_options(spec, 2));
  EXPECT_THROW(w.restore(wrong), BadDataFile);
}

TEST(Mixture, AChangedMixtureOnResumeContinuesEachSourceFromItsCount) {
  const auto& f = mixture_fixture();
  const std::string first = "web=" + f.parts[0] + ":0.5, code=" + f.parts[1] + ":0.5";
  Loader a(mixture_options(first, 4));
  for (int i = 0; i < 30; ++i) a.next();
  const nlohmann::json saved = a.state();
  const uint64_t web = saved["sources"]["web"], code = saved["sources"]["code"];
  EXPECT_EQ(web + code, 120u);
  // Stage 2: code and a new source; web is left out.
  const std::string second = "code=" + f.parts[1] + ":0.3, books=" + f.parts[2] + ":0.7";
  Loader b(mixture_options(second, 4));
  const std::string note = b.restore(saved);
  EXPECT_NE(note.find("stage 1 from global sample 120"), std::string::npos) << note;
  EXPECT_NE(note.find("code from sample " + std::to_string(code)), std::string::npos) << note;
  EXPECT_EQ(b.stage(), 1u);
  // Stage 0 is kept in the state: where it ran and what each of its sources served.
  const nlohmann::json h = b.state()["history"];
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0]["index"], 0);
  EXPECT_EQ(h[0]["end"], 120);
  EXPECT_EQ(h[0]["sources"]["web"], web);
  EXPECT_EQ(h[0]["sources"]["code"], code);
  const std::vector<int64_t> count = rows_per_source(b, {f.parts[1], f.parts[2]}, 40, {code, 0});
  EXPECT_EQ(count[0] + count[1], 160);
  const auto usage = b.usage();
  EXPECT_EQ(usage[0].samples, code + static_cast<uint64_t>(count[0]));
  EXPECT_EQ(usage[1].samples, static_cast<uint64_t>(count[1]));
  // Its own state resumes exactly (the stage is part of it), at another world size too.
  const nlohmann::json s2 = b.state();
  EXPECT_EQ(s2["stage"]["start"], 120);
  LoaderOptions o = mixture_options(second, 2);
  o.world_size = 2;
  Loader c(o);
  EXPECT_EQ(c.restore(s2), "");
  const Batch want = b.next();
  const Batch got = c.next();
  EXPECT_EQ(row_of(got, 0), row_of(want, 0));
  EXPECT_EQ(row_of(got, 1), row_of(want, 1));
  // Back to the first mixture: web, absent from stage 1, continues from where stage 0 left it (the history),
  // and the history gets stage 1 with the samples each of its sources served within it.
  const nlohmann::json s3 = b.state();
  const uint64_t code_now = s3["sources"]["code"], books_now = s3["sources"]["books"];
  Loader d(mixture_options(first, 4));
  const std::string back = d.restore(s3);
  EXPECT_NE(back.find("web from sample " + std::to_string(web)), std::string::npos) << back;
  EXPECT_EQ(d.stage(), 2u);
  const std::vector<int64_t> again = rows_per_source(d, {f.parts[0], f.parts[1]}, 10, {web, code_now});
  EXPECT_EQ(again[0] + again[1], 40);
  const nlohmann::json h2 = d.state()["history"];
  ASSERT_EQ(h2.size(), 2u);
  EXPECT_EQ(h2[1]["stage_samples"]["code"], code_now - code);
  EXPECT_EQ(h2[1]["stage_samples"]["books"], books_now);
  EXPECT_EQ(d.usage()[0].stage_samples, static_cast<uint64_t>(again[0]));
}

}  // namespace
}  // namespace rg::data
