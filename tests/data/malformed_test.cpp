// Malformed inputs, table-driven: HDF5 datasets corrupted one way each (dtype, missing or mistyped
// datasets and attributes, offsets, lengths, mask values, empty, truncated, foreign), JSONL lines broken one
// way each, non-regular paths (FIFO, device, directory), and the whitespace trim against Python's exact set.
// Every case must end in one DataError of one line with the documented exit code: never a crash, never success.
#include "data/chat_format.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/text.h"
#include "tests/data/data_test_support.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/stat.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>

namespace rg::data {
namespace {

using test::fs::path;


// Runs f and returns the DataError it must throw; a test failure when it throws nothing or something else.
DataError error_of(const std::function<void()>& f, const std::string& name) {
  try {
    f();
  } catch (const DataError& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << name << ": not a DataError: " << e.what();
    return DataError("");
  }
  ADD_FAILURE() << name << ": accepted (a silent success)";
  return DataError("");
}

void expect_error(const std::function<void()>& f, const std::string& name, int exit_code,
                  const std::vector<std::string>& want) {
  const DataError e = error_of(f, name);
  const std::string what = e.what();
  EXPECT_EQ(e.exit_code(), exit_code) << name << ": " << what;
  EXPECT_EQ(what.find('\n'), std::string::npos) << name << ": not one line: " << what;
  EXPECT_LT(what.size(), 600u) << name << ": unbounded message";
  EXPECT_EQ(invalid_utf8_at(what), std::string::npos) << name << ": not UTF-8 text: " << what;
  for (const auto& w : want) EXPECT_NE(what.find(w), std::string::npos) << name << ": " << what << "\n lacks: " << w;
}

// ------------------------------------------------------------------------------------------------ trim

// UTF-8 of one code point, written here independently of data/text.cpp.
std::string utf8(char32_t c) {
  std::string s;
  if (c < 0x80) {
    s += static_cast<char>(c);
  } else if (c < 0x800) {
    s += static_cast<char>(0xC0 | (c >> 6)), s += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    s += static_cast<char>(0xE0 | (c >> 12)), s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (c >> 18)), s += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((c >> 6) & 0x3F)), s += static_cast<char>(0x80 | (c & 0x3F));
  }
  return s;
}

