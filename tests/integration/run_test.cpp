// `msd run` end to end: what a run records, the teacher cache, determinism, O2MKD-style students,
// the teacher-only baseline and variants.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iomanip>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "helpers.h"

namespace msd_integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using msd::results::RunStatus;

bool is_hex16(const std::string& s) {
  if (s.size() != 16) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  }
  return true;
}

std::vector<fs::path> files_with_extension(const fs::path& folder, const std::string& ext) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return out;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.path().extension() == ext) out.push_back(entry.path());
  }
  return out;
}

/// `git rev-parse HEAD` of the sources' checkout, or "" where git cannot read it.
std::string checkout_head() {
  const std::string command = "git -C '" + (fs::path(MSD_EXPERIMENTS_DIR) / "..").string() + "' rev-parse HEAD 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return "";
  char buffer[64] = {};
  const std::string head = fgets(buffer, sizeof buffer, pipe) != nullptr ? std::string(buffer, 40) : "";
  return pclose(pipe) == 0 ? head : "";
}

/// Bit-level equality of two doubles (so that NaN == NaN and -0 != +0 would show up as they are).
bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

// 1. ----------------------------------------------------------------------------------------------
TEST(EndToEnd, MsdRunRecordsConfigMetricsCurvesAndArtifacts) {
  TempDir tmp;
  write_text(tmp / "tiny.toml", tiny_msd_config());
  const fs::path db = tmp / "results.db";

  const RunResult r = run_msd({"run", (tmp / "tiny.toml").string(), "--db", db.string()}, tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("== run 1: tiny / base"));
  EXPECT_THAT(r.output, HasSubstr("trained and cached"));

  const std::vector<RunView> runs = read_runs(db);
  ASSERT_EQ(runs.size(), 1u);
  const RunView& run = runs[0];
  EXPECT_EQ(run.record.status, RunStatus::finished) << run.record.error;
  EXPECT_EQ(run.record.experiment, "tiny");
  EXPECT_EQ(run.record.name, "base");
  EXPECT_TRUE(run.record.error.empty()) << run.record.error;
  EXPECT_FALSE(run.record.ended_at.empty());
  EXPECT_TRUE(is_hex16(run.record.config_hash)) << run.record.config_hash;
  // The commit msd was built from (cmake/git_commit.cmake): the checkout's HEAD, which has not moved
  // since the build; none where git cannot read the checkout.
  EXPECT_EQ(run.record.git_commit, checkout_head());
  EXPECT_FALSE(run.record.config_text.empty());
  EXPECT_THAT(run.record.config_text, HasSubstr("edm_mlp"));
  EXPECT_EQ(run.record.seed, 0);
  EXPECT_EQ(run.record.device, "cpu");

  EXPECT_EQ(run.param("partition.k"), std::optional<std::string>("2"));
  EXPECT_EQ(run.param("teacher.steps"), std::optional<std::string>("150"));
  EXPECT_EQ(run.param("teacher.plugin"), std::optional<std::string>("\"edm_mlp\""));
  EXPECT_EQ(run.tag("threads"), std::optional<std::string>("1"));
  EXPECT_TRUE(is_hex16(run.tag("teacher.digest").value_or(""))) << run.tag("teacher.digest").value_or("(none)");
  EXPECT_EQ(run.tag("model"), std::optional<std::string>("students"));
  EXPECT_TRUE(run.tag("cell.0").has_value());
  EXPECT_TRUE(run.tag("cell.1").has_value());

  // Whole-model quality metrics.
  for (const char* name : {"swd", "mmd", "coverage", "near_mode"}) {
    const auto v = run.metric(name);
    ASSERT_TRUE(v.has_value()) << "missing final metric " << name;
    EXPECT_TRUE(std::isfinite(*v)) << name << " = " << *v;
  }
  EXPECT_GE(*run.metric("swd"), 0.0);
  EXPECT_GE(*run.metric("coverage"), 0.0);
  EXPECT_LE(*run.metric("coverage"), 1.0);
  // Cost: one-step students.
  EXPECT_EQ(run.metric("nfe"), std::optional<double>(1.0));
  EXPECT_EQ(run.metric("students"), std::optional<double>(2.0));
  ASSERT_TRUE(run.metric("latency_ms_per_sample").has_value());
  EXPECT_GT(*run.metric("latency_ms_per_sample"), 0.0);
  EXPECT_EQ(run.metric("teacher.cached"), std::optional<double>(0.0));
  EXPECT_TRUE(run.metric("run.seconds").has_value());

  // Compute: 2 students x 40 iterations (budget per student), the student steps every 2nd one.
  EXPECT_EQ(run.metric("train.iterations"), std::optional<double>(80.0));
  EXPECT_EQ(run.metric("train.student_updates"), std::optional<double>(40.0));
  EXPECT_EQ(run.metric("train.samples"), std::optional<double>(80.0 * 128));
  for (const char* scope : {"student:0", "student:1"}) {
    EXPECT_EQ(run.metric("train.iterations", scope), std::optional<double>(40.0)) << scope;
    EXPECT_EQ(run.metric("train.student_updates", scope), std::optional<double>(20.0)) << scope;
    EXPECT_TRUE(run.metric("params", scope).has_value()) << scope;
  }
  EXPECT_FALSE(run.metric("train.iterations", "student:2").has_value());

  // Per-class quality: gaussian_grid has 5 classes.
  for (int c = 0; c < 5; ++c) {
    const std::string scope = "class:" + std::to_string(c);
    ASSERT_TRUE(run.metric("swd", scope).has_value()) << scope;
    EXPECT_TRUE(std::isfinite(*run.metric("swd", scope))) << scope;
  }
  EXPECT_FALSE(run.metric("swd", "class:5").has_value());

  // Training curves: several logged steps of the dm stage for each student.
  for (const char* scope : {"student:0", "student:1"}) {
    std::set<std::int64_t> steps;
    for (const auto& m : run.all_metrics) {
      if (m.scope == scope && m.name.rfind("train.dm.", 0) == 0) steps.insert(m.step);
    }
    EXPECT_GE(steps.size(), 5u) << "training-curve steps of " << scope;
    if (!steps.empty()) {
      EXPECT_EQ(*steps.begin(), 0);
      // Curves are logged on student-update iterations; with update_every = 2 the last is 38 of 0..39.
      EXPECT_EQ(*steps.rbegin(), 38);
    }
  }

  // Artifacts.
  const auto teacher = run.artifact_paths("teacher");
  ASSERT_EQ(teacher.size(), 1u);
  EXPECT_TRUE(fs::exists(teacher[0])) << teacher[0];
  EXPECT_EQ(teacher[0].parent_path(), tmp / "cache" / "teachers");
  const auto students = run.artifact_paths("student");
  ASSERT_EQ(students.size(), 2u);
  for (const auto& s : students) {
    EXPECT_TRUE(fs::exists(s)) << s;
    EXPECT_GT(fs::file_size(s), 0u) << s;
  }
  EXPECT_NE(students[0], students[1]);
  const auto samples = run.artifact_paths("samples");
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_TRUE(fs::exists(samples[0])) << samples[0];
  EXPECT_EQ(read_text(samples[0]).substr(0, 6), "\x93NUMPY");
}

