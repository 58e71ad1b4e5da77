// prepare text in bounded memory on several threads (data/text_stream.h): where long documents are cut, that
// the cut pieces rebuild the trimmed document, that they tokenize to the ids of the whole document (for a
// line-trained tokenizer), that file and block documents stream through with the old whole-file reading as
// the reference, that any thread count writes byte-identical files, and that bad UTF-8 beyond the first
// read block is located exactly.
#include "data/prepare.h"
#include "data/text.h"
#include "data/text_stream.h"
#include "tests/data/data_test_support.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace rg::data {
namespace {

using test::fs::path;

std::string stream_test_read(const path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Every document of a text dataset split, as token lists.
std::vector<std::vector<int32_t>> stream_test_documents(const path& file, const std::string& split = "train") {
  SequenceReader r(file.string(), split);
  std::vector<std::vector<int32_t>> out;
  for (int64_t i = 0; i < r.size(); ++i) out.push_back(r.tokens(i));
  return out;
}

// The reference reading of prepare text before streaming: the whole file, getline, blocks joined by "\n".
std::vector<std::string> stream_test_reference_documents(const path& file, const std::string& mode) {
  std::ifstream in(file, std::ios::binary);
  std::vector<std::string> docs;
  if (mode == "file") {
    docs.push_back(trim(stream_test_read(file)));
  } else {
    std::string line, block;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (trim(line).empty()) {
        docs.push_back(trim(block)), block.clear();
      } else {
        block += (block.empty() ? "" : "\n") + line;
      }
    }
    docs.push_back(trim(block));
  }
  std::vector<std::string> kept;
  for (auto& d : docs) {
    if (!d.empty()) kept.push_back(d);
  }
  return kept;
}

std::vector<int32_t> stream_test_encode(const std::string& doc) {
  std::vector<int32_t> ids = {test::tokenizer().bos_id()};
  const auto body = test::tokenizer().encode(doc);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

// Generated text of about `bytes` bytes: lines of words, blank lines, CRLF endings, a very long line,
// trailing spaces and non-ASCII whitespace at line ends, and a stretch without any space.
std::string stream_test_text(size_t bytes, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string text = " \u3000\n";  // leading whitespace, an ideographic space included
  while (text.size() < bytes) {
    const int kind = static_cast<int>(rng() % 20);
    if (kind == 0) {
      text += "\n";  // a blank line: a new block
    } else if (kind == 1) {
      for (int w = 0; w < 3000; ++w) text += test::sentence(rng, 1) + " ";  // one line of ~20 KB
      text += "\n";
    } else if (kind == 2) {
      text += test::sentence(rng) + "\r\n";
    } else if (kind == 3) {
      text += test::sentence(rng) + "  \u00a0\n";
    } else if (kind == 4) {
      text += std::string(9000, 'w') + "\n";  // no space to cut at
    } else {
      text += test::sentence(rng) + "\n";
    }
  }
  return text + "\n \n";
}

TEST(SegmentCut, PrefersALineBreakAfterText) {
  EXPECT_EQ(segment_cut("abc def\nghi jkl", 12), 7u);      // before the '\n'
  EXPECT_EQ(segment_cut("abc def \nghi jkl", 12), 12u);    // not after a space: before the space, "ghi| jkl"
  EXPECT_EQ(segment_cut("abcdefgh ijk", 10), 8u);          // no line break: before the space
  EXPECT_EQ(segment_cut("abcdefghijkl", 8), 8u);           // neither: at the limit
  EXPECT_EQ(segment_cut("ab\u00e9\u00e9\u00e9\u00e9", 4), 4u);  // 'é' is 2 bytes: never inside one
  EXPECT_EQ(segment_cut("ab\u00e9\u00e9\u00e9\u00e9", 5), 4u);
  EXPECT_EQ(segment_cut("\n      x", 4), 8u);              // only whitespace before the limit: after the x
  EXPECT_EQ(segment_cut("\n       ", 4), std::string::npos);
  // The pieces never end in whitespace, with non-ASCII spaces at the end as well.
  EXPECT_EQ(segment_cut("abcd\u00a0\n efgh", 8), 4u);
}

TEST(DocumentSegmenter, PiecesRebuildTheTrimmedDocumentAndStayUnderTheLimit) {
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    const std::string doc = stream_test_text(200000, seed);
    std::mt19937 rng(seed);
    std::vector<TextSegment> got;
    DocumentSegmenter segmenter(4096, [&](TextSegment&& s) { got.push_back(std::move(s)); });
    for (size_t at = 0; at < doc.size();) {  // fed in random pieces of whole characters (all ASCII but
      size_t n = std::min<size_t>(doc.size() - at, 1 + rng() % 7000);  // a few multi-byte spaces)
      while (at + n < doc.size() && (static_cast<unsigned char>(doc[at + n]) & 0xC0) == 0x80) ++n;
      segmenter.append(std::string_view(doc).substr(at, n));
      at += n;
    }
    ASSERT_TRUE(segmenter.end());
    std::string joined;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].first, i == 0);
      EXPECT_EQ(got[i].last, i + 1 == got.size());
      EXPECT_LE(got[i].text.size(), 4096u);
      joined += got[i].text;
    }
    EXPECT_GT(got.size(), 40u);
    EXPECT_EQ(joined, trim(doc));
  }
  DocumentSegmenter empty(4096, [](TextSegment&&) { ADD_FAILURE() << "a whitespace document emitted a piece"; });
  empty.append(" \n\u3000\t");
  EXPECT_FALSE(empty.end());
}

