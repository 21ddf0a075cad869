// K students trained as one grouped network (experiment.students_per_network) against the same K
// students trained one by one: the equivalence test, end to end through the host, the dm and
// regression losses and the toy_mlp networks. The resume of a grouped run is in resume_test.cpp.
#include <cmath>
#include <map>
#include <string>
#include <tuple>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "helpers.h"

namespace msd_integration {
namespace {

using ::testing::HasSubstr;

/// The tiny MSD experiment with K = 3 students of 200 iterations, `experiment_keys` added.
std::string three_students(const std::string& experiment_keys) {
  TinyOptions options;
  options.stage_steps = 200;
  std::string text = tiny_msd_config(options);
  text.replace(text.find("k = 2\n"), 6, "k = 3\n");
  text.replace(text.find("[experiment]\n"), 13, "[experiment]\n" + experiment_keys);
  return text;
}

/// Runs `text` into <tmp>/<name>/results.db, the teacher taken from `cache_from`'s cache when given.
RunView run_into(const TempDir& tmp, const std::string& name, const std::string& text,
                 const std::vector<std::string>& flags = {}, const fs::path& cache_from = {}) {
  const fs::path file = tmp / (name + ".toml");
  const fs::path db = tmp / name / "results.db";
  write_text(file, text);
  fs::create_directories(db.parent_path());
  if (!cache_from.empty()) fs::copy(cache_from / "cache", db.parent_path() / "cache", fs::copy_options::recursive);
  std::vector<std::string> args{"run", file.string(), "--db", db.string()};
  args.insert(args.end(), flags.begin(), flags.end());
  const RunResult result = run_msd(args, tmp.path(), 600);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  return read_runs(db).at(0);
}

/// Every point of every training curve, by (metric, scope, step).
std::map<std::tuple<std::string, std::string, std::int64_t>, double> curves(const RunView& run) {
  std::map<std::tuple<std::string, std::string, std::int64_t>, double> points;
  for (const auto& row : run.all_metrics) {
    if (row.name.rfind("train.dm.", 0) == 0 && row.name.find("flops") == std::string::npos) {
      points[{row.name, row.scope, row.step}] = row.value;
    }
  }
  return points;
}

// Tolerance: batched matrix products round differently from one student's, and 200 iterations of
// two AdamW optimizers carry that on. Every curve point and the ensemble's metrics agree within 1e-3
// relative (measured: about 1e-5); a student drawing other noise or other batches would differ by
// far more (the curves of different students differ by 10-100%).
TEST(GroupedStudents, AreTheStudentsTrainedOneByOne) {
  TempDir tmp;
  const RunView alone = run_into(tmp, "alone", three_students(""));
  const RunView grouped = run_into(tmp, "grouped", three_students("students_per_network = 0\n"), {}, tmp / "alone");
  const auto expected = curves(alone);
  const auto got = curves(grouped);
  ASSERT_EQ(got.size(), expected.size());
  ASSERT_GT(expected.size(), 3u * 100u);  // dm, regression and fake_score_loss of 3 students
  double worst = 0.0;
  for (const auto& [key, value] : expected) {
    ASSERT_TRUE(got.count(key)) << std::get<0>(key) << " " << std::get<1>(key) << " " << std::get<2>(key);
    worst = std::max(worst, std::abs(got.at(key) - value) / std::max(std::abs(value), 1e-3));
  }
  EXPECT_LT(worst, 1e-3) << "largest relative difference of a curve point";
  std::cout << "largest relative difference of a curve point: " << worst << "\n";
  for (const char* metric : {"swd", "mmd"}) {
    const double a = alone.metric(metric).value_or(NAN), b = grouped.metric(metric).value_or(NAN);
    EXPECT_NEAR(b, a, 1e-3 * std::abs(a)) << metric;
  }
  for (const char* k : {"0", "1", "2"}) {
    EXPECT_EQ(grouped.metric("train.iterations", std::string("student:") + k), std::optional<double>(200.0)) << k;
  }
}

// Grouped networks in student processes: with 4 students, 2 per network and --student-jobs 2, each
// process trains one group, and the students are byte for byte those of the run's own process.
TEST(GroupedStudents, TrainInStudentProcessesAsInTheRunsProcess) {
  TempDir tmp;
  std::string text = three_students("students_per_network = 2\n");
  text.replace(text.find("k = 3\n"), 6, "k = 4\n");
  const RunView here = run_into(tmp, "here", text);
  const RunView processes = run_into(tmp, "processes", text, {"--student-jobs", "2"}, tmp / "here");
  const fs::path logs = tmp / "processes" / "runs" / "run-1";
  EXPECT_TRUE(fs::exists(logs / "student-0.log"));
  EXPECT_TRUE(fs::exists(logs / "student-2.log"));
  EXPECT_FALSE(fs::exists(logs / "student-1.log")) << "student 1 trains in student 0's group";
  ASSERT_EQ(processes.artifact_paths("student").size(), 4u);
  for (size_t k = 0; k < 4; ++k) {
    EXPECT_TRUE(same_file_contents(processes.artifact_paths("student")[k], here.artifact_paths("student")[k])) << k;
  }
}

// A loss that cannot train a grouped network is refused before any work, naming it and the key.
TEST(GroupedStudents, ALossThatCannotTrainGroupsIsRefused) {
  TempDir tmp;
  std::string text = three_students("students_per_network = 0\n");
  text.replace(text.find("plugin = \"dm\""), 13, "plugin = \"adm\"");
  const fs::path file = tmp / "adm.toml";
  write_text(file, text);
  const RunResult result = run_msd({"run", file.string(), "--db", (tmp / "adm.db").string()}, tmp.path());
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.output, HasSubstr("experiment.students_per_network = 0: the loss 'adm'"));
}

}  // namespace
}  // namespace msd_integration
