// scripts/cpu_study.sh save: the copy of a study's database that is committed to git. Runs still
// going are interrupted in the copy (their checkpoints stay on the machine that ran them), training
// curves are thinned to 33 points, evaluations are kept whole, the study's own database is not
// touched, and the sample grids of finished seed-0 runs on this machine are copied beside the copy.
#include <sys/wait.h>

#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "helpers.h"

namespace msd_integration {
namespace {

using ::testing::HasSubstr;
using msd::results::MetricRow;
using msd::results::RunStatus;

constexpr std::int64_t kCurveSteps = 1200;  // a curve logged every 12 steps: 100 points
constexpr std::int64_t kCurveEvery = 12;

std::int64_t begin(msd::results::Store& store, const std::string& name) {
  msd::results::NewRun run;
  run.experiment = "study";
  run.name = name;
  run.config_hash = name;
  run.host = "test";
  run.device = "cpu";
  return store.begin_run(run);
}

/// A finished run with a 100-point training curve and an evaluation, and a running run with a
/// 10-point curve.
void make_study_database(const fs::path& db) {
  msd::results::Store store(db.string());
  const std::int64_t finished = begin(store, "finished");
  std::vector<MetricRow> rows;
  for (std::int64_t step = 0; step < kCurveSteps; step += kCurveEvery) {
    rows.push_back({"train.dm.dm", step, 1.0 / (1.0 + static_cast<double>(step)), "student:0"});
  }
  rows.push_back({"fd", 0, 30.5, ""});
  store.log_metrics(finished, rows);
  // Its grid is here; a second grid's file is not (a run another machine ran).
  fs::create_directories(db.parent_path() / "runs" / "run-1");
  write_text(db.parent_path() / "runs" / "run-1" / "samples_grid.png", "grid of run 1");
  store.add_artifact(finished, {"image_grid", (db.parent_path() / "runs" / "run-1" / "samples_grid.png").string()});
  store.finish_run(finished, RunStatus::finished);
  const std::int64_t elsewhere = begin(store, "elsewhere[seed=0]");
  store.add_artifact(elsewhere, {"image_grid", (db.parent_path() / "runs" / "run-2" / "samples_grid.png").string()});
  store.finish_run(elsewhere, RunStatus::finished);
  const std::int64_t running = begin(store, "running");
  std::vector<MetricRow> short_curve;
  for (std::int64_t step = 0; step < 10; ++step) short_curve.push_back({"train.dm.dm", step, 0.5, "student:0"});
  store.log_metrics(running, short_curve);
}

/// `scripts/cpu_study.sh save --dir STUDY --committed COPY --grids COPY's folder/grids`; its exit status.
int save(const fs::path& study, const fs::path& copy, const fs::path& log) {
  const fs::path script = experiments_dir().parent_path() / "scripts" / "cpu_study.sh";
  const std::string command = "bash '" + script.string() + "' save --dir '" + study.string() + "' --committed '" +
                              copy.string() + "' --grids '" + (copy.parent_path() / "grids").string() + "' > '" +
                              log.string() + "' 2>&1";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// The steps of run `name`'s curve train.dm.dm at student:0 in `db`.
std::vector<std::int64_t> curve_steps(const fs::path& db, const std::string& name) {
  std::vector<std::int64_t> steps;
  for (const RunView& run : read_runs(db)) {
    if (run.record.name != name) continue;
    for (const MetricRow& row : run.all_metrics) {
      if (row.name == "train.dm.dm" && row.scope == "student:0") steps.push_back(row.step);
    }
  }
  return steps;
}

TEST(StudyScript, SaveInterruptsRunningRunsAndThinsTrainingCurvesOfTheCopyOnly) {
  TempDir tmp;
  fs::create_directories(tmp / "study");
  make_study_database(tmp / "study" / "results.db");
  ASSERT_EQ(save(tmp / "study", tmp / "copy.db", tmp / "save.log"), 0) << read_text(tmp / "save.log");
  EXPECT_THAT(read_text(tmp / "save.log"), HasSubstr("saved "));

  EXPECT_THAT(read_text(tmp / "save.log"), HasSubstr("copied 1 seed-0 sample grids"));
  EXPECT_EQ(read_text(tmp / "grids" / "study" / "finished-seed0.png"), "grid of run 1");
  EXPECT_FALSE(fs::exists(tmp / "grids" / "study" / "elsewhere-seed0.png"));

  const std::vector<RunView> copy = read_runs(tmp / "copy.db");
  ASSERT_EQ(copy.size(), 3u);
  EXPECT_EQ(named(copy, "finished").record.status, RunStatus::finished);
  EXPECT_EQ(named(copy, "finished").metric("fd"), 30.5);
  EXPECT_EQ(named(copy, "running").record.status, RunStatus::interrupted);
  EXPECT_THAT(named(copy, "running").record.error, HasSubstr("when its database was saved to git"));

  // The first point of each of 32 equal slices of steps, and the last point.
  const std::vector<std::int64_t> thinned = curve_steps(tmp / "copy.db", "finished");
  ASSERT_EQ(thinned.size(), 33u);
  EXPECT_EQ(thinned.front(), 0);
  EXPECT_EQ(thinned.back(), kCurveSteps - kCurveEvery);
  std::set<std::int64_t> slices;
  for (std::int64_t step : thinned) {
    EXPECT_EQ(step % kCurveEvery, 0) << "only logged steps are kept";
    slices.insert((step * 31 + kCurveSteps - kCurveEvery - 1) / (kCurveSteps - kCurveEvery));
  }
  EXPECT_EQ(slices.size(), 32u) << "one point per slice, the last point beside its slice's first";
  EXPECT_EQ(curve_steps(tmp / "copy.db", "running").size(), 10u) << "a short curve is kept whole";

  // The study's own database is as it was.
  EXPECT_EQ(curve_steps(tmp / "study" / "results.db", "finished").size(),
            static_cast<std::size_t>(kCurveSteps / kCurveEvery));
  EXPECT_EQ(named(read_runs(tmp / "study" / "results.db"), "running").record.status, RunStatus::running);

  // Saving a study started from the copy (a new machine) keeps the thinned curve as it is.
  fs::create_directories(tmp / "next");
  fs::copy_file(tmp / "copy.db", tmp / "next" / "results.db");
  ASSERT_EQ(save(tmp / "next", tmp / "copy2.db", tmp / "save2.log"), 0) << read_text(tmp / "save2.log");
  EXPECT_EQ(curve_steps(tmp / "copy2.db", "finished"), thinned);
}

}  // namespace
}  // namespace msd_integration