// 2. ----------------------------------------------------------------------------------------------
TEST(EndToEnd, TeacherCacheIsReusedAcrossStagesAndInvalidatedByTeacherKeys) {
  TempDir tmp;
  const fs::path file = tmp / "tiny.toml";
  write_text(file, tiny_msd_config());
  const fs::path db = tmp / "results.db";

  const RunResult first = run_msd({"run", file.string(), "--db", db.string()}, tmp.path());
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_THAT(first.output, Not(HasSubstr("reusing")));
  const auto cached = files_with_extension(tmp / "cache" / "teachers", ".pt");
  ASSERT_EQ(cached.size(), 1u) << "teacher cache under " << (tmp / "cache" / "teachers");
  EXPECT_TRUE(fs::exists(cached[0].string() + ".toml")) << "provenance beside " << cached[0];

  // Different distillation, same dataset/teacher/seed: the teacher is loaded, not trained.
  const RunResult second = run_msd({"run", file.string(), "--db", db.string(), "--set", "stage.0.steps=20"}, tmp.path());
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_THAT(second.output, HasSubstr("reusing"));
  EXPECT_THAT(second.output, HasSubstr(cached[0].filename().string()));

  // A teacher key changes: a new teacher is trained and cached beside the old one.
  const RunResult third =
      run_msd({"run", file.string(), "--db", db.string(), "--set", "teacher.steps=151", "--set", "stage.0.steps=2"},
              tmp.path());
  ASSERT_EQ(third.exit_code, 0) << third.output;
  EXPECT_THAT(third.output, Not(HasSubstr("reusing")));
  EXPECT_EQ(files_with_extension(tmp / "cache" / "teachers", ".pt").size(), 2u);

  const auto runs = read_runs(db);
  ASSERT_EQ(runs.size(), 3u);
  for (const auto& run : runs) EXPECT_EQ(run.record.status, RunStatus::finished) << run.record.error;
  EXPECT_EQ(runs[0].metric("teacher.cached"), std::optional<double>(0.0));
  EXPECT_TRUE(runs[0].metric("teacher.train_seconds").has_value());
  EXPECT_EQ(runs[1].metric("teacher.cached"), std::optional<double>(1.0));
  EXPECT_FALSE(runs[1].metric("teacher.train_seconds").has_value());
  EXPECT_EQ(runs[2].metric("teacher.cached"), std::optional<double>(0.0));
  EXPECT_TRUE(runs[2].metric("teacher.train_seconds").has_value());

  // The overrides took effect and make distinct configs.
  EXPECT_EQ(runs[1].metric("train.iterations"), std::optional<double>(40.0));
  EXPECT_EQ(runs[1].param("stage.0.steps"), std::optional<std::string>("20"));
  EXPECT_EQ(runs[2].param("teacher.steps"), std::optional<std::string>("151"));
  EXPECT_NE(runs[0].record.config_hash, runs[1].record.config_hash);
  EXPECT_NE(runs[0].record.config_hash, runs[2].record.config_hash);
  // Runs 0 and 1 share the teacher file; run 2 has its own.
  ASSERT_EQ(runs[1].artifact_paths("teacher").size(), 1u);
  ASSERT_EQ(runs[2].artifact_paths("teacher").size(), 1u);
  EXPECT_EQ(runs[0].artifact_paths("teacher"), runs[1].artifact_paths("teacher"));
  EXPECT_NE(runs[0].artifact_paths("teacher"), runs[2].artifact_paths("teacher"));
}