TEST(Trim, RemovesExactlyPythonsWhitespaceAtBothEnds) {
  // Python 3: [c for c in range(0x110000) if chr(c).isspace()], which Jinja's `trim` (str.strip) removes.
  const std::set<char32_t> python = {0x09,   0x0A,   0x0B,   0x0C,   0x0D,   0x1C,   0x1D,   0x1E,   0x1F,   0x20,
                                     0x85,   0xA0,   0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006,
                                     0x2007, 0x2008, 0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
  int64_t spaces = 0;
  for (char32_t c = 0; c <= 0x10FFFF; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;  // surrogates have no UTF-8 form
    const std::string ch = utf8(c);
    const bool space = python.count(c) > 0;
    spaces += space;
    ASSERT_EQ(is_space(c), space) << std::hex << "U+" << static_cast<uint32_t>(c);
    ASSERT_EQ(trim(ch + ch + "x" + ch), space ? "x" : ch + ch + "x" + ch) << std::hex << "U+" << static_cast<uint32_t>(c);
  }
  EXPECT_EQ(spaces, 29);
  EXPECT_EQ(trim(utf8(0x200B) + "x"), utf8(0x200B) + "x");  // ZERO WIDTH SPACE is not whitespace to Python
  EXPECT_EQ(trim(utf8(0x3000) + " \t" + utf8(0xA0)), "");
  EXPECT_EQ(trim("a " + utf8(0xA0) + " b"), "a " + utf8(0xA0) + " b");  // inner spaces stay
  // Ill-formed bytes are not whitespace and stop the trim (nothing beyond them is touched or misread).
  EXPECT_EQ(trim(" \x80 "), "\x80");
  EXPECT_EQ(trim("x\xC2"), "x\xC2");  // a cut-off U+00A0
  EXPECT_EQ(trim("\xC2\xA0\xA0"), "\xA0");  // U+00A0 then a stray continuation byte
}

TEST(Utf8, FirstIllFormedByteIsFound) {
  EXPECT_EQ(invalid_utf8_at("plain " + utf8(0x3000) + utf8(0x1F600)), std::string::npos);
  EXPECT_EQ(invalid_utf8_at("ab\xFF"), 2u);
  EXPECT_EQ(invalid_utf8_at("a\xC0\xAF"), 1u);          // overlong '/'
  EXPECT_EQ(invalid_utf8_at("a\xED\xA0\x80"), 1u);      // a surrogate
  EXPECT_EQ(invalid_utf8_at("\xF4\x90\x80\x80"), 0u);   // above U+10FFFF
  EXPECT_EQ(invalid_utf8_at("ok\xE3\x80"), 2u);         // cut off
}

// The HF template trims every message with Jinja's `trim`: a no-break or ideographic space at an edge must
// not become a token inside the loss mask; and text documents from every source are trimmed the same way.
TEST(Trim, ChatContentAndEveryTextSourceAreTrimmedLikeTheTemplate) {
  const path dir = test::scratch_dir("trim");
  const std::string nb = utf8(0xA0), ideo = utf8(0x3000), sep = utf8(0x2028);
  test::write_file(dir / "clean.jsonl",
                   R"({"messages": [{"role": "user", "content": "call me Ishmael"}, {"role": "model", "content": "the whale."}]})" "\n");
  test::write_file(dir / "spaced.jsonl", R"({"messages": [{"role": "user", "content": ")" + ideo + "call me Ishmael" + nb +
                                             R"("}, {"role": "model", "content": ")" + nb + "the whale." + ideo + sep + R"("}]})" "\n");
  prepare_chat({(dir / "clean.jsonl").string()}, test::prepare_options(dir / "clean.h5"));
  prepare_chat({(dir / "spaced.jsonl").string()}, test::prepare_options(dir / "spaced.h5"));
  SequenceReader clean((dir / "clean.h5").string(), "train"), spaced((dir / "spaced.h5").string(), "train");
  EXPECT_EQ(spaced.tokens(0), clean.tokens(0));

  // The same document as a whole file, a blank-line block and a JSONL field: one trimmed document each.
  const std::string doc = ideo + " the sea." + nb + "\n";
  test::write_file(dir / "doc.txt", doc);
  test::write_file(dir / "blocks.txt", "\n" + doc + "\n" + nb + "\n" + doc);  // a line of U+00A0 is blank
  test::write_file(dir / "doc.jsonl", R"({"text": ")" + ideo + " the sea." + nb + R"(\n"})" "\n");
  for (const std::string name : {"doc.txt", "blocks.txt", "doc.jsonl"}) {
    PrepareOptions o = test::prepare_options(dir / (name + ".h5"));
    o.document = "block";
    prepare_text({(dir / name).string()}, o);
    SequenceReader r(o.output, "train");
    ASSERT_GE(r.size(), 1) << name;
    for (int64_t i = 0; i < r.size(); ++i) {
      const auto t = r.tokens(i);
      EXPECT_EQ(test::tokenizer().decode({t.begin() + 1, t.end()}), "the sea.") << name << " document " << i;
    }
  }
}

// ------------------------------------------------------------------------------------------------ HDF5

// The good files every corruption starts from, made once by prepare itself.
struct Goods {
  std::string chat, text, pref;
};
const Goods& goods() {
  static const Goods g = [] {
    const path dir = test::scratch_dir("goods");
    test::write_file(dir / "c.jsonl",
                     R"({"messages": [{"role": "user", "content": "hi"}, {"role": "model", "content": "the sea."}]})" "\n"
                     R"({"messages": [{"role": "user", "content": "the whale?"}, {"role": "model", "content": "white."}]})" "\n");
    test::write_file(dir / "t.txt", "the sea.\n\ncall me Ishmael.\n");
    test::write_file(dir / "p.jsonl", R"({"prompt": "the sea?", "chosen": "deep.", "rejected": "white.", "kind": "faq"})" "\n");
    Goods g{(dir / "chat.h5").string(), (dir / "text.h5").string(), (dir / "pref.h5").string()};
    prepare_chat({(dir / "c.jsonl").string()}, test::prepare_options(g.chat));
    PrepareOptions o = test::prepare_options(g.text);
    o.document = "block";
    prepare_text({(dir / "t.txt").string()}, o);
    prepare_preference({(dir / "p.jsonl").string()}, test::prepare_options(g.pref));
    return g;
  }();
  return g;
}

