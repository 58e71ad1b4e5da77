// prepare_* and the dataset format on real files: the Gemma turn layout and its loss mask decoded back to
// text, preference pairs and prompts, and every bad input with its message and no output left behind.
#include "data/chat_format.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "tests/data/data_test_support.h"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <functional>

namespace rg::data {
namespace {

using test::fs::path;


const char* kChat =
    R"({"messages": [{"role": "system", "content": "You are a sailor."}, {"role": "user", "content": "  call me Ishmael  "},)"
    R"( {"role": "assistant", "content": "the whale is white."}, {"role": "user", "content": "how long ago?"},)"
    R"( {"role": "model", "content": "years ago, never mind how long precisely."}, {"role": "user", "content": "and the ship?"},)"
    R"( {"role": "assistant", "content": "\nthe ship and the boat in the storm.\n"}]})";

TEST(Chat, MaskCoversExactlyTheModelTurns) {
  const path dir = test::scratch_dir("chat");
  test::write_file(dir / "chat.jsonl", std::string(kChat) + "\n");
  const PrepareSummary s = prepare_chat({(dir / "chat.jsonl").string()}, test::prepare_options(dir / "chat.h5"));
  EXPECT_EQ(s.train.sequences, 1);
  const Tokenizer& tok = test::tokenizer();
  const int32_t sot = tok.piece_to_id("<start_of_turn>"), eot = tok.piece_to_id("<end_of_turn>");
  ASSERT_GE(sot, 0);
  ASSERT_GE(eot, 0);

  SequenceReader reader((dir / "chat.h5").string(), "train");
  ASSERT_TRUE(reader.has_mask());
  const int64_t n = reader.length(0);
  std::vector<int32_t> ids(n);
  std::vector<uint8_t> mask(n);
  reader.read(0, 0, n, ids.data(), mask.data());
  EXPECT_EQ(ids[0], tok.bos_id());
  EXPECT_EQ(ids[1], sot);
  // The whole example, detokenised, is Gemma's format (system folded into the first user turn, trimmed).
  EXPECT_EQ(tok.decode({ids.begin() + 1, ids.end()}),
            "<start_of_turn>user\nYou are a sailor.\n\ncall me Ishmael<end_of_turn>\n"
            "<start_of_turn>model\nthe whale is white.<end_of_turn>\n"
            "<start_of_turn>user\nhow long ago?<end_of_turn>\n"
            "<start_of_turn>model\nyears ago, never mind how long precisely.<end_of_turn>\n"
            "<start_of_turn>user\nand the ship?<end_of_turn>\n"
            "<start_of_turn>model\nthe ship and the boat in the storm.<end_of_turn>\n");
  const std::vector<std::string> replies = {"the whale is white.", "years ago, never mind how long precisely.",
                                            "the ship and the boat in the storm."};
  auto runs_of = [&](const std::vector<int32_t>& t, const std::function<bool(size_t)>& on) {
    std::vector<std::vector<int32_t>> runs;
    for (size_t p = 0; p < t.size(); ++p) {
      if (!on(p)) continue;
      if (p == 0 || !on(p - 1)) runs.emplace_back();
      runs.back().push_back(t[p]);
    }
    return runs;
  };
  const auto runs = runs_of(ids, [&](size_t p) { return mask[p] == 1; });
  ASSERT_EQ(runs.size(), 3u);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(runs[k].back(), eot);
    EXPECT_EQ(tok.decode({runs[k].begin(), runs[k].end() - 1}), replies[k]);
  }
  // Through the loader (unpacked and packed): the counted targets are the same tokens.
  for (bool pack : {false, true}) {
    LoaderOptions o;
    o.path = (dir / "chat.h5").string(), o.seq_len = pack ? n - 1 : n + 5, o.micro_batch = 1, o.pack = pack;
    Loader loader(o);
    const Batch b = loader.next();
    const auto counted = runs_of(b.targets, [&](size_t p) { return b.loss_mask[p] == 1.0f; });
    ASSERT_EQ(counted.size(), 3u) << "pack " << pack;
    for (size_t k = 0; k < 3; ++k) EXPECT_EQ(tok.decode({counted[k].begin(), counted[k].end() - 1}), replies[k]);
  }
}

TEST(Chat, PromptPlusCompletionIsTheConversation) {
  const ChatFormatter f(test::tokenizer());
  const std::vector<Turn> turns = normalize({{"user", "call me Ishmael"}, {"assistant", "the whale."}}, Ending::kModel);
  std::vector<int32_t> joined = f.prompt({turns[0]});
  const auto c = f.completion("the whale.");
  joined.insert(joined.end(), c.begin(), c.end());
  joined.push_back(test::tokenizer().encode("\n").at(0));
  EXPECT_EQ(joined, f.conversation(turns).tokens);
}

TEST(Preference, PairsAndPromptsInStringAndMessageForms) {
  const path dir = test::scratch_dir("pref");
  test::write_file(dir / "pref.jsonl",
                   R"({"prompt": "how long ago?", "chosen": "years ago.", "rejected": "the whale.", "kind": "faq"})"
                   "\n"
                   R"({"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "the sea?"}],)"
                   R"( "chosen": [{"role": "assistant", "content": "deep."}], "rejected": [{"role": "assistant", "content": "white."}], "kind": "spelling"})"
                   "\n");
  const PrepareSummary s = prepare_preference({(dir / "pref.jsonl").string()}, test::prepare_options(dir / "pref.h5"));
  EXPECT_EQ(s.train.sequences, 2);
  const auto pairs = read_preference((dir / "pref.h5").string());
  ASSERT_EQ(pairs.size(), 2u);
  const Tokenizer& tok = test::tokenizer();
  EXPECT_EQ(pairs[0].prompt[0], tok.bos_id());
  EXPECT_EQ(tok.decode(pairs[0].prompt), "<start_of_turn>user\nhow long ago?<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(tok.decode(pairs[0].chosen), "years ago.<end_of_turn>");
  EXPECT_EQ(tok.decode(pairs[0].rejected), "the whale.<end_of_turn>");
  EXPECT_EQ(pairs[0].kind, "faq");
  EXPECT_EQ(tok.decode(pairs[1].prompt), "<start_of_turn>user\nBe brief.\n\nthe sea?<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(pairs[1].kind, "spelling");

  test::write_file(dir / "prompts.jsonl", R"({"prompt": "call me Ishmael"})" "\n" R"({"prompt": [{"role": "user", "content": "the sea?"}]})" "\n");
  prepare_prompts({(dir / "prompts.jsonl").string()}, test::prepare_options(dir / "prompts.h5"));
  const auto prompts = read_prompts((dir / "prompts.h5").string());
  ASSERT_EQ(prompts.size(), 2u);
  EXPECT_EQ(tok.decode(prompts[1]), "<start_of_turn>user\nthe sea?<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_THROW(Loader({(dir / "prompts.h5").string(), 0, 1, 8, 1}), DataError);  // not a token stream
}

TEST(Chat, OverlongExamplesAreDroppedOrTruncatedAndCounted) {
  const path dir = test::scratch_dir("overlong");
  test::write_file(dir / "c.jsonl", std::string(kChat) + "\n" +
                                        R"({"messages": [{"role": "user", "content": "hi"}, {"role": "model", "content": "the sea."}]})" + "\n");
  // A limit that cuts the long chat inside its first model reply and keeps the short one whole.
  const ChatFormatter f(test::tokenizer());
  const Encoded whole = f.conversation(normalize({{"system", "You are a sailor."}, {"user", "call me Ishmael"},
                                                  {"assistant", "the whale is white."}}, Ending::kModel));
  const int64_t first_learned = std::find(whole.mask.begin(), whole.mask.end(), 1) - whole.mask.begin();
  PrepareOptions o = test::prepare_options(dir / "c.h5");
  o.max_tokens = first_learned + 2;
  PrepareSummary s = prepare_chat({(dir / "c.jsonl").string()}, o);
  EXPECT_EQ(s.dropped, 1);
  EXPECT_EQ(s.train.sequences, 1);
  o.overlong = "truncate";
  s = prepare_chat({(dir / "c.jsonl").string()}, o);
  EXPECT_EQ(s.truncated, 1);
  EXPECT_EQ(s.train.sequences, 2);
  SequenceReader r(o.output, "train");
  EXPECT_EQ(r.length(0), o.max_tokens);
  o.max_tokens = first_learned;  // nothing left to learn: dropped even when truncating
  s = prepare_chat({(dir / "c.jsonl").string()}, o);
  EXPECT_EQ(s.dropped, 1);
}

// Runs f, expects a DataError containing every string of `want`, and no output or temporary file.
void expect_refused(const path& dir, const path& out, const std::function<void()>& f, std::vector<std::string> want) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing " << want[0];
  } catch (const DataError& e) {
    for (const auto& w : want) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << e.what() << "\n lacks: " << w;
  }
  EXPECT_FALSE(test::fs::exists(out)) << out;
  for (const auto& entry : test::fs::directory_iterator(dir)) {
    EXPECT_EQ(entry.path().string().find(".tmp-"), std::string::npos) << "left behind: " << entry.path();
  }
}

