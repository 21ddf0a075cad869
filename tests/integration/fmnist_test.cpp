// The image pipeline end to end at smoke size: experiments/fmnist_msd.toml with the overrides its
// header lists (Fashion-MNIST from the Debian package, the feature classifier, a small EDM UNet teacher
// at four NFE, MSD K=4 and K=1 one-step students through DM then ADM, every image metric). The sweep
// runs with --student-jobs 2, so MSD's students train in student processes, two at a time. Then the
// smoke sizes of the ablations, of the CPU studies (fmnist_msd_cpu.toml, fmnist_o2mkd_cpu.toml) and of
// fmnist_o2mkd.toml.
#include <algorithm>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "helpers.h"

namespace msd_integration {
namespace {

using ::testing::HasSubstr;
using msd::results::RunStatus;

/// The smoke size of the image experiments (the same list is in experiments/fmnist_msd.toml).
const std::vector<std::string> kSmoke = {
    "teacher.base_channels=16", "teacher.channel_mult=[1,2]", "teacher.embed=64", "teacher.steps=150",
    "teacher.batch_size=32",    "budget.batch_size=16",       "stage.0.steps=16",
    "stage.1.steps=8",          "distill.pairs=64",           "evaluate.samples=500",
    "evaluate.metric.0.kid_subset_size=200", "evaluate.metric.0.samples=500",
    "evaluate.metric.0.kid_subsets=10",      "evaluate.metric.1.batch=32", "evaluate.metric.1.repeats=1"};

/// The smoke size of experiments/fmnist_msd_cpu.toml (the same list is in its header).
const std::vector<std::string> kCpuSmoke = {
    "teacher.steps=150", "teacher.batch_size=32", "budget.batch_size=8", "distill.pairs=64",
    "stage.0.steps=4", "stage.1.steps=8", "stage.2.steps=4", "evaluate.samples=300",
    "evaluate.metric.0.kid_subset_size=100", "evaluate.metric.0.samples=300", "evaluate.metric.0.kid_subsets=5",
    "evaluate.metric.1.batch=32", "evaluate.metric.1.repeats=1"};

/// The smoke size of experiments/fmnist_o2mkd_cpu.toml (the same list is in its header).
const std::vector<std::string> kO2mkdSmoke = {
    "teacher.steps=150", "teacher.batch_size=32", "budget.batch_size=8", "stage.0.steps=8",
    "evaluate.samples=300", "evaluate.metric.0.samples=300", "evaluate.metric.0.kid_subset_size=100",
    "evaluate.metric.0.kid_subsets=5", "evaluate.metric.1.batch=32", "evaluate.metric.1.repeats=1",
    "evaluate.sampler_steps=[4]"};

/// `args` with `--set S` for each of `sets`.
std::vector<std::string> with_sets(std::vector<std::string> args, const std::vector<std::string>& sets) {
  for (const std::string& set : sets) args.insert(args.end(), {"--set", set});
  return args;
}

std::vector<std::string> with_smoke(std::vector<std::string> args) { return with_sets(std::move(args), kSmoke); }

/// The runs of `experiment` in `db`.
std::vector<RunView> runs_of(const fs::path& db, const std::string& experiment) {
  std::vector<RunView> runs;
  for (const RunView& run : read_runs(db)) {
    if (run.record.experiment == experiment) runs.push_back(run);
  }
  return runs;
}

// image_metrics reads more samples than a run would generate: refused when the file is loaded, by
// `msd validate` as by `msd run`, not after the teacher has trained.
TEST(Fmnist, MoreMetricSamplesThanTheRunGeneratesAreRefusedAtOnce) {
  TempDir tmp;
  for (const std::string command : {"validate", "run"}) {
    std::vector<std::string> args{command, (experiments_dir() / "fmnist_msd_cpu.toml").string(), "--set",
                                  "evaluate.samples=100"};
    if (command == "run") args.insert(args.end(), {"--db", (tmp / "results.db").string()});
    const RunResult refused = run_msd(args, tmp.path(), 60);
    EXPECT_NE(refused.exit_code, 0) << command;
    EXPECT_THAT(refused.output, HasSubstr("evaluate.metric.0 (image_metrics): image_metrics: samples = 5000 but the "
                                          "model under test generates 100 (evaluate.samples)"))
        << command << ": " << refused.output;
  }
  EXPECT_FALSE(fs::exists(tmp / "cache")) << "nothing may be prepared for a refused file";
}

TEST(Fmnist, SmokePipelineRecordsEveryImageMetric) {
  TempDir tmp;
  const fs::path db = tmp / "out" / "results.db";
  const RunResult sweep =
      run_msd(with_smoke({"sweep", (experiments_dir() / "fmnist_msd.toml").string(), "--db", db.string(),
                          "--student-jobs", "2"}),
              tmp.path(), 1500);
  ASSERT_EQ(sweep.exit_code, 0) << sweep.output;
  EXPECT_THAT(sweep.output, HasSubstr("training 4 students in 2 processes at once"));

  const std::vector<RunView> runs = read_runs(db);
  ASSERT_EQ(runs.size(), 8u);
  int trained_teachers = 0;
  for (const RunView& run : runs) {
    EXPECT_EQ(run.record.status, RunStatus::finished) << run.record.name << ": " << run.record.error;
    if (run.metric("teacher.cached") == 0.0) ++trained_teachers;
    // Every evaluation is measured in the platform's feature space, with that space's accuracy.
    ASSERT_TRUE(run.metric("feature_net.test_accuracy").has_value()) << run.record.name;
    EXPECT_GE(*run.metric("feature_net.test_accuracy"), 0.90) << "the feature classifier must reach 90%";
    for (const char* name : {"fd", "kid", "precision", "recall", "cond_accuracy", "floor.fd", "floor.kid",
                             "floor.precision", "floor.recall", "floor.cond_accuracy"}) {
      EXPECT_TRUE(run.metric(name).has_value()) << run.record.name << " lacks " << name;
    }
    for (int c = 0; c < 10; ++c) {
      EXPECT_TRUE(run.metric("fd", "class:" + std::to_string(c)).has_value()) << run.record.name << " class " << c;
    }
    EXPECT_GT(*run.metric("fd"), 0.0);
    EXPECT_LT(*run.metric("floor.fd"), *run.metric("fd")) << "real images must score better than a smoke model";
    const std::vector<fs::path> grids = run.artifact_paths("image_grid");
    ASSERT_EQ(grids.size(), 1u) << run.record.name;
    EXPECT_TRUE(fs::exists(grids[0]));
  }
  // The five teacher runs differ only in sampler steps: one teacher trained, reused by every run.
  EXPECT_EQ(trained_teachers, 1);
  EXPECT_EQ(named(runs, "teacher_nfe3").metric("nfe"), 3.0);
  EXPECT_EQ(named(runs, "teacher_nfe7").metric("nfe"), 7.0);
  EXPECT_EQ(named(runs, "teacher_nfe15").metric("nfe"), 15.0);
  EXPECT_EQ(named(runs, "teacher").metric("nfe"), 35.0);
  EXPECT_EQ(named(runs, "teacher_nfe63").metric("nfe"), 63.0);
  for (const char* name : {"msd_k4", "msd_k4_per_student"}) {
    const RunView& msd = named(runs, name);
    EXPECT_EQ(msd.metric("nfe"), 1.0) << name;
    EXPECT_EQ(msd.metric("students"), 4.0) << name;
    ASSERT_EQ(msd.artifact_paths("student").size(), 4u) << name;
    for (int k = 0; k < 4; ++k) {
      const std::string scope = "student:" + std::to_string(k);
      bool dm_curve = false, adm_curve = false;
      for (const auto& row : msd.all_metrics) {
        dm_curve = dm_curve || (row.scope == scope && row.name == "train.dm.dm");
        adm_curve = adm_curve || (row.scope == scope && row.name == "train.adm.adm");
      }
      EXPECT_TRUE(dm_curve && adm_curve) << name << " " << scope << " lacks a DM or ADM training curve";
      const fs::path log = msd.artifact_paths("student")[static_cast<size_t>(k)].parent_path() /
                           ("student-" + std::to_string(k) + ".log");
      EXPECT_THAT(read_text(log), HasSubstr("adm.adm: starts from the state of dm")) << name << " " << scope;
    }
  }
  // The budget: msd_k4 shares DM 16 + ADM 8 iterations among its four students; msd_k4_per_student
  // gives each of them all of it.
  EXPECT_EQ(named(runs, "msd_k4").metric("train.iterations", "student:0"), 6.0);
  EXPECT_EQ(named(runs, "msd_k4_per_student").metric("train.iterations", "student:0"), 24.0);

  // k-means on the classifier's class-mean features: the partition that makes the host ask the dataset
  // for them (the teacher and classifier come from the sweep's cache).
  // The ablations' smoke size, as their file's header gives it: stage 0 is TSM (none here), DM and ADM
  // are stages 1 and 2.
  std::vector<std::string> ablation{"run", (experiments_dir() / "fmnist_ablations.toml").string(), "--only",
                                    "k4_kmeans", "--db", db.string()};
  for (const std::string& set : kSmoke) {
    if (set.rfind("stage.", 0) == 0) continue;
    ablation.insert(ablation.end(), {"--set", set});
  }
  ablation.insert(ablation.end(), {"--set", "stage.1.steps=16", "--set", "stage.2.steps=8"});
  const RunResult kmeans = run_msd(ablation, tmp.path(), 600);
  ASSERT_EQ(kmeans.exit_code, 0) << kmeans.output;
  const std::vector<RunView> all_runs = read_runs(db);
  const RunView& kmeans_run = all_runs.back();
  EXPECT_EQ(kmeans_run.record.name, "k4_kmeans");
  EXPECT_EQ(kmeans_run.metric("teacher.cached"), 1.0);
  std::set<std::string> cells;
  for (int k = 0; k < 4; ++k) {
    const std::optional<std::string> cell = kmeans_run.tag("cell." + std::to_string(k));
    ASSERT_TRUE(cell.has_value()) << "cell." << k;
    cells.insert(*cell);
  }
  EXPECT_EQ(cells.size(), 4u);

  // The ablation and tuning files share the teacher (their [dataset] and [teacher] must stay those of
  // fmnist_msd).
  std::set<std::string> teacher_hashes;
  for (const char* file : {"fmnist_msd.toml", "fmnist_ablations.toml", "fmnist_tuning.toml"}) {
    const RunResult validate = run_msd({"validate", (experiments_dir() / file).string()});
    ASSERT_EQ(validate.exit_code, 0) << validate.output;
    const std::regex row(R"(\s([0-9a-f]{16})\s+([0-9a-f]{16})\s)");
    for (auto it = std::sregex_iterator(validate.output.begin(), validate.output.end(), row);
         it != std::sregex_iterator(); ++it) {
      teacher_hashes.insert((*it)[2]);
    }
  }
  EXPECT_EQ(teacher_hashes.size(), 1u);

  // The CPU study's smoke size, as its file's header gives it: three of its variants, each over its
  // three seeds, each seed with its own teacher (the classifier comes from the cache above).
  std::vector<std::string> cpu{"run", (experiments_dir() / "fmnist_msd_cpu.toml").string(), "--db", db.string()};
  for (const char* variant : {"k4_batch_s1200", "k4_small_tsm_s1200", "k1_adm_s1200"}) {
    cpu.insert(cpu.end(), {"--only", variant});
  }
  const RunResult cpu_sweep = run_msd(with_sets(cpu, kCpuSmoke), tmp.path(), 900);
  ASSERT_EQ(cpu_sweep.exit_code, 0) << cpu_sweep.output;
  const std::vector<RunView> cpu_runs = runs_of(db, "fmnist_msd_cpu");
  ASSERT_EQ(cpu_runs.size(), 9u);
  std::set<std::int64_t> seeds;
  int cpu_teachers = 0;
  for (const RunView& run : cpu_runs) {
    EXPECT_EQ(run.record.status, RunStatus::finished) << run.record.name << ": " << run.record.error;
    EXPECT_TRUE(run.metric("fd").has_value()) << run.record.name;
    seeds.insert(run.record.seed);
    if (run.metric("teacher.cached") == 0.0) ++cpu_teachers;
  }
  EXPECT_EQ(seeds, (std::set<std::int64_t>{0, 1, 2}));
  EXPECT_EQ(cpu_teachers, 3);  // the seed is part of the teacher's hash
  for (const RunView& run : cpu_runs) {
    if (run.record.name != "k4_batch_s1200") continue;
    // budget.divide = "batch": each of the 4 students takes every iteration of every stage (the smoke
    // size sets TSM 4, DM 8 and ADM 4 for all variants) at batch 8 / 4.
    EXPECT_EQ(run.metric("train.iterations", "student:0"), 4.0 + 8.0 + 4.0);
    EXPECT_EQ(run.metric("train.samples", "student:0"), 2.0 * 16.0);
  }

  // O2MKD's CPU study at its smoke size: half-width multi-step UNet students on noise ranges, and the
  // hybrid, sampled with the teacher's 35-NFE sampler and timed against it; the teachers are those the
  // MSD study just trained (the two files share [dataset] and [teacher]).
  const std::string o2mkd_file = (experiments_dir() / "fmnist_o2mkd_cpu.toml").string();
  const RunResult o2mkd_run = run_msd(
      with_sets({"run", o2mkd_file, "--db", db.string(), "--only", "n4_equal_nfe", "--only", "classes_2", "--only",
                 "hybrid_2x2"},
                kO2mkdSmoke),
      tmp.path(), 900);
  ASSERT_EQ(o2mkd_run.exit_code, 0) << o2mkd_run.output;
  // The probe's keys exist only under noise_difficulty, so its smoke size is a variant of its own (a
  // --set applies to every run of the file).
  write_text(tmp / "o2mkd_probe.toml", read_text(o2mkd_file) +
                                           "\n[[sweep.variant]]\n"
                                           "name = \"n4_difficulty_smoke\"\n"
                                           "partition.plugin = \"noise_difficulty\"\n"
                                           "partition.probe_steps = 8\n"
                                           "partition.probe_samples = 16\n");
  const RunResult difficulty_run = run_msd(
      with_sets({"run", (tmp / "o2mkd_probe.toml").string(), "--db", db.string(), "--only", "n4_difficulty_smoke"},
                kO2mkdSmoke),
      tmp.path(), 900);
  ASSERT_EQ(difficulty_run.exit_code, 0) << difficulty_run.output;
  const std::vector<RunView> o2mkd_runs = runs_of(db, "fmnist_o2mkd_cpu");
  for (const RunView& run : o2mkd_runs) {
    EXPECT_EQ(run.record.status, RunStatus::finished) << run.record.name << ": " << run.record.error;
    EXPECT_EQ(run.metric("teacher.cached"), 1.0) << run.record.name;
    EXPECT_EQ(run.metric("nfe"), 35.0) << run.record.name;
    EXPECT_EQ(run.metric("teacher_nfe"), 35.0) << run.record.name;
    EXPECT_GT(*run.metric("acceleration"), 0.0) << run.record.name;
    EXPECT_LT(*run.metric("params"), *run.metric("teacher.params")) << "half-width students";
    const std::optional<std::string> cell = run.tag("cell.0");
    ASSERT_TRUE(cell.has_value()) << run.record.name;
    if (run.record.name.rfind("classes_2", 0) == 0) {
      EXPECT_EQ(*cell, "classes 0-4") << "the hybrid's class parent: multi-step students for every noise level";
    } else {
      EXPECT_THAT(*cell, HasSubstr("sigma [0, ")) << run.record.name;
    }
    if (run.record.name.rfind("hybrid_2x2", 0) == 0) EXPECT_THAT(*cell, HasSubstr("classes 0-4"));
    // The NFE curve (the smoke size keeps one point of it), timed against the teacher at the same NFE.
    EXPECT_TRUE(run.metric("fd", "nfe:7").has_value()) << run.record.name;
    EXPECT_EQ(run.metric("nfe", "nfe:7"), 7.0) << run.record.name;
    EXPECT_EQ(run.metric("teacher_nfe", "nfe:7"), 7.0) << run.record.name;
    // The difficulty probe measured each of the 18 distinct levels of the 35-NFE sampler.
    if (run.record.name.rfind("n4_difficulty", 0) != 0) continue;
    int levels = 0;
    for (const auto& m : run.all_metrics) levels += m.name == "probe.loss" && m.scope == "probe" ? 1 : 0;
    EXPECT_EQ(levels, 18) << run.record.name;
  }
  EXPECT_EQ(o2mkd_runs.size(), 12u);

  // The GPU-size file at its smoke size: the same students from fmnist_msd.toml's teacher, whose seed-0
  // smoke teacher the first sweep above trained.
  const std::vector<std::string> gpu_teacher = with_sets(
      {"run", (experiments_dir() / "fmnist_o2mkd.toml").string(), "--db", db.string(), "--only", "n4_equal_nfe"},
      {"teacher.base_channels=16", "teacher.channel_mult=[1,2]", "teacher.embed=64"});
  const RunResult o2mkd_gpu_run = run_msd(with_sets(gpu_teacher, kO2mkdSmoke), tmp.path(), 900);
  ASSERT_EQ(o2mkd_gpu_run.exit_code, 0) << o2mkd_gpu_run.output;
  const std::vector<RunView> gpu_runs = runs_of(db, "fmnist_o2mkd");
  for (const RunView& run : gpu_runs) {
    EXPECT_EQ(run.record.status, RunStatus::finished) << run.record.name << ": " << run.record.error;
    if (run.record.seed == 0) EXPECT_EQ(run.metric("teacher.cached"), 1.0) << "fmnist_msd.toml's teacher";
    EXPECT_EQ(run.metric("students"), 4.0) << run.record.name;
  }
  EXPECT_EQ(gpu_runs.size(), 3u);
}

}  // namespace
}  // namespace msd_integration