// Replaces dataset `name` by a 1-D one of file type `type` holding `values` (converted by HDF5 from double).
void put_dataset(hid_t f, const char* name, hid_t type, const std::vector<double>& values, int rank = 1) {
  if (H5Lexists(f, name, H5P_DEFAULT) > 0) H5Ldelete(f, name, H5P_DEFAULT);
  const hsize_t dims[2] = {rank == 1 ? values.size() : values.size() / 2, 2};
  const hid_t space = H5Screate_simple(rank, dims, nullptr);
  const hid_t d = H5Dcreate2(f, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(d, 0) << name;
  if (!values.empty()) H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  H5Dclose(d), H5Sclose(space);
}

std::vector<double> get_dataset(hid_t f, const char* name) {
  const hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  const hid_t space = H5Dget_space(d);
  std::vector<double> v(static_cast<size_t>(H5Sget_simple_extent_npoints(space)));
  if (!v.empty()) H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Sclose(space), H5Dclose(d);
  return v;
}

// Replaces attribute `name` of object `obj` ("/" or "/train") by one of `type` with `count` values.
void put_attr(hid_t f, const char* obj, const char* name, hid_t type, const void* value, hsize_t count = 1) {
  H5Adelete_by_name(f, obj, name, H5P_DEFAULT);
  const hid_t space = count == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &count, nullptr);
  const hid_t a = H5Acreate_by_name(f, obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(a, 0) << name;
  H5Awrite(a, type, value);
  H5Aclose(a), H5Sclose(space);
}
void put_int(hid_t f, const char* obj, const char* name, int64_t v) { put_attr(f, obj, name, H5T_NATIVE_INT64, &v); }

struct Corruption {
  std::string name;
  const std::string& (*base)();
  std::function<void(hid_t)> edit;
  std::vector<std::string> want;  // besides the file's path
  enum Read { kSequences, kLoader, kPreference } read = kSequences;
};

const std::string& chat() { return goods().chat; }
const std::string& text() { return goods().text; }
const std::string& pref() { return goods().pref; }

TEST(MalformedHdf5, EachCorruptionIsOneLineExitTwo) {
  const path dir = test::scratch_dir("corrupt");
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto retype = [](const char* name, hid_t type) {
    return [name, type](hid_t f) { put_dataset(f, name, type, get_dataset(f, name)); };
  };
  auto edit = [](const char* name, std::function<void(std::vector<double>&)> change, hid_t type) {
    return [=](hid_t f) {
      std::vector<double> v = get_dataset(f, name);
      change(v);
      put_dataset(f, name, type, v);
    };
  };
  const std::vector<Corruption> table = {
      // Stored types: what HDF5 would silently convert.
      {"tokens float64", chat, retype("train/tokens", H5T_IEEE_F64LE), {"/train/tokens: stored as float64, expected int32"}},
      {"tokens int64", text, retype("train/tokens", H5T_STD_I64LE), {"/train/tokens: stored as int64, expected int32"}},
      {"tokens uint32", text, retype("train/tokens", H5T_STD_U32LE), {"/train/tokens: stored as uint32, expected int32"}},
      {"tokens big-endian int16", text, retype("train/tokens", H5T_STD_I16BE), {"stored as int16, expected int32"}},
      {"offsets int32", chat, retype("train/offsets", H5T_STD_I32LE), {"/train/offsets: stored as int32, expected int64"}},
      {"offsets float32", text, retype("train/offsets", H5T_IEEE_F32LE), {"/train/offsets: stored as float32"}},
      {"mask int8", chat, retype("train/loss_mask", H5T_STD_I8LE), {"/train/loss_mask: stored as int8, expected uint8"}},
      {"mask float32", chat, retype("train/loss_mask", H5T_IEEE_F32LE), {"/train/loss_mask: stored as float32"}},
      {"mask -1 as int8", chat, edit("train/loss_mask", [](auto& v) { v[0] = -1; }, H5T_STD_I8LE), {"stored as int8"}},
      {"pair kind float64", pref, retype("train/kind", H5T_IEEE_F64LE), {"/train/kind: stored as float64"},
       Corruption::kPreference},
      {"tokens 2-D", text, [](hid_t f) { put_dataset(f, "train/tokens", H5T_STD_I32LE, {2, 5, 6, 7}, 2); },
       {"/train/tokens: a 2-D dataset, expected 1-D"}},
      // Missing pieces.
      {"no tokens", chat, [](hid_t f) { H5Ldelete(f, "train/tokens", H5P_DEFAULT); }, {"missing dataset 'tokens'"}},
      {"no offsets", text, [](hid_t f) { H5Ldelete(f, "train/offsets", H5P_DEFAULT); }, {"missing dataset 'offsets'"}},
      {"chat without loss_mask", chat, [](hid_t f) { H5Ldelete(f, "train/loss_mask", H5P_DEFAULT); },
       {"/train: missing dataset 'loss_mask'", "user turns"}},
      {"text with a loss_mask", text,
       [](hid_t f) { put_dataset(f, "train/loss_mask", H5T_STD_U8LE, std::vector<double>(get_dataset(f, "train/tokens").size(), 1)); },
       {"unexpected dataset 'loss_mask' in a text dataset"}},
      {"no validation group", text, [](hid_t f) { H5Ldelete(f, "validation", H5P_DEFAULT); }, {"missing group 'validation'"}},
      {"no pair kinds", pref, [](hid_t f) { H5Ldelete(f, "train/kind", H5P_DEFAULT); }, {"missing dataset 'train/kind'"},
       Corruption::kPreference},
      {"no vocab_size", chat, [](hid_t f) { H5Adelete(f, "vocab_size"); }, {"missing attribute 'vocab_size'"}},
      {"no pad_id", chat, [](hid_t f) { H5Adelete(f, "pad_id"); }, {"missing attribute 'pad_id'"}},
      {"no kind", chat, [](hid_t f) { H5Adelete(f, "kind"); }, {"missing attribute 'kind'"}},
      {"no split counts", chat, [](hid_t f) { H5Adelete_by_name(f, "train", "sequences", H5P_DEFAULT); },
       {"/train: missing attribute 'sequences'"}},
      // Attributes of the wrong type or range.
      {"vocab_size float", chat, [](hid_t f) { const double v = 320; put_attr(f, "/", "vocab_size", H5T_NATIVE_DOUBLE, &v); },
       {"attribute 'vocab_size' is float64, expected an integer"}},
      {"vocab_size array", chat, [](hid_t f) { const int64_t v[2] = {320, 320}; put_attr(f, "/", "vocab_size", H5T_NATIVE_INT64, v, 2); },
       {"attribute 'vocab_size' holds 2 values, expected one"}},
      {"vocab_size 0", chat, [](hid_t f) { put_int(f, "/", "vocab_size", 0); }, {"attribute 'vocab_size' is 0"}},
      {"vocab_size over int32", chat, [](hid_t f) { put_int(f, "/", "vocab_size", int64_t{1} << 40); },
       {"attribute 'vocab_size' is 1099511627776"}},
      {"pad_id >= vocab_size", chat, [](hid_t f) { put_int(f, "/", "pad_id", 320); },
       {"attribute 'pad_id' is 320, expected -1 (none) or 0 to vocab_size - 1 (319)"}},
      {"eos_id -2", chat, [](hid_t f) { put_int(f, "/", "eos_id", -2); }, {"attribute 'eos_id' is -2"}},
      {"bos_id absent (-1)", text, [](hid_t f) { put_int(f, "/", "bos_id", -1); }, {"attribute 'bos_id' is -1"}},
      {"chat without end_of_turn", chat, [](hid_t f) { put_int(f, "/", "end_of_turn_id", -1); },
       {"attribute 'end_of_turn_id' is -1", "for a chat dataset"}},
      {"format_version string", chat,
       [](hid_t f) {
         const hid_t t = H5Tcopy(H5T_C_S1);
         H5Tset_size(t, 1);
         put_attr(f, "/", "format_version", t, "1");
         H5Tclose(t);
       },
       {"attribute 'format_version' is a fixed-length string, expected an integer"}},
      {"format_version 2", chat, [](hid_t f) { put_int(f, "/", "format_version", 2); }, {"format version 2 is not one this build reads"}},
      {"kind integer", chat, [](hid_t f) { put_int(f, "/", "kind", 1); }, {"attribute 'kind' is int64, expected a fixed-length string"}},
      {"kind unknown", chat,
       [](hid_t f) {
         const hid_t t = H5Tcopy(H5T_C_S1);
         H5Tset_size(t, 5);
         put_attr(f, "/", "kind", t, "audio");
         H5Tclose(t);
       },
       {"unknown dataset kind 'audio'"}},
      {"validation_fraction NaN", chat, [&](hid_t f) { put_attr(f, "/", "validation_fraction", H5T_NATIVE_DOUBLE, &nan); },
       {"attribute 'validation_fraction' is nan"}},
      {"sequences negative", chat, [](hid_t f) { put_int(f, "train", "sequences", -1); }, {"/train: negative attribute"}},
      {"sequences disagree", chat, [](hid_t f) { put_int(f, "train", "sequences", 3); },
       {"/train: holds 2 sequences", "the split's attributes say 3"}},
      {"tokens count disagrees", text, [](hid_t f) { put_int(f, "train", "tokens", 1); }, {"the split's attributes say 2 and 1"}},
      // Offsets and lengths.
      {"offsets decreasing inside", chat,
       edit("train/offsets", [](auto& v) { v.insert(v.begin() + 1, {5, 3}); }, H5T_STD_I64LE),
       {"/train/offsets[2]: decreasing offset"}},
      {"offsets past the end", chat, edit("train/offsets", [](auto& v) { v.back() += 7; }, H5T_STD_I64LE),
       {"/train/offsets: does not span tokens"}},
      {"offsets not from 0", text, edit("train/offsets", [](auto& v) { v[0] = 1; }, H5T_STD_I64LE),
       {"/train/offsets: does not span tokens"}},
      {"offsets longer than the tokens", text,
       [](hid_t f) { put_dataset(f, "train/offsets", H5T_STD_I64LE, std::vector<double>(get_dataset(f, "train/tokens").size() + 2)); },
       {"/train/offsets: ", "entries for", "tokens (at most one more"}},
      {"offsets empty", text, [](hid_t f) { put_dataset(f, "train/offsets", H5T_STD_I64LE, {}); }, {"/train/offsets: does not span"}},
      {"mask shorter", chat, edit("train/loss_mask", [](auto& v) { v.pop_back(); }, H5T_STD_U8LE),
       {"/train/loss_mask: length differs from tokens"}},
      {"mask value 2", chat, edit("train/loss_mask", [](auto& v) { v[3] = 2; }, H5T_STD_U8LE),
       {"/train/loss_mask[3]: value 2, expected 0 or 1"}},
      {"mask value 255", chat, edit("train/loss_mask", [](auto& v) { v.back() = 255; }, H5T_STD_U8LE), {"value 255, expected 0 or 1"}},
      {"pair counts differ", pref,
       [](hid_t f) { put_dataset(f, "train/kind", H5T_STD_I32LE, {0, 0}); },
       {"prompt, chosen, rejected and kind counts differ"}, Corruption::kPreference},
      {"pair kind index 7", pref, [](hid_t f) { put_dataset(f, "train/kind", H5T_STD_I32LE, {7}); },
       {"/train/kind[0]: 7 names no kind"}, Corruption::kPreference},
      // Token values (read when rows are read).
      {"token id = vocab_size", text, edit("train/tokens", [](auto& v) { v[1] = 320; }, H5T_STD_I32LE),
       {"/train/tokens[1]: token id 320 is outside the vocabulary (vocab_size 320)"}},
      {"token id negative", chat, edit("train/tokens", [](auto& v) { v[2] = -5; }, H5T_STD_I32LE),
       {"/train/tokens[2]: token id -5"}},
      // Empty data.
      {"empty train split", text,
       [](hid_t f) {
         put_dataset(f, "train/tokens", H5T_STD_I32LE, {}), put_dataset(f, "train/offsets", H5T_STD_I64LE, {0});
         put_int(f, "train", "sequences", 0), put_int(f, "train", "tokens", 0);
       },
       {"split 'train' has 0 documents and 0 tokens"}, Corruption::kLoader},
      {"tokens emptied", chat, [](hid_t f) { put_dataset(f, "train/tokens", H5T_STD_I32LE, {}); }, {"/train/offsets: 3 entries for 0 tokens"}},
      // A kind the reader does not serve.
      {"preference as a token stream", pref, [](hid_t) {}, {"a preference dataset", "a text or chat dataset was expected"},
       Corruption::kLoader},
  };
  int n = 0;
  for (const Corruption& c : table) {
    const std::string file = (dir / ("case" + std::to_string(n++) + ".h5")).string();
    test::fs::copy_file(c.base(), file);
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0) << c.name;
    c.edit(f);
    H5Fclose(f);
    std::vector<std::string> want = c.want;
    want.push_back(file);
    expect_error(
        [&] {
          if (c.read == Corruption::kPreference) return void(read_preference(file));
          if (c.read == Corruption::kLoader) {
            LoaderOptions o;
            o.path = file, o.seq_len = 4, o.micro_batch = 1;
            return void(Loader(o));
          }
          SequenceReader r(file, "train");
          for (int64_t i = 0; i < r.size(); ++i) {
            std::vector<int32_t> t(r.length(i));
            std::vector<uint8_t> m(r.length(i));
            r.read(i, 0, r.length(i), t.data(), m.data());
          }
        },
        c.name, 2, want);
  }
}