// 3. ----------------------------------------------------------------------------------------------
void expect_same_scores(const RunView& x, const RunView& y, const std::string& what) {
  SCOPED_TRACE(what);
  for (const char* name : {"swd", "mmd", "coverage", "near_mode"}) {
    const auto a = x.metric(name);
    const auto b = y.metric(name);
    ASSERT_TRUE(a && b) << name;
    EXPECT_TRUE(same_bits(*a, *b)) << name << ": " << *a << " vs " << *b;
  }
  for (int c = 0; c < 5; ++c) {
    const std::string scope = "class:" + std::to_string(c);
    const auto a = x.metric("swd", scope);
    const auto b = y.metric("swd", scope);
    ASSERT_TRUE(a && b) << scope;
    EXPECT_TRUE(same_bits(*a, *b)) << "swd " << scope << ": " << *a << " vs " << *b;
  }
}

TEST(EndToEnd, CpuRunsWithTheSameTeacherAreBitReproducible) {
  TempDir a, b;
  write_text(a / "tiny.toml", tiny_msd_config());
  write_text(b / "tiny.toml", tiny_msd_config());

  const RunResult ra = run_msd({"run", (a / "tiny.toml").string(), "--db", (a / "results.db").string()}, a.path());
  ASSERT_EQ(ra.exit_code, 0) << ra.output;
  // Folder b gets a copy of a's teacher cache, so its run starts from the same teacher in another
  // process and another folder.
  fs::copy(a / "cache", b / "cache", fs::copy_options::recursive);
  const RunResult rb = run_msd({"run", (b / "tiny.toml").string(), "--db", (b / "results.db").string()}, b.path());
  ASSERT_EQ(rb.exit_code, 0) << rb.output;
  EXPECT_THAT(rb.output, HasSubstr("reusing"));
  // The same config again in folder a: the teacher now comes from the cache the first run wrote.
  const RunResult rc = run_msd({"run", (a / "tiny.toml").string(), "--db", (a / "results.db").string()}, a.path());
  ASSERT_EQ(rc.exit_code, 0) << rc.output;
  EXPECT_THAT(rc.output, HasSubstr("reusing"));

  const auto runs_a = read_runs(a / "results.db");
  const auto runs_b = read_runs(b / "results.db");
  ASSERT_EQ(runs_a.size(), 2u);
  ASSERT_EQ(runs_b.size(), 1u);
  const RunView& trained = runs_a[0];
  const RunView& reused = runs_a[1];
  const RunView& copied = runs_b[0];
  EXPECT_EQ(trained.record.config_hash, copied.record.config_hash);
  EXPECT_EQ(trained.record.config_hash, reused.record.config_hash);
  EXPECT_EQ(trained.metric("teacher.cached"), std::optional<double>(0.0));
  EXPECT_EQ(reused.metric("teacher.cached"), std::optional<double>(1.0));
  EXPECT_EQ(copied.metric("teacher.cached"), std::optional<double>(1.0));
  // The teacher pairs of the regression loss come from the same cache the same way.
  EXPECT_THAT(rc.output, HasSubstr("teacher pairs: reusing"));
  EXPECT_EQ(trained.metric("teacher_pairs.cached"), std::optional<double>(0.0));
  EXPECT_EQ(reused.metric("teacher_pairs.cached"), std::optional<double>(1.0));
  EXPECT_EQ(copied.metric("teacher_pairs.cached"), std::optional<double>(1.0));

  // Whether the teacher and its pairs were just made (and are still in memory) or loaded from their
  // files, every later phase is seeded on its own, so students, samples and scores are bit-identical.
  expect_same_scores(trained, reused, "trained vs reused (same folder)");
  expect_same_scores(trained, copied, "trained vs copied cache (another folder)");
  ASSERT_EQ(trained.artifact_paths("student").size(), 2u);
  ASSERT_EQ(copied.artifact_paths("student").size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_TRUE(same_file_contents(trained.artifact_paths("student")[k], copied.artifact_paths("student")[k]))
        << "student " << k;
  }
  ASSERT_EQ(trained.artifact_paths("samples").size(), 1u);
  ASSERT_EQ(reused.artifact_paths("samples").size(), 1u);
  EXPECT_TRUE(same_file_contents(trained.artifact_paths("samples")[0], reused.artifact_paths("samples")[0]));
}