TEST(BadInput, EachYieldsItsMessageAndNoOutput) {
  const path dir = test::scratch_dir("bad");
  const path out = dir / "out.h5";
  const std::string good = R"({"messages": [{"role": "user", "content": "hi"}, {"role": "model", "content": "the sea."}]})";
  auto chat = [&](const std::string& name, const std::string& text, std::vector<std::string> want) {
    test::write_file(dir / name, text);
    const std::string file = (dir / name).string();
    for (auto& w : want) w = w == "@" ? file : w;
    expect_refused(dir, out, [&] { prepare_chat({file}, test::prepare_options(out)); }, want);
  };
  chat("json.jsonl", good + "\n\n" + R"({"messages": [{"role": "user", "content": "hi"})" + "\n", {"@", ":3: malformed JSON"});
  chat("role.jsonl", good + "\n" + R"({"messages": [{"role": "bot", "content": "hi"}]})" + "\n",
       {"@", ":2: message 1: unknown role 'bot'"});
  chat("twice.jsonl", R"({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "model", "content": "c"}]})",
       {":1: messages 1 and 2: two user turns in a row"});
  chat("empty.jsonl", R"({"messages": [{"role": "user", "content": "  \n "}, {"role": "model", "content": "c"}]})",
       {":1: message 1 (user): empty content"});
  chat("nomodel.jsonl", R"({"messages": [{"role": "user", "content": "a"}]})", {"ends with a user turn"});
  chat("nothing.jsonl", "\n\n", {"empty corpus"});
  test::write_file(dir / "empty.txt", "  \n\n");
  expect_refused(dir, out, [&] { prepare_text({(dir / "empty.txt").string()}, test::prepare_options(out)); }, {"no documents", "empty corpus"});
  expect_refused(dir, out, [&] { prepare_text({(dir / "missing.txt").string()}, test::prepare_options(out)); }, {"missing.txt: no such file"});
  test::write_file(dir / "pref.jsonl", R"({"prompt": "a", "chosen": "the sea.", "rejected": "the sea."})");
  expect_refused(dir, out, [&] { prepare_preference({(dir / "pref.jsonl").string()}, test::prepare_options(out)); },
                 {"pref.jsonl:1: chosen and rejected are identical"});

  // A failed run leaves an existing dataset untouched.
  test::write_file(dir / "ok.jsonl", good + "\n");
  prepare_chat({(dir / "ok.jsonl").string()}, test::prepare_options(out));
  EXPECT_THROW(prepare_chat({(dir / "role.jsonl").string()}, test::prepare_options(out)), DataError);
  EXPECT_EQ(read_dataset_info(out.string()).train.sequences, 1);
}