TEST(MalformedHdf5, DamagedAndForeignFilesAreExitTwo) {
  const path dir = test::scratch_dir("damaged");
  const std::string good = chat();
  struct Case {
    std::string name;
    std::function<void(const std::string&)> make;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"truncated to half", [&](const std::string& f) { test::fs::copy_file(good, f), test::fs::resize_file(f, test::fs::file_size(good) / 2); },
       "cannot open as HDF5 (the file is truncated or damaged)"},
      {"truncated to 100 bytes", [&](const std::string& f) { test::fs::copy_file(good, f), test::fs::resize_file(f, 100); },
       "cannot open as HDF5"},
      {"empty file", [](const std::string& f) { test::write_file(f, ""); }, "not an HDF5 file"},
      {"JSON, not HDF5", [](const std::string& f) { test::write_file(f, "{\"tokens\": [1, 2]}\n"); }, "not an HDF5 file"},
      {"foreign HDF5", [](const std::string& f) { H5Fclose(H5Fcreate(f.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)); },
       "not an rgemma token dataset"},
  };
  for (const Case& c : cases) {
    const std::string file = (dir / (c.name + ".h5")).string();
    c.make(file);
    expect_error([&] { read_dataset_info(file); }, c.name, 2, {file + ": " + c.want});
    expect_error([&] { SequenceReader(file, "train"); }, c.name, 2, {file + ": " + c.want});
  }
}

