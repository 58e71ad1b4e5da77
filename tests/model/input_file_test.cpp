// model/io/input_file.cpp via its readers: deep JSON, FIFOs, devices, folders refused in one line, no hang.
#include "model/io/input_file.h"
#include "model/io/hf_checkpoint.h"
#include "model/io/hf_config.h"
#include "model/io/safetensors.h"

#include "tests/model/io_test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

namespace rg::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace io_test;

// ---------------------------------------------------------------------------------------------------
// Hostile and malformed inputs: every one refused with a one-line message naming the file, never a crash
// or a hang.

// "[[[...1...]]]" nested `depth` levels deep.
std::string nested(size_t depth) { return std::string(depth, '[') + "1" + std::string(depth, ']'); }

// A reader blocked on a FIFO is released after two seconds by writing "{}" into it, so that a test of the
// refusal fails (`released` becomes true) instead of hanging the suite.
class FifoRelease {
 public:
  explicit FifoRelease(std::string path) : path_(std::move(path)), thread_([this] { run(); }) {}
  ~FifoRelease() {
    done_ = true;
    thread_.join();
  }
  bool released() const { return released_; }

 private:
  void run() {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!done_ && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (done_) return;
    const int fd = ::open(path_.c_str(), O_WRONLY | O_NONBLOCK);  // succeeds only when a reader waits
    if (fd >= 0) {
      released_ = true;
      (void)!::write(fd, "{}", 2);
      ::close(fd);
    }
  }
  std::string path_;
  std::atomic<bool> done_{false}, released_{false};
  std::thread thread_;
};

TEST_F(IoTest, DeeplyNestedJsonIsRefusedNotACrash) {
  // 100,000 levels: nlohmann's dump(), copy and == recurse once per level and overflow the stack.
  json base = json::parse(kHubRecurrentGemma2b);
  std::string text = base.dump();
  const std::string key = "\"hidden_size\":2560";
  ASSERT_NE(text.find(key), std::string::npos);
  text.replace(text.find(key), key.size(), "\"hidden_size\":" + nested(100000));
  spit(path("config.json"), text);
  expect_refused("config", [&] { read_hf_config(dir_.string()); }, path("config.json"), "nested deeper than 64");

  spit(path("deep.safetensors"), make_file("{\"__metadata__\":{\"a\":" + nested(100000) + "}}", ""));
  expect_refused("header", [&] { SafetensorsFile f(path("deep.safetensors")); }, path("deep.safetensors"),
                 "nested deeper than 64");

  fs::create_directories(path("sharded"));
  spit(path("sharded/model.safetensors.index.json"), "{\"weight_map\":{\"a\":" + nested(100000) + "}}");
  expect_refused("index", [&] { WeightsFolder w(path("sharded")); }, "model.safetensors.index.json",
                 "nested deeper than 64");

  // The bound is a depth, not a size: 64 levels parse, 65 do not.
  EXPECT_NO_THROW(parse_json_bounded(nested(64), "x"));
  expect_refused("65 levels", [&] { parse_json_bounded(nested(65), "x.json"); }, "x.json", "nested deeper");
}

TEST_F(IoTest, NonRegularFilesAreRefusedWithoutBlocking) {
  fs::create_directories(path("m"));
  ASSERT_EQ(::mkfifo(path("m/config.json").c_str(), 0600), 0);
  {
    FifoRelease release(path("m/config.json"));
    expect_refused("config FIFO", [&] { read_hf_config(path("m")); }, path("m/config.json"), "FIFO");
    EXPECT_FALSE(release.released()) << "read_hf_config blocked on a FIFO";
  }
  ASSERT_EQ(::mkfifo(path("m/model.safetensors").c_str(), 0600), 0);
  {
    FifoRelease release(path("m/model.safetensors"));
    expect_refused("weights FIFO", [&] { SafetensorsFile f(path("m/model.safetensors")); },
                   path("m/model.safetensors"), "not a regular file");
    EXPECT_FALSE(release.released()) << "SafetensorsFile blocked on a FIFO";
  }
  fs::create_directories(path("folder.safetensors"));
  expect_refused("folder", [&] { SafetensorsFile f(path("folder.safetensors")); }, path("folder.safetensors"),
                 "is a folder");
  expect_refused("device", [&] { SafetensorsFile f("/dev/zero"); }, "/dev/zero", "not a regular file");
  expect_refused("device config", [&] { read_hf_config("/dev/zero"); }, "/dev/zero", "is a device");
  expect_refused("missing config", [&] { read_hf_config(path("nope")); }, path("nope"), "no such file");
}

}  // namespace
}  // namespace rg::io