// The cuts fall where a line-trained tokenizer has no piece across (a line break, or a space starting a
// word), so a long document's ids are those of the whole document encoded at once.
TEST(PrepareStream, LongDocumentsTokenizeAsTheWholeDocumentAndFileOrBlockReadAsBefore) {
  const path dir = test::scratch_dir("stream_docs");
  test::write_file(dir / "big.txt", stream_test_text(5 << 18, 7));  // 1.25 MiB: over one 1 MiB read block
  for (const std::string mode : {"file", "block"}) {
    PrepareOptions o = test::prepare_options(dir / (mode + ".h5"));
    o.document = mode, o.segment_bytes = 4096, o.threads = 2;
    prepare_text({(dir / "big.txt").string()}, o);
    const auto want = stream_test_reference_documents(dir / "big.txt", mode);
    const auto got = stream_test_documents(dir / (mode + ".h5"));
    ASSERT_EQ(got.size(), want.size()) << mode;
    for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], stream_test_encode(want[i])) << mode << " document " << i;
    if (mode == "block") EXPECT_GT(got.size(), 20u);  // about one line in 20 is blank
  }
}

TEST(PrepareStream, AnyThreadCountWritesTheSameBytes) {
  const path dir = test::scratch_dir("stream_threads");
  test::write_file(dir / "a.txt", stream_test_text(400000, 3));
  test::write_file(dir / "b.txt", stream_test_text(300000, 4));
  std::string jsonl;
  std::mt19937 rng(5);
  for (int i = 0; i < 500; ++i) jsonl += R"({"text": ")" + test::sentence(rng, 1 + static_cast<int>(rng() % 40)) + "\"}\n";
  test::write_file(dir / "c.jsonl", jsonl);
  for (const std::string mode : {"file", "block"}) {
    std::string reference;
    for (int threads : {1, 2, 3}) {
      const path out = dir / (mode + std::to_string(threads) + ".h5");
      PrepareOptions o = test::prepare_options(out);
      o.document = mode, o.threads = threads, o.validation_fraction = 0.1, o.segment_bytes = 2048;
      const PrepareSummary s = prepare_text({(dir / "a.txt").string(), (dir / "c.jsonl").string(), (dir / "b.txt").string()}, o);
      EXPECT_GT(s.validation.sequences, 0);
      const std::string bytes = stream_test_read(out);
      ASSERT_GT(bytes.size(), 1000u);
      if (threads == 1) {
        reference = bytes;
      } else {
        EXPECT_TRUE(bytes == reference) << mode << ": " << threads << " threads wrote other bytes than 1";
      }
    }
  }
}

TEST(PrepareStream, BadUtf8BeyondTheFirstBlockIsLocated) {
  const path dir = test::scratch_dir("stream_utf8");
  std::string text;
  int64_t lines = 0;
  while (text.size() < (size_t{3} << 19)) text += "the whale and the sea.\n", ++lines;  // 1.5 MiB
  text += "call me \xE9 Ishmael\n";
  for (const std::string mode : {"file", "block"}) {
    test::write_file(dir / "bad.txt", text);
    PrepareOptions o = test::prepare_options(dir / "bad.h5");
    o.document = mode;
    try {
      prepare_text({(dir / "bad.txt").string()}, o);
      ADD_FAILURE() << "accepted";
    } catch (const DataError& e) {
      const std::string want = (dir / "bad.txt").string() + ":" + std::to_string(lines + 1) + ": not UTF-8 (byte 0xE9 at column 9)";
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
    EXPECT_FALSE(test::fs::exists(dir / "bad.h5"));
    // A file that ends inside a multi-byte character (its last byte read alone).
    test::write_file(dir / "bad.txt", std::string(1 << 20, 'a') + "\xE2\x80");
    EXPECT_THROW(prepare_text({(dir / "bad.txt").string()}, o), DataError);
  }
}

TEST(PrepareStream, ProgressCountsEveryByteAndToken) {
  const path dir = test::scratch_dir("stream_progress");
  test::write_file(dir / "a.txt", stream_test_text(300000, 9));
  PrepareOptions o = test::prepare_options(dir / "a.h5");
  o.document = "block", o.threads = 2;
  PrepareProgress last;
  int calls = 0;
  o.progress = [&](const PrepareProgress& p) { last = p, ++calls; };
  const PrepareSummary s = prepare_text({(dir / "a.txt").string()}, o);
  EXPECT_TRUE(last.done);
  EXPECT_EQ(last.bytes_done, static_cast<int64_t>(test::fs::file_size(dir / "a.txt")));
  EXPECT_EQ(last.bytes_total, last.bytes_done);
  EXPECT_EQ(last.tokens, s.train.tokens + s.validation.tokens);
  EXPECT_EQ(last.examples, s.train.sequences + s.validation.sequences);
  EXPECT_GT(calls, 1);
}

}  // namespace
}  // namespace rg::data