// bf16 autocast on the CPU: the run finishes, its teacher is another cache entry, and its numbers
// differ from the fp32 run's (which are bit-reproducible, so a precision switch that did nothing
// would give identical samples).
TEST(EndToEnd, Bf16PrecisionTrainsItsOwnTeacherAndChangesTheNumbers) {
  TempDir tmp;
  write_text(tmp / "tiny.toml", tiny_msd_config());
  const fs::path db = tmp / "results.db";
  const RunResult fp32 = run_msd({"run", (tmp / "tiny.toml").string(), "--db", db.string()}, tmp.path());
  ASSERT_EQ(fp32.exit_code, 0) << fp32.output;
  const RunResult bf16 = run_msd({"run", (tmp / "tiny.toml").string(), "--db", db.string(), "--set",
                                  "experiment.precision=\"bf16\""},
                                 tmp.path());
  ASSERT_EQ(bf16.exit_code, 0) << bf16.output;
  EXPECT_THAT(bf16.output, HasSubstr("trained and cached"));

  const auto runs = read_runs(db);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[1].record.status, RunStatus::finished) << runs[1].record.error;
  EXPECT_NE(runs[0].record.config_hash, runs[1].record.config_hash);
  ASSERT_EQ(runs[0].artifact_paths("samples").size(), 1u);
  ASSERT_EQ(runs[1].artifact_paths("samples").size(), 1u);
  EXPECT_FALSE(same_file_contents(runs[0].artifact_paths("samples")[0], runs[1].artifact_paths("samples")[0]));
}

TEST(EndToEnd, TeacherTrainingIsBitReproducibleAcrossProcesses) {
  TempDir a, b;
  write_text(a / "tiny.toml", tiny_msd_config());
  write_text(b / "tiny.toml", tiny_msd_config());
  const RunResult ra = run_msd({"run", (a / "tiny.toml").string(), "--db", (a / "results.db").string()}, a.path());
  ASSERT_EQ(ra.exit_code, 0) << ra.output;
  const RunResult rb = run_msd({"run", (b / "tiny.toml").string(), "--db", (b / "results.db").string()}, b.path());
  ASSERT_EQ(rb.exit_code, 0) << rb.output;
  const auto runs_a = read_runs(a / "results.db");
  const auto runs_b = read_runs(b / "results.db");
  ASSERT_EQ(runs_a.size(), 1u);
  ASSERT_EQ(runs_b.size(), 1u);
  EXPECT_EQ(runs_a[0].metric("teacher.cached"), std::optional<double>(0.0));
  EXPECT_EQ(runs_b[0].metric("teacher.cached"), std::optional<double>(0.0));
  ASSERT_EQ(runs_a[0].artifact_paths("teacher").size(), 1u);
  ASSERT_EQ(runs_b[0].artifact_paths("teacher").size(), 1u);
  EXPECT_TRUE(same_file_contents(runs_a[0].artifact_paths("teacher")[0], runs_b[0].artifact_paths("teacher")[0]))
      << "two trainings of the same teacher config gave different weights";
  expect_same_scores(runs_a[0], runs_b[0], "two runs from scratch");
}

/// A tiny O2MKD run: two multi-step MLP students, diffusion and KD losses, 40 iterations each, with
/// `partition` as the [partition] section's keys.
std::string tiny_o2mkd(const std::string& partition) {
  return tiny_head({"o2mkd"}) +
         "[student]\n"
         "plugin = \"mlp_denoiser\"\n"
         "hidden = 16\n"
         "blocks = 1\n"
         "\n"
         "[partition]\n" +
         partition +
         "k = 2\n"
         "\n"
         "[budget]\n"
         "batch_size = 128\n"
         "\n"
         "[[stage]]\n"
         "name = \"kd\"\n"
         "steps = 40\n"
         "lr = 1e-3\n"
         "\n"
         "[[stage.loss]]\n"
         "plugin = \"diffusion\"\n"
         "\n"
         "[[stage.loss]]\n"
         "plugin = \"kd_prediction\"\n"
         "\n"
         "[[stage.loss]]\n"
         "plugin = \"kd_relational\"\n"
         "weight = 0.1\n"
         "\n" +
         tiny_evaluate();
}