// ------------------------------------------------------------------------------------------------ JSONL

TEST(MalformedJsonl, EachBadLineIsOneLineExitOneNamingFileLineAndField) {
  const path dir = test::scratch_dir("jsonl");
  const std::string good = R"({"messages": [{"role": "user", "content": "hi"}, {"role": "model", "content": "the sea."}]})";
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  struct Case {
    std::string name, kind, line;  // kind: chat, text, preference, prompts
    std::vector<std::string> want;  // besides "<file>:2: "
  };
  const std::vector<Case> table = {
      {"not JSON", "chat", "messages: hi", {"malformed JSON"}},
      {"cut off", "chat", R"({"messages": [{"role": "user", "content": "hi"})", {"malformed JSON"}},
      {"a long malformed string", "chat", R"({"messages": ")" + std::string(1 << 20, 'a'), {"malformed JSON"}},
      {"NaN literal", "chat", R"({"messages": NaN})", {"malformed JSON"}},
      {"invalid UTF-8", "chat", "{\"messages\": [{\"role\": \"user\", \"content\": \"h\xFFi\"}]}", {"malformed JSON", "UTF-8", "h\\xFF"}},
      {"lone surrogate", "chat", R"({"messages": [{"role": "user", "content": "\udc00"}]})", {"malformed JSON"}},
      {"a list per line", "chat", "[1, 2]", {"expected a JSON object per line, got an array of 2 values"}},
      {"a string per line", "chat", R"("hello")", {"expected a JSON object per line, got \"hello\""}},
      {"missing messages", "chat", R"({"conversation": []})", {"missing field \"messages\""}},
      {"messages a string", "chat", R"({"messages": "hi"})", {"'messages' must be a list", "not \"hi\""}},
      {"messages nested deep", "chat", R"({"messages": )" + deep + "}", {"messages[0]: expected an object", "an array of 1 values"}},
      {"message a number", "chat", R"({"messages": [7]})", {"messages[0]: expected an object", "got 7"}},
      {"role missing", "chat", R"({"messages": [{"content": "hi"}]})", {"messages[0]: missing string field \"role\""}},
      {"role a number", "chat", R"({"messages": [{"role": 1, "content": "hi"}]})", {"messages[0].role: expected a string, got 1"}},
      {"content a list of parts", "chat", R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})",
       {"messages[0].content: expected a string, got an array of 1 values"}},
      {"content nested deep", "chat", R"({"messages": [{"role": "user", "content": )" + deep + "}]}",
       {"messages[0].content: expected a string, got an array of 1 values"}},
      {"content null", "chat", R"({"messages": [{"role": "user", "content": null}]})", {"messages[0].content: expected a string, got null"}},
      {"role with a line break", "chat", R"({"messages": [{"role": "user\nmodel", "content": "hi"}]})",
       {"unknown role '\"user\\nmodel\"'"}},
      {"role very long", "chat", R"({"messages": [{"role": ")" + std::string(5000, 'r') + R"(", "content": "hi"}]})",
       {"unknown role", "(5002 chars)"}},
      {"model first", "chat", R"({"messages": [{"role": "model", "content": "a"}, {"role": "user", "content": "b"}]})",
       {"must start with a user turn"}},
      {"system after start", "chat",
       R"({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}, {"role": "model", "content": "c"}]})",
       {"a system message after the conversation started"}},
      {"two model turns", "chat",
       R"({"messages": [{"role": "user", "content": "a"}, {"role": "model", "content": "b"}, {"role": "assistant", "content": "c"}]})",
       {"two model turns in a row"}},
      {"ends with the user", "chat", R"({"messages": [{"role": "user", "content": "a"}]})", {"ends with a user turn"}},
      {"only whitespace content", "chat",
       "{\"messages\": [{\"role\": \"user\", \"content\": \"\xE3\x80\x80\\u00a0\"}, {\"role\": \"model\", \"content\": \"b\"}]}",
       {"message 1 (user): empty content"}},
      {"no turns", "chat", R"({"messages": []})", {"no user or model turns"}},
      {"text field a number", "text", R"({"text": 12})", {"text: expected a string, got 12"}},
      {"text field nested deep", "text", R"({"text": )" + deep + "}", {"text: expected a string, got an array of 1 values"}},
      {"text field missing", "text", R"({"body": "x"})", {"missing string field \"text\""}},
      {"prompt a number", "preference", R"({"prompt": 3, "chosen": "a", "rejected": "b"})",
       {"prompt: expected a string or a list of messages, got 3"}},
      {"chosen an object", "preference", R"({"prompt": "a", "chosen": {"x": 1}, "rejected": "b"})",
       {"chosen: expected a string or a list holding one assistant message, got an object with 1 keys"}},
      {"chosen two messages", "preference",
       R"({"prompt": "a", "chosen": [{"role": "assistant", "content": "x"}, {"role": "assistant", "content": "y"}], "rejected": "b"})",
       {"chosen: expected one assistant message"}},
      {"rejected missing", "preference", R"({"prompt": "a", "chosen": "b"})", {"missing field \"rejected\""}},
      {"kind a number", "preference", R"({"prompt": "a", "chosen": "b", "rejected": "c", "kind": 1.5})",
       {"kind: expected a string, got 1.5"}},
      {"kind with a line break", "preference", R"({"prompt": "a", "chosen": "b", "rejected": "c", "kind": "x\ny"})",
       {"kind: a label may not contain a line break"}},
      {"prompt ends with the model", "prompts",
       R"({"prompt": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})", {"must end with a user turn"}},
  };
  const std::map<std::string, std::string> good_line = {
      {"chat", good}, {"text", R"({"text": "the sea."})"},
      {"preference", R"({"prompt": "a", "chosen": "the sea.", "rejected": "the whale."})"}, {"prompts", R"({"prompt": "a"})"}};
  int n = 0;
  for (const Case& c : table) {
    const std::string file = (dir / ("case" + std::to_string(n++) + ".jsonl")).string();
    test::write_file(file, good_line.at(c.kind) + "\n" + c.line + "\n");
    std::vector<std::string> want = c.want;
    want.push_back(file + ":2: ");
    const PrepareOptions o = test::prepare_options(dir / "out.h5");
    expect_error(
        [&] {
          if (c.kind == "chat") prepare_chat({file}, o);
          if (c.kind == "text") prepare_text({file}, o);
          if (c.kind == "preference") prepare_preference({file}, o);
          if (c.kind == "prompts") prepare_prompts({file}, o);
        },
        c.name, 1, want);
    EXPECT_FALSE(test::fs::exists(dir / "out.h5")) << c.name;
  }
  // Blank lines (JSON whitespace only) are skipped, not errors.
  test::write_file(dir / "blank.jsonl", "\n  \t\r\n" + good + "\n\n");
  EXPECT_EQ(prepare_chat({(dir / "blank.jsonl").string()}, test::prepare_options(dir / "blank.h5")).train.sequences, 1);
}

