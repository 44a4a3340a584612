// Running the real tfhost binary from the end-to-end tests, and checking how it fails.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "support/test_util.h"

namespace tfh::e2e {

inline const std::string kBertModel = TFH_SOURCE_DIR "/models/bert_tiny_opset14/model.onnx";

// tfhost with `args`; `env` entries are "K=V".
inline test::CommandResult tfhost(std::vector<std::string> args,
                                  const std::vector<std::string>& env = {}) {
  args.insert(args.begin(), TFH_TFHOST_EXE);
  return test::run_command(args, env);
}

inline size_t line_count(const std::string& s) {
  size_t n = static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
  return n + (!s.empty() && s.back() != '\n' ? 1 : 0);
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Every file under `dir`, recursively, as paths relative to it.
inline void list_tree(const std::string& dir, const std::string& rel,
                      std::vector<std::string>& out) {
  for (const auto& name : test::list_dir(dir + rel)) {
    const std::string r = rel + "/" + name;
    out.push_back(r);
    list_tree(dir, r, out);
  }
}
inline std::vector<std::string> list_tree(const std::string& dir) {
  std::vector<std::string> out;
  list_tree(dir, "", out);
  return out;
}

// How every failure must look: a non-zero status, at most three lines on stderr that start with
// "tfhost: error:" and name each of `names`, the input untouched and nothing written at all to
// the output folder.
struct FailureCheck {
  std::string input;  // byte-compared before and after ("" = none, e.g. a missing file)
  std::string input_bytes;
  std::string output_dir;  // must stay empty

  FailureCheck(const std::string& input_path, const std::string& out_dir)
      : input(input_path), output_dir(out_dir) {
    if (!input.empty() && test::file_exists(input)) input_bytes = test::read_file(input);
  }

  void expect(const test::CommandResult& r, const std::vector<std::string>& names) const {
    EXPECT_NE(r.exit_code, 0) << r.out << r.err;
    EXPECT_LE(line_count(r.err), 3u) << r.err;
    EXPECT_TRUE(contains(r.err, "tfhost: error: ")) << r.err;
    for (const auto& n : names)
      EXPECT_TRUE(contains(r.err, n)) << "'" << n << "' not in: " << r.err;
    if (!input_bytes.empty()) {
      EXPECT_EQ(test::read_file(input), input_bytes) << input << " changed";
    }
    EXPECT_TRUE(list_tree(output_dir).empty()) << output_dir << " is not empty";
  }
};

}  // namespace tfh::e2e