// 4. ----------------------------------------------------------------------------------------------
TEST(EndToEnd, O2mkdNoisePartitionedMultiStepStudents) {
  TempDir tmp;
  write_text(tmp / "o2mkd.toml", tiny_o2mkd("plugin = \"noise_uniform\"\n"));
  const fs::path db = tmp / "results.db";
  const RunResult r = run_msd(
      {"run", (tmp / "o2mkd.toml").string(), "--db", db.string(), "--set", "evaluate.sampler_steps=[2, 4]"}, tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;

  const auto runs = read_runs(db);
  ASSERT_EQ(runs.size(), 1u);
  const RunView& run = runs[0];
  EXPECT_EQ(run.record.status, RunStatus::finished) << run.record.error;
  // Multi-step students routed by noise level sample with the teacher's sampler: 2 * 4 - 1 NFE.
  EXPECT_EQ(run.metric("nfe"), std::optional<double>(7.0));
  EXPECT_EQ(run.metric("students"), std::optional<double>(2.0));
  EXPECT_EQ(run.metric("train.iterations"), std::optional<double>(80.0));
  EXPECT_EQ(run.metric("train.student_updates"), std::optional<double>(80.0));  // update_every = 1
  ASSERT_TRUE(run.tag("cell.0").has_value());
  ASSERT_TRUE(run.tag("cell.1").has_value());
  EXPECT_FALSE(run.tag("cell.2").has_value());
  EXPECT_NE(*run.tag("cell.0"), *run.tag("cell.1"));
  EXPECT_EQ(run.artifact_paths("student").size(), 2u);
  EXPECT_TRUE(run.metric("swd").has_value());
  // The NFE curve: the students again with Heun at 2 steps (3 NFE), timed against the teacher at 3
  // NFE; 4 steps is the run's own sampler, recorded at the whole-model scope only.
  EXPECT_EQ(run.metric("nfe", "nfe:3"), std::optional<double>(3.0));
  EXPECT_EQ(run.metric("teacher_nfe", "nfe:3"), std::optional<double>(3.0));
  ASSERT_TRUE(run.metric("swd", "nfe:3").has_value());
  EXPECT_NE(run.metric("swd", "nfe:3"), run.metric("swd"));
  EXPECT_FALSE(run.metric("swd", "nfe:7").has_value());
  // Every loss of the stage has a training curve.
  for (const char* loss : {"train.kd.diffusion", "train.kd.kd_prediction", "train.kd.kd_relational"}) {
    bool found = false;
    for (const auto& m : run.all_metrics) found = found || (m.name == loss && m.scope == "student:1");
    EXPECT_TRUE(found) << "no curve " << loss;
  }

  // With four ranges even in log sigma, the second, [0.0283, 0.4), holds none of the four levels the
  // 7-NFE sampler evaluates (80, 9.72, 0.470, 0.002): refused before the teacher trains.
  const fs::path refused_db = tmp / "refused" / "results.db";
  const RunResult refused = run_msd({"run", (tmp / "o2mkd.toml").string(), "--db", refused_db.string(), "--set",
                                     "partition.k=4", "--set", "teacher.steps=100000"},
                                    tmp.path(), 120);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.output, HasSubstr("cell 1 (sigma [0.0283, 0.4)) holds none of the 7 noise levels"));
  EXPECT_THAT(refused.output, HasSubstr("noise_equal_nfe"));
  const auto refused_runs = read_runs(refused_db);
  ASSERT_EQ(refused_runs.size(), 1u);
  EXPECT_EQ(refused_runs[0].record.status, RunStatus::failed);
  EXPECT_FALSE(refused_runs[0].metric("teacher.train_seconds").has_value());
}

// noise_difficulty: after the teacher, a one-student probe trains 20 iterations and its loss is measured
// at each of the 4 levels the 7-NFE sampler evaluates; the boundary sits between two of them. `msd
// sample` rebuilds the same cells from what the run recorded.
TEST(EndToEnd, DifficultyPartitionSplitsByAProbesRecordedLoss) {
  TempDir tmp;
  write_text(tmp / "o2mkd.toml",
             tiny_o2mkd("plugin = \"noise_difficulty\"\nprobe_steps = 20\nprobe_samples = 64\n"
                        "probe_losses = [\"kd_prediction\"]\n"));
  const fs::path db = tmp / "results.db";
  const RunResult r = run_msd({"run", (tmp / "o2mkd.toml").string(), "--db", db.string()}, tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto runs = read_runs(db);
  ASSERT_EQ(runs.size(), 1u);
  const RunView& run = runs[0];
  ASSERT_EQ(run.record.status, RunStatus::finished) << run.record.error;

  std::vector<double> sigma, loss;
  bool probe_curve = false;
  for (const auto& m : run.all_metrics) {
    if (m.scope != "probe") continue;
    if (m.name == "probe.sigma") sigma.push_back(m.value);
    if (m.name == "probe.loss") loss.push_back(m.value);
    probe_curve = probe_curve || m.name == "train.probe.kd_prediction";
  }
  EXPECT_TRUE(probe_curve) << "no curve of the probe's training";
  ASSERT_EQ(sigma.size(), 4u);  // 80, 9.72, 0.470, 0.002
  ASSERT_EQ(loss.size(), 4u);
  for (const double l : loss) EXPECT_TRUE(std::isfinite(l) && l > 0.0) << l;
  EXPECT_TRUE(run.metric("probe.seconds", "probe").has_value());

  // The boundary is the geometric mean of two neighbouring measured levels.
  std::sort(sigma.begin(), sigma.end());
  std::vector<std::string> possible;
  for (size_t i = 0; i + 1 < sigma.size(); ++i) {
    std::ostringstream label;
    label << "sigma [0, " << std::setprecision(3) << std::sqrt(sigma[i] * sigma[i + 1]) << ")";
    possible.push_back(label.str());
  }
  ASSERT_TRUE(run.tag("cell.0").has_value());
  EXPECT_THAT(possible, testing::Contains(*run.tag("cell.0")));

  const RunResult sampled = run_msd({"sample", std::to_string(run.record.id), "--n", "20", "--out",
                                     (tmp / "s.npy").string(), "--from", "students", "--db", db.string()},
                                    tmp.path());
  EXPECT_EQ(sampled.exit_code, 0) << sampled.output;

  // A probe loss that is not one of the stage's is refused before the teacher trains.
  const fs::path refused_db = tmp / "refused" / "results.db";
  const RunResult refused = run_msd({"run", (tmp / "o2mkd.toml").string(), "--db", refused_db.string(), "--set",
                                     "partition.probe_losses=[\"dm\"]", "--set", "teacher.steps=100000"},
                                    tmp.path(), 120);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.output, HasSubstr("probe_losses names 'dm', which is not a loss of stage 'kd'"));
}

