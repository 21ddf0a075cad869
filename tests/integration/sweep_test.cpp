// `msd sweep` end to end: a grid times seeds, the dry run's done/todo table, and skipping what the
// database has already finished.
#include <optional>
#include <set>
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

std::string tiny_sweep() {
  TinyOptions options;
  options.name = "tiny_sweep";
  options.stage_steps = 20;
  return tiny_msd_config(options) +
         "[sweep]\n"
         "seeds = [0, 1]\n"
         "\n"
         "[sweep.grid]\n"
         "\"partition.k\" = [1, 2]\n";
}

TEST(Sweep, RunsWhatIsNotDoneAndSkipsWhatIs) {
  TempDir tmp;
  const fs::path file = tmp / "sweep.toml";
  write_text(file, tiny_sweep());
  const fs::path db = tmp / "out" / "results.db";

  const RunResult plan = run_msd({"sweep", file.string(), "--db", db.string(), "--dry-run"}, tmp.path());
  ASSERT_EQ(plan.exit_code, 0) << plan.output;
  EXPECT_THAT(plan.output, HasSubstr("base[partition.k=1,seed=0]"));
  EXPECT_THAT(plan.output, HasSubstr("base[partition.k=2,seed=1]"));
  EXPECT_THAT(plan.output, HasSubstr("partition.k=2, experiment.seed=1"));
  EXPECT_THAT(plan.output, HasSubstr("4 runs, 0 done, 4 to run"));
  EXPECT_FALSE(fs::exists(db)) << "a dry run must create nothing";
  EXPECT_FALSE(fs::exists(tmp / "out"));

  const RunResult first = run_msd({"sweep", file.string(), "--db", db.string()}, tmp.path());
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_THAT(first.output, HasSubstr("ran 4, 0 already finished"));

  std::vector<RunView> runs = read_runs(db);
  ASSERT_EQ(runs.size(), 4u);
  std::set<std::string> hashes;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const msd::results::RunRecord& record = runs[i].record;
    EXPECT_EQ(record.status, RunStatus::finished) << record.error;
    EXPECT_EQ(record.sweep_index, static_cast<std::int64_t>(i));
    EXPECT_EQ(record.sweep_id.size(), 16u);
    EXPECT_EQ(record.sweep_id, runs[0].record.sweep_id);
    EXPECT_EQ(record.seed, static_cast<std::int64_t>(i % 2));
    EXPECT_EQ(runs[i].param("partition.k"), std::optional<std::string>(i < 2 ? "1" : "2"));
    hashes.insert(record.config_hash);
  }
  EXPECT_EQ(hashes.size(), 4u);
  EXPECT_EQ(runs[1].record.name, "base[partition.k=1,seed=1]");

  const RunResult again = run_msd({"sweep", file.string(), "--db", db.string(), "--dry-run"}, tmp.path());
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("4 runs, 4 done, 0 to run"));
  EXPECT_THAT(again.output, Not(HasSubstr("todo")));

  const RunResult rerun = run_msd({"sweep", file.string(), "--db", db.string()}, tmp.path());
  ASSERT_EQ(rerun.exit_code, 0) << rerun.output;
  EXPECT_THAT(rerun.output, HasSubstr("ran 0, 4 already finished"));
  EXPECT_EQ(read_runs(db).size(), 4u);
}

}  // namespace
}  // namespace msd_integration
