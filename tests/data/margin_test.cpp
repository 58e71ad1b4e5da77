// prepare preference's optional per-pair `margin` field: stored as float64 beside `kind` (NaN for none) and
// read back as PreferencePair::margin; NaN, out-of-range or non-numeric margins are refused naming file:line.
// Owned by the RLHF work (docs/rlhf.md): the reward loss subtracts the margin per pair.
#include "data/prepare.h"
#include "tests/data/data_test_support.h"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <limits>
#include <string>
#include <vector>

namespace rg::data {
namespace {

using test::fs::path;

PrepareOptions margin_opts(const path& out) {
  PrepareOptions o;
  o.tokenizer = test::tokenizer_path();
  o.output = out.string();
  o.validation_fraction = 0;
  return o;
}

TEST(PreferenceMargin, StoredPerPairAndAbsentWhereNotGiven) {
  const path dir = test::scratch_dir("margin");
  test::write_file(dir / "pref.jsonl",
                   R"({"prompt": "the sea?", "chosen": "deep.", "rejected": "white.", "margin": 2.5})" "\n"
                   R"({"prompt": "the ship?", "chosen": "a boat.", "rejected": "a whale."})" "\n"
                   R"({"prompt": "the wind?", "chosen": "a storm.", "rejected": "the sea.", "margin": null})" "\n"
                   R"({"prompt": "the whale?", "chosen": "white.", "rejected": "little.", "margin": -1e-3})" "\n");
  prepare_preference({(dir / "pref.jsonl").string()}, margin_opts(dir / "pref.h5"));
  const auto pairs = read_preference((dir / "pref.h5").string());
  ASSERT_EQ(pairs.size(), 4u);
  ASSERT_TRUE(pairs[0].margin.has_value());
  EXPECT_EQ(*pairs[0].margin, 2.5);  // float64 on disk: exact
  EXPECT_FALSE(pairs[1].margin.has_value());
  EXPECT_FALSE(pairs[2].margin.has_value());  // null is "no margin", as pandas writes a missing value
  ASSERT_TRUE(pairs[3].margin.has_value());
  EXPECT_EQ(*pairs[3].margin, -1e-3);
}

void expect_refused_at_line_2(const std::string& line, const std::string& want) {
  const path dir = test::scratch_dir("margin_bad");
  test::write_file(dir / "pref.jsonl", R"({"prompt": "the sea?", "chosen": "deep.", "rejected": "white."})" "\n" + line + "\n");
  try {
    prepare_preference({(dir / "pref.jsonl").string()}, margin_opts(dir / "pref.h5"));
    ADD_FAILURE() << "accepted: " << line;
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find((dir / "pref.jsonl").string() + ":2: " + want), std::string::npos) << msg;
  }
  EXPECT_FALSE(test::fs::exists(dir / "pref.h5"));
}

TEST(PreferenceMargin, NonFiniteOrNonNumericIsRefusedWithFileAndLine) {
  // JSON has no NaN/inf literal: NaN is malformed, and a number beyond float64 is refused by the parser
  // (nlohmann's out_of_range, which escaped as an unnamed exception before prepare caught it per line).
  expect_refused_at_line_2(R"({"prompt": "a", "chosen": "b", "rejected": "c", "margin": 1e999})",
                           "malformed JSON: number overflow");
  expect_refused_at_line_2(R"({"prompt": "a", "chosen": "b", "rejected": "c", "margin": -1e999})",
                           "malformed JSON: number overflow");
  expect_refused_at_line_2(R"({"prompt": "a", "chosen": "b", "rejected": "c", "margin": NaN})", "malformed JSON");
  expect_refused_at_line_2(R"({"prompt": "a", "chosen": "b", "rejected": "c", "margin": "2"})",
                           "margin: expected a number");
  expect_refused_at_line_2(R"({"prompt": "a", "chosen": "b", "rejected": "c", "margin": [1]})",
                           "margin: expected a number");
}

TEST(PreferenceMargin, AnInfiniteMarginInTheFileIsRefusedNamingTheElement) {
  // prepare never writes inf; an edited or damaged file could, and it would make the loss infinite.
  const path dir = test::scratch_dir("margin_inf");
  test::write_file(dir / "pref.jsonl",
                   R"({"prompt": "the sea?", "chosen": "deep.", "rejected": "white.", "margin": 1})" "\n"
                   R"({"prompt": "the ship?", "chosen": "a boat.", "rejected": "a whale.", "margin": 2})" "\n");
  prepare_preference({(dir / "pref.jsonl").string()}, margin_opts(dir / "pref.h5"));
  const std::string file = (dir / "pref.h5").string();
  {
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hid_t d = H5Dopen2(f, "train/margin", H5P_DEFAULT);
    ASSERT_GE(d, 0);
    const std::vector<double> values = {1.0, std::numeric_limits<double>::infinity()};
    ASSERT_GE(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
    H5Dclose(d), H5Fclose(f);
  }
  try {
    read_preference(file);
    ADD_FAILURE() << "an infinite margin was read";
  } catch (const BadDataFile& e) {
    EXPECT_NE(std::string(e.what()).find(file + ":/train/margin[1]: infinite margin"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace rg::data