// The hybrid of the repository's experiments/toy_hybrid.toml, from the file alone (smoke sizes):
// 2 class groups x 2 noise ranges, four multi-step students, each cell bounding both keys.
TEST(EndToEnd, HybridPartitionRunsFromItsExperimentFile) {
  TempDir tmp;
  const fs::path db = tmp / "results.db";
  const RunResult r = run_msd({"run", (experiments_dir() / "toy_hybrid.toml").string(), "--only", "hybrid_2x2", "--db",
                               db.string(), "--set", "experiment.threads=1", "--set", "teacher.steps=150", "--set",
                               "teacher.hidden=32", "--set", "teacher.sampler_steps=4", "--set", "stage.0.steps=20",
                               "--set", "evaluate.samples=300"},
                              tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto runs = read_runs(db);
  ASSERT_EQ(runs.size(), 1u);
  const RunView& run = runs[0];
  EXPECT_EQ(run.record.status, RunStatus::finished) << run.record.error;
  EXPECT_EQ(run.metric("nfe"), std::optional<double>(7.0));
  EXPECT_EQ(run.metric("students"), std::optional<double>(4.0));
  EXPECT_EQ(run.tag("cell.0"), std::optional<std::string>("classes 0-2, sigma [0, 0.4)"));
  EXPECT_EQ(run.tag("cell.1"), std::optional<std::string>("classes 0-2, sigma [0.4, inf)"));
  EXPECT_EQ(run.tag("cell.2"), std::optional<std::string>("classes 3-4, sigma [0, 0.4)"));
  EXPECT_EQ(run.tag("cell.3"), std::optional<std::string>("classes 3-4, sigma [0.4, inf)"));
  EXPECT_EQ(run.artifact_paths("student").size(), 4u);
  ASSERT_TRUE(run.metric("swd").has_value());
  EXPECT_TRUE(std::isfinite(*run.metric("swd")));
}

// 5. ----------------------------------------------------------------------------------------------
TEST(EndToEnd, TeacherOnlyBaseline) {
  TempDir tmp;
  write_text(tmp / "teacher.toml", tiny_head({"teacher_only"}) + "[distill]\nenabled = false\n\n" + tiny_evaluate());
  const fs::path db = tmp / "results.db";
  const RunResult r = run_msd({"run", (tmp / "teacher.toml").string(), "--db", db.string()}, tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;

  const auto runs = read_runs(db);
  ASSERT_EQ(runs.size(), 1u);
  const RunView& run = runs[0];
  EXPECT_EQ(run.record.status, RunStatus::finished) << run.record.error;
  EXPECT_EQ(run.metric("nfe"), std::optional<double>(7.0));
  EXPECT_EQ(run.metric("students"), std::optional<double>(0.0));
  EXPECT_EQ(run.tag("model"), std::optional<std::string>("teacher"));
  EXPECT_TRUE(run.metric("swd").has_value());
  EXPECT_TRUE(run.metric("latency_ms_per_sample").has_value());
  EXPECT_FALSE(run.metric("train.iterations").has_value());
  EXPECT_FALSE(run.tag("cell.0").has_value());
  EXPECT_TRUE(run.artifact_paths("student").empty());
  EXPECT_EQ(run.artifact_paths("teacher").size(), 1u);
  EXPECT_EQ(run.artifact_paths("samples").size(), 1u);
  // The summary table calls the model "teacher" in the K column.
  EXPECT_THAT(r.output, HasSubstr("teacher"));
}

// 6. ----------------------------------------------------------------------------------------------
TEST(EndToEnd, VariantsRunInFileOrderAndOnlySelectsThem) {
  TempDir tmp;
  TinyOptions options;
  options.name = "variants";
  options.stage_steps = 20;
  const fs::path file = tmp / "variants.toml";
  write_text(file, tiny_msd_config(options) +
                       "[[sweep.variant]]\n"
                       "name = \"teacher_only\"\n"
                       "distill.enabled = false\n"
                       "\n"
                       "[[sweep.variant]]\n"
                       "name = \"k1\"\n"
                       "partition.k = 1\n"
                       "\n"
                       "[[sweep.variant]]\n"
                       "name = \"k2\"\n");

  const fs::path db = tmp / "all.db";
  const RunResult all = run_msd({"run", file.string(), "--db", db.string()}, tmp.path());
  ASSERT_EQ(all.exit_code, 0) << all.output;
  const auto runs = read_runs(db);
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].record.name, "teacher_only");
  EXPECT_EQ(runs[1].record.name, "k1");
  EXPECT_EQ(runs[2].record.name, "k2");
  for (const auto& run : runs) {
    EXPECT_EQ(run.record.status, RunStatus::finished) << run.record.name << ": " << run.record.error;
    EXPECT_EQ(run.record.experiment, "variants");
  }
  EXPECT_EQ(runs[0].metric("students"), std::optional<double>(0.0));
  EXPECT_EQ(runs[1].metric("students"), std::optional<double>(1.0));
  EXPECT_EQ(runs[2].metric("students"), std::optional<double>(2.0));
  EXPECT_EQ(runs[1].metric("train.iterations"), std::optional<double>(20.0));
  EXPECT_EQ(runs[2].metric("train.iterations"), std::optional<double>(40.0));
  EXPECT_EQ(runs[1].param("partition.k"), std::optional<std::string>("1"));
  EXPECT_EQ(runs[2].param("partition.k"), std::optional<std::string>("2"));
  // The variants share one teacher: trained by the first, reused by the others.
  EXPECT_EQ(runs[0].metric("teacher.cached"), std::optional<double>(0.0));
  EXPECT_EQ(runs[1].metric("teacher.cached"), std::optional<double>(1.0));
  EXPECT_EQ(runs[2].metric("teacher.cached"), std::optional<double>(1.0));
  // The summary names every variant.
  for (const char* name : {"teacher_only", "k1", "k2"}) EXPECT_THAT(all.output, HasSubstr(name));

  const fs::path only_db = tmp / "only.db";
  const RunResult only = run_msd({"run", file.string(), "--db", only_db.string(), "--only", "k1"}, tmp.path());
  ASSERT_EQ(only.exit_code, 0) << only.output;
  const auto only_runs = read_runs(only_db);
  ASSERT_EQ(only_runs.size(), 1u);
  EXPECT_EQ(only_runs[0].record.name, "k1");
  EXPECT_EQ(only_runs[0].record.status, RunStatus::finished);
  // Same resolved config as k1 of the full run.
  EXPECT_EQ(only_runs[0].record.config_hash, runs[1].record.config_hash);

  const fs::path missing_db = tmp / "missing.db";
  const RunResult missing = run_msd({"run", file.string(), "--db", missing_db.string(), "--only", "missing"}, tmp.path());
  EXPECT_NE(missing.exit_code, 0) << missing.output;
  EXPECT_THAT(missing.output, HasSubstr("missing"));
  EXPECT_THAT(missing.output, HasSubstr("no variant"));
  EXPECT_FALSE(fs::exists(missing_db)) << "--only with an unknown name should fail before opening the database";
}

