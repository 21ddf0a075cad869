// `msd sample`: .npy files of a run's students, its teacher, or its dataset.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "helpers.h"

namespace msd_integration {
namespace {

using ::testing::HasSubstr;

/// The parts of a NumPy .npy (version 1.0) header this test checks.
struct NpyHeader {
  bool magic_ok = false;
  int major = 0;
  size_t data_offset = 0;  ///< 10 + header length
  std::string dict;        ///< the header's Python dict literal
  std::string descr;
  std::vector<std::int64_t> shape;
  bool fortran_order = true;
};

/// The value text after "'key':" in the header dict, up to the next top-level comma or brace.
std::string dict_value(const std::string& dict, const std::string& key) {
  const size_t at = dict.find("'" + key + "':");
  if (at == std::string::npos) return "";
  size_t i = at + key.size() + 3;
  while (i < dict.size() && dict[i] == ' ') ++i;
  size_t end = i;
  int depth = 0;
  for (; end < dict.size(); ++end) {
    const char c = dict[end];
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
  }
  return dict.substr(i, end - i);
}

NpyHeader parse_npy(const std::string& bytes) {
  NpyHeader h;
  if (bytes.size() < 10) return h;
  h.magic_ok = bytes.compare(0, 6, "\x93NUMPY") == 0;
  h.major = static_cast<unsigned char>(bytes[6]);
  const size_t len = static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
  h.data_offset = 10 + len;
  if (bytes.size() < h.data_offset) return h;
  h.dict = bytes.substr(10, len);
  std::string descr = dict_value(h.dict, "descr");
  if (descr.size() >= 2 && (descr.front() == '\'' || descr.front() == '"')) descr = descr.substr(1, descr.size() - 2);
  h.descr = descr;
  h.fortran_order = dict_value(h.dict, "fortran_order") != "False";
  // "(50, 2)", "(50,2)" or "(50,)".
  const std::string shape = dict_value(h.dict, "shape");
  std::string number;
  for (char c : shape) {
    if (c >= '0' && c <= '9') {
      number += c;
    } else if (!number.empty()) {
      h.shape.push_back(std::stoll(number));
      number.clear();
    }
  }
  if (!number.empty()) h.shape.push_back(std::stoll(number));
  return h;
}

void expect_npy(const fs::path& file, const std::string& descr, const std::vector<std::int64_t>& shape,
                size_t item_size) {
  SCOPED_TRACE(file.string());
  ASSERT_TRUE(fs::exists(file));
  const std::string bytes = read_text(file);
  const NpyHeader h = parse_npy(bytes);
  EXPECT_TRUE(h.magic_ok);
  EXPECT_EQ(h.major, 1);
  EXPECT_EQ(h.data_offset % 64, 0u) << "header not padded to 64 bytes";
  EXPECT_EQ(h.descr, descr) << h.dict;
  EXPECT_EQ(h.shape, shape) << h.dict;
  EXPECT_FALSE(h.fortran_order) << h.dict;
  EXPECT_EQ(h.dict.back(), '\n');
  size_t count = 1;
  for (auto d : shape) count *= static_cast<size_t>(d);
  EXPECT_EQ(bytes.size(), h.data_offset + count * item_size);
}

// 10. ---------------------------------------------------------------------------------------------
TEST(Sample, WritesNpyFilesFromStudentsTeacherAndData) {
  TempDir tmp;
  TinyOptions options;
  options.stage_steps = 10;
  write_text(tmp / "tiny.toml", tiny_msd_config(options));
  write_text(tmp / "teacher.toml", tiny_head() + "[distill]\nenabled = false\n\n" + tiny_evaluate());
  const fs::path db = tmp / "results.db";
  const RunResult msd_run = run_msd({"run", (tmp / "tiny.toml").string(), "--db", db.string()}, tmp.path());
  ASSERT_EQ(msd_run.exit_code, 0) << msd_run.output;
  const RunResult teacher_run = run_msd({"run", (tmp / "teacher.toml").string(), "--db", db.string()}, tmp.path());
  ASSERT_EQ(teacher_run.exit_code, 0) << teacher_run.output;
  const auto runs = read_runs(db);
  ASSERT_EQ(runs.size(), 2u);
  const std::string msd_id = std::to_string(runs[0].record.id);
  const std::string teacher_id = std::to_string(runs[1].record.id);

  for (const std::string from : {"students", "teacher", "data"}) {
    SCOPED_TRACE("--from " + from);
    const fs::path out = tmp / "out" / (from + ".npy");
    const RunResult r = run_msd(
        {"sample", msd_id, "--n", "50", "--out", out.string(), "--from", from, "--db", db.string()}, tmp.path());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("wrote 50 samples"));
    expect_npy(out, "<f4", {50, 2}, 4);
    expect_npy(tmp / "out" / (from + "_labels.npy"), "<i8", {50}, 8);
    // Labels cycle through the 5 classes: 0 1 2 3 4 0 ...
    const std::string labels = read_text(tmp / "out" / (from + "_labels.npy"));
    const NpyHeader h = parse_npy(labels);
    ASSERT_EQ(labels.size(), h.data_offset + 50 * 8);
    for (size_t i = 0; i < 50; ++i) {
      std::int64_t label = 0;
      std::memcpy(&label, labels.data() + h.data_offset + 8 * i, 8);
      ASSERT_EQ(label, static_cast<std::int64_t>(i % 5)) << "label " << i;
    }
  }
  EXPECT_FALSE(same_file_contents(tmp / "out" / "students.npy", tmp / "out" / "data.npy"));

  // Same seed, same samples.
  const fs::path again = tmp / "again.npy";
  const RunResult r2 =
      run_msd({"sample", msd_id, "--n", "50", "--out", again.string(), "--from", "students", "--db", db.string()},
              tmp.path());
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  EXPECT_TRUE(same_file_contents(again, tmp / "out" / "students.npy"));

  // A teacher-only run has no students to sample, but its teacher can be sampled.
  const fs::path none = tmp / "none.npy";
  const RunResult no_students = run_msd(
      {"sample", teacher_id, "--n", "50", "--out", none.string(), "--from", "students", "--db", db.string()}, tmp.path());
  EXPECT_NE(no_students.exit_code, 0) << no_students.output;
  EXPECT_THAT(no_students.output, HasSubstr("no students"));
  EXPECT_THAT(no_students.output, HasSubstr("--from teacher"));
  EXPECT_FALSE(fs::exists(none));
  const RunResult teacher_ok = run_msd(
      {"sample", teacher_id, "--n", "50", "--out", none.string(), "--from", "teacher", "--db", db.string()}, tmp.path());
  EXPECT_EQ(teacher_ok.exit_code, 0) << teacher_ok.output;
  expect_npy(none, "<f4", {50, 2}, 4);

  // An unknown run is named with the database.
  const RunResult unknown = run_msd(
      {"sample", "999", "--n", "5", "--out", (tmp / "x.npy").string(), "--from", "data", "--db", db.string()}, tmp.path());
  EXPECT_NE(unknown.exit_code, 0) << unknown.output;
  EXPECT_THAT(unknown.output, HasSubstr("999"));
  EXPECT_THAT(unknown.output, HasSubstr(db.string()));
}

}  // namespace
}  // namespace msd_integration