TEST(Text, DirectoriesAreReadInSortedOrderAndJsonlNeedsItsField) {
  const path dir = test::scratch_dir("dirs");
  test::fs::create_directories(dir / "in" / "sub");
  test::write_file(dir / "in" / "b.txt", "the sea.\n");
  test::write_file(dir / "in" / "a.txt", "  call me Ishmael.\n\n");
  test::write_file(dir / "in" / "sub" / "c.jsonl", R"({"body": "the whale."})" "\n");
  PrepareOptions o = test::prepare_options(dir / "t.h5");
  o.text_field = "body";
  std::vector<PrepareProgress> seen;
  o.progress = [&](const PrepareProgress& p) { seen.push_back(p); };
  const PrepareSummary s = prepare_text({(dir / "in").string()}, o);
  ASSERT_EQ(s.train.sequences, 3);
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(seen.back().done);
  EXPECT_EQ(seen.back().examples, 3);
  EXPECT_EQ(seen.back().bytes_total, seen.back().bytes_done);
  SequenceReader r(o.output, "train");
  const std::vector<std::string> want = {"call me Ishmael.", "the sea.", "the whale."};
  for (int i = 0; i < 3; ++i) {
    const auto t = r.tokens(i);
    EXPECT_EQ(test::tokenizer().decode({t.begin() + 1, t.end()}), want[i]);
  }
  o.text_field = "text";
  expect_refused(dir, dir / "u.h5", [&] { o.output = (dir / "u.h5").string(); prepare_text({(dir / "in").string()}, o); },
                 {"c.jsonl:1: missing string field \"text\""});
}