// Workers that start together and need the same teacher train it once: the others wait for the
// cache file and load it.
TEST(EndToEnd, ConcurrentRunsTrainASharedTeacherOnce) {
  TempDir tmp;
  const fs::path file = tmp / "tiny.toml";
  write_text(file, tiny_msd_config());
  const fs::path cache = tmp / "cache";
  std::vector<pid_t> workers;
  for (int i = 0; i < 3; ++i) {
    const fs::path db = tmp / ("worker" + std::to_string(i)) / "results.db";
    workers.push_back(spawn_msd({"run", file.string(), "--db", db.string(), "--cache", cache.string()}, tmp.path(),
                                tmp / ("worker" + std::to_string(i) + ".log")));
  }
  int trained = 0;
  for (int i = 0; i < 3; ++i) {
    const std::optional<int> code = wait_for_exit(workers[i], 300);
    ASSERT_EQ(code, std::optional<int>(0)) << read_text(tmp / ("worker" + std::to_string(i) + ".log"));
    const auto runs = read_runs(tmp / ("worker" + std::to_string(i)) / "results.db");
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].record.status, RunStatus::finished) << runs[0].record.error;
    if (runs[0].metric("teacher.cached") == std::optional<double>(0.0)) ++trained;
  }
  EXPECT_EQ(trained, 1) << "exactly one worker should train the shared teacher";
  EXPECT_EQ(files_with_extension(cache / "teachers", ".pt").size(), 1u);
}