TEST(MalformedText, IllFormedUtf8IsNamedByLine) {
  const path dir = test::scratch_dir("utf8");
  test::write_file(dir / "latin1.txt", "the sea.\n\ncaf\xE9 and the whale.\n");
  for (const std::string mode : {"file", "block"}) {
    PrepareOptions o = test::prepare_options(dir / "out.h5");
    o.document = mode;
    expect_error([&] { prepare_text({(dir / "latin1.txt").string()}, o); }, "latin1 " + mode, 1,
                 {(dir / "latin1.txt").string() + ":3: not UTF-8 (byte 0xE9 at column 4)"});
  }
}

// ------------------------------------------------------------------------------------------------ paths

TEST(NonRegularPaths, AreRefusedWithExitTwoAndNeverOpened) {
  const path dir = test::scratch_dir("paths");
  const std::string fifo = (dir / "pipe.jsonl").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  test::fs::create_directories(dir / "corpus" / "sub");
  test::write_file(dir / "corpus" / "a.txt", "the sea.\n");
  const std::string inner = (dir / "corpus" / "sub" / "pipe.txt").string();
  ASSERT_EQ(::mkfifo(inner.c_str(), 0600), 0);
  const std::string folder = (dir / "folder.h5").string();
  test::fs::create_directories(folder);
  test::write_file(dir / "ok.jsonl", R"({"messages": [{"role": "user", "content": "hi"}, {"role": "model", "content": "the sea."}]})" "\n");
  const std::string ok = (dir / "ok.jsonl").string();
  const PrepareOptions o = test::prepare_options(dir / "out.h5");

  // A FIFO would block the open (no writer ever comes): each of these returning at all shows it was not opened.
  expect_error([&] { prepare_chat({fifo}, o); }, "FIFO input", 2, {fifo + ": is a FIFO (named pipe), not a regular file"});
  expect_error([&] { prepare_text({(dir / "corpus").string()}, o); }, "FIFO in a directory", 2,
               {inner + ": is a FIFO (named pipe), not a regular file"});
  expect_error([&] { prepare_text({"/dev/zero"}, o); }, "device input", 2, {"/dev/zero: is a device, not a regular file"});
  expect_error([&] { prepare_chat({(dir / "missing.jsonl").string()}, o); }, "missing input", 2, {"missing.jsonl: no such file"});
  test::fs::create_directories(dir / "linked" / "real");
  test::write_file(dir / "linked" / "real" / "a.txt", "the sea.\n");
  test::fs::create_directory_symlink(dir / "linked" / "real", dir / "linked" / "alias");
  expect_error([&] { prepare_text({(dir / "linked").string()}, o); }, "folder symlink in a directory", 2,
               {(dir / "linked" / "alias").string() + ": a symbolic link to a folder"});
  PrepareOptions t = o;
  t.tokenizer = fifo;
  expect_error([&] { prepare_chat({ok}, t); }, "FIFO tokenizer", 2, {fifo + ": is a FIFO (named pipe), not a regular file; expected a sentencepiece model"});
  t.tokenizer = "/dev/zero";
  expect_error([&] { prepare_chat({ok}, t); }, "device tokenizer", 2, {"/dev/zero: is a device, not a regular file"});
  t.tokenizer = dir.string();
  expect_error([&] { prepare_chat({ok}, t); }, "directory tokenizer", 2, {dir.string() + ": is a folder, not a file"});
  t.tokenizer = ok;
  expect_error([&] { prepare_chat({ok}, t); }, "not a tokenizer", 2, {ok + ": not a sentencepiece model"});
  expect_error([&] { tokenizer_id(fifo); }, "FIFO tokenizer id", 2, {fifo + ": is a FIFO (named pipe), not a regular file"});
  PrepareOptions out = o;
  out.output = "/dev/null";
  expect_error([&] { prepare_chat({ok}, out); }, "device output", 2, {"/dev/null: is a device, not a regular file"});
  EXPECT_TRUE(test::fs::is_character_file("/dev/null"));
  out.output = folder;
  expect_error([&] { prepare_chat({ok}, out); }, "directory output", 2, {folder + ": is a folder, not a file"});

  for (const std::string& p : {fifo, std::string("/dev/zero"), folder}) {
    expect_error([&] { read_dataset_info(p); }, "dataset " + p, 2, {p + ": is a"});
    expect_error([&] { SequenceReader(p, "train"); }, "reader " + p, 2, {p + ": is a"});
    LoaderOptions lo;
    lo.path = p, lo.seq_len = 4, lo.micro_batch = 1;
    expect_error([&] { Loader l(lo); }, "loader " + p, 2, {p + ": is a"});
  }
}

}  // namespace
}  // namespace rg::data