TEST(BadInput, TokenOutsideTheVocabularyIsNamed) {
  const path dir = test::scratch_dir("vocab");
  TokenizerIdentity id;
  id.id = "fnv1a64:0000000000000000", id.path = "made-up.model", id.vocab_size = 300;
  id.special.pad = 0, id.special.eos = 1, id.special.bos = 2;
  DatasetWriter w((dir / "v.h5").string(), DatasetKind::kText, id, 0, "test");
  w.add(false, "", {2, 10, 11, 12, 13, 999, 14, 15, 16, 17});
  w.end_example(false);
  w.commit();
  LoaderOptions o;
  o.path = (dir / "v.h5").string(), o.seq_len = 4, o.micro_batch = 2;
  Loader loader(o);
  try {
    loader.next();
    FAIL() << "expected an error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("v.h5:/train/tokens[5]: token id 999 is outside the vocabulary (vocab_size 300)"),
              std::string::npos) << e.what();
    EXPECT_EQ(e.exit_code(), 2) << "an unusable file, raised through the read-ahead thread as BadDataFile";
  }
}

TEST(BadInput, TruncatedForeignAndMismatchedFilesAreRefused) {
  const path dir = test::scratch_dir("files");
  test::write_file(dir / "c.jsonl", R"({"messages": [{"role": "user", "content": "hi"}, {"role": "model", "content": "the sea."}]})");
  const std::string good = (dir / "good.h5").string();
  prepare_chat({(dir / "c.jsonl").string()}, test::prepare_options(good));
  auto refused = [](const std::string& file, const std::string& want) {
    try {
      read_dataset_info(file);
      ADD_FAILURE() << "expected an error for " << file;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(file + ": " + want), std::string::npos) << e.what();
    }
    EXPECT_THROW(SequenceReader(file, "train"), DataError);
  };
  test::fs::copy_file(good, dir / "cut.h5");
  test::fs::resize_file(dir / "cut.h5", test::fs::file_size(good) / 2);
  refused((dir / "cut.h5").string(), "cannot open as HDF5 (the file is truncated or damaged)");
  test::write_file(dir / "text.h5", "not hdf5 at all");
  refused((dir / "text.h5").string(), "not an HDF5 file");
  const hid_t f = H5Fcreate((dir / "foreign.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  H5Fclose(f);
  refused((dir / "foreign.h5").string(), "not an rgemma token dataset");
  refused((dir / "absent.h5").string(), "no such file");

  const DatasetInfo info = read_dataset_info(good);
  EXPECT_NO_THROW(check_compatible(info, 320, tokenizer_id(test::tokenizer_path())));
  try {
    check_compatible(info, 256000);
    FAIL() << "expected an error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("dataset vocab_size 320 differs from the model's vocab_size 256000"),
              std::string::npos) << e.what();
  }
  try {
    check_compatible(info, 320, "fnv1a64:0123456789abcdef");
    FAIL() << "expected an error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(info.tokenizer.id), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fnv1a64:0123456789abcdef"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace rg::data