// --student-jobs: the students are trained in `msd train-student` processes (here 4 students, 3 at
// a time), and they, their curves and the scores are bit-identical to those of one process.
TEST(EndToEnd, StudentProcessesTrainTheSameStudentsAsOneProcess) {
  TempDir a, b;
  std::string text = tiny_msd_config();
  text.replace(text.find("k = 2"), 5, "k = 4");
  write_text(a / "tiny.toml", text);
  write_text(b / "tiny.toml", text);
  const RunResult one = run_msd({"run", (a / "tiny.toml").string(), "--db", (a / "results.db").string()}, a.path());
  ASSERT_EQ(one.exit_code, 0) << one.output;
  fs::copy(a / "cache", b / "cache", fs::copy_options::recursive);
  const RunResult many = run_msd({"run", (b / "tiny.toml").string(), "--db", (b / "results.db").string(),
                                  "--student-jobs", "3"},
                                 b.path());
  ASSERT_EQ(many.exit_code, 0) << many.output;
  EXPECT_THAT(many.output, HasSubstr("training 4 students in 3 processes at once"));
  EXPECT_THAT(one.output, Not(HasSubstr("processes at once")));

  const RunView x = read_runs(a / "results.db").at(0);
  const RunView y = read_runs(b / "results.db").at(0);
  ASSERT_EQ(y.record.status, RunStatus::finished) << y.record.error;
  expect_same_scores(x, y, "one process vs student processes");
  ASSERT_EQ(x.artifact_paths("student").size(), 4u);
  ASSERT_EQ(y.artifact_paths("student").size(), 4u);
  for (size_t k = 0; k < 4; ++k) {
    EXPECT_TRUE(same_file_contents(x.artifact_paths("student")[k], y.artifact_paths("student")[k])) << "student " << k;
    const fs::path folder = y.artifact_paths("student")[k].parent_path();
    EXPECT_TRUE(fs::exists(folder / ("student-" + std::to_string(k) + ".log"))) << "student " << k;
    EXPECT_FALSE(fs::exists(folder / ("student-" + std::to_string(k) + ".compute.pt"))) << "left behind";
  }
  // The processes recorded each student's curves and compute; the wall-clock ones (seconds, FLOPs per
  // second) differ, nothing else.
  const auto rows = [](const RunView& run) {
    std::vector<std::string> out;
    for (const auto& m : run.all_metrics) {
      if (m.scope.rfind("student:", 0) != 0 || m.name.find("second") != std::string::npos) continue;
      out.push_back(m.scope + " " + m.name + " " + std::to_string(m.step) + " " + std::to_string(m.value));
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_EQ(rows(x), rows(y));
  EXPECT_GE(rows(y).size(), 4u * 20u);
  EXPECT_EQ(y.metric("train.iterations", "student:3"), std::optional<double>(40.0));
}

// Run ids restart at 1 in every database: two databases in one folder keep their run files (and sweep
// logs and Slurm shards) apart, and a new run never takes the files that a deleted database's run 1
// left (here a student process's finished student and a checkpoint, which the run would otherwise
// have loaded as its own).
TEST(EndToEnd, RunFoldersBelongToOneDatabaseAndStaleOnesAreSetAside) {
  TempDir tmp;
  write_text(tmp / "tiny.toml", tiny_msd_config());
  const RunResult first = run_msd({"run", (tmp / "tiny.toml").string(), "--db", (tmp / "results.db").string()}, tmp.path());
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const RunResult other = run_msd({"sweep", (tmp / "tiny.toml").string(), "--db", (tmp / "bench.db").string(),
                                   "--jobs", "2"},
                                  tmp.path());
  ASSERT_EQ(other.exit_code, 0) << other.output;
  const RunResult slurm = run_msd({"sweep", (tmp / "tiny.toml").string(), "--db", (tmp / "bench.db").string(),
                                   "--launcher", "slurm", "--force"},
                                  tmp.path());
  ASSERT_EQ(slurm.exit_code, 0) << slurm.output;
  // Worker logs and Slurm shards are the database's too.
  EXPECT_TRUE(fs::is_directory(tmp / "bench.logs")) << other.output;
  EXPECT_TRUE(fs::is_directory(tmp / "bench.shards")) << slurm.output;
  EXPECT_FALSE(fs::exists(tmp / "logs"));
  EXPECT_FALSE(fs::exists(tmp / "shards"));
  const RunView a = read_runs(tmp / "results.db").at(0);
  const RunView b = read_runs(tmp / "bench.db").at(0);
  ASSERT_EQ(a.artifact_paths("student").size(), 2u);
  ASSERT_EQ(b.artifact_paths("student").size(), 2u);
  EXPECT_EQ(a.artifact_paths("student")[0], tmp / "runs" / "run-1" / "student-0.pt");
  EXPECT_EQ(b.artifact_paths("student")[0], tmp / "bench.runs" / "run-1" / "student-0.pt");
  EXPECT_TRUE(same_file_contents(a.artifact_paths("student")[0], b.artifact_paths("student")[0]));

  // The database goes, its run folder stays, and the folder holds what an interrupted attempt left.
  fs::remove(tmp / "results.db");
  const fs::path run_dir = tmp / "runs" / "run-1";
  write_text(run_dir / "student-0.compute.pt", "not an archive");
  write_text(run_dir / "checkpoint-student-1.pt", "not an archive");
  const RunResult again = run_msd({"run", (tmp / "tiny.toml").string(), "--db", (tmp / "results.db").string(),
                                   "--student-jobs", "2"},
                                  tmp.path());
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("moved them to " + (tmp / "runs" / "run-1.stale-1").string()));
  EXPECT_EQ(read_text(tmp / "runs" / "run-1.stale-1" / "checkpoint-student-1.pt"), "not an archive");
  EXPECT_TRUE(fs::exists(tmp / "runs" / "run-1.stale-1" / "student-1.pt")) << "nothing is deleted";
  const RunView c = read_runs(tmp / "results.db").at(0);
  EXPECT_EQ(c.record.status, RunStatus::finished) << c.record.error;
  EXPECT_EQ(c.metric("swd"), a.metric("swd"));
}

}  // namespace
}  // namespace msd_integration
