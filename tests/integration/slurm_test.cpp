// `msd sweep --launcher slurm --submit` on a real Slurm, then `msd results merge` of its shards, twice.
// Needs a running Slurm whose jobs run on this machine: as root, scripts/slurm_local.sh start (which
// scripts/test.sh does). Without one the test fails, unless MSD_SKIP_SLURM_TESTS=1 skips it.
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "helpers.h"

namespace msd_integration {
namespace {

using ::testing::HasSubstr;
using msd::results::RunStatus;

// How long the array may take: three tiny runs on a two-core CI machine take well under a minute;
// this only bounds a hung queue.
constexpr int kQueueTimeoutSeconds = 900;

struct ShellResult {
  int status = -1;
  std::string output;  ///< stdout and stderr
};

ShellResult shell(const std::string& command) {
  ShellResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[512];
  while (fgets(buffer, sizeof buffer, pipe) != nullptr) result.output += buffer;
  const int status = pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

/// Why Slurm cannot run jobs here, or "" when it can.
std::string slurm_unavailable() {
  if (shell("command -v sbatch").status != 0) return "sbatch is not installed (Debian package slurm-wlm)";
  const ShellResult ping = shell("scontrol ping");
  if (ping.status != 0 || ping.output.find("is UP") == std::string::npos) return "slurmctld does not answer: " + ping.output;
  return "";
}

/// Cancels the job when the test ends early, so that no task outlives its temporary folder.
struct CancelOnExit {
  std::string job;
  ~CancelOnExit() {
    if (!job.empty()) shell("scancel " + job);
  }
};

/// Waits until job `job` has left the queue; false when it is still there after the timeout.
bool wait_for_job(const std::string& job) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kQueueTimeoutSeconds);
  while (std::chrono::steady_clock::now() < deadline) {
    // squeue forgets a job some time after it ended and then calls its id invalid.
    const ShellResult queue = shell("squeue -h -j " + job + " -o %i");
    if ((queue.status == 0 && queue.output.find_first_not_of(" \n") == std::string::npos) ||
        queue.output.find("Invalid job id") != std::string::npos) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }
  return false;
}

/// The database's rows without ids, runs named by uuid, and the number of rows of each table.
std::string database_content(const fs::path& db) {
  const msd::results::Store store(db.string(), msd::results::Store::Mode::read_only);
  std::string text;
  for (const char* table : {"experiments", "runs", "params", "sweep_coords", "tags", "metrics", "artifacts"}) {
    text += std::string(table) + ": " + store.query(std::string("SELECT count(*) FROM ") + table).rows.at(0).at(0).text + "\n";
  }
  for (const char* sql : {
           "SELECT r.uuid, r.name, r.status, r.config_hash, r.sweep_index, r.ended_at FROM runs r ORDER BY r.uuid",
           "SELECT r.uuid, m.scope, m.name, m.step, m.value, m.non_finite FROM metrics m JOIN runs r ON r.id = m.run_id "
           "ORDER BY 1, 2, 3, 4",
           "SELECT r.uuid, p.key, p.value FROM params p JOIN runs r ON r.id = p.run_id ORDER BY 1, 2",
           "SELECT r.uuid, a.kind, a.path FROM artifacts a JOIN runs r ON r.id = a.run_id ORDER BY 1, 2, 3"}) {
    for (const auto& row : store.query(sql).rows) {
      for (const auto& cell : row) text += cell.text + "|";
      text += "\n";
    }
  }
  return text;
}

std::string task_logs(const fs::path& folder) {
  std::string text;
  if (!fs::exists(folder)) return "(no log folder " + folder.string() + ")";
  for (const auto& entry : fs::directory_iterator(folder)) {
    text += "---- " + entry.path().filename().string() + "\n" + read_text(entry.path());
  }
  return text;
}

TEST(Slurm, JobArrayShardsMergeIntoOneDatabaseIdempotently) {
  const std::string unavailable = slurm_unavailable();
  if (!unavailable.empty()) {
    const char* skip = std::getenv("MSD_SKIP_SLURM_TESTS");
    if (skip != nullptr && std::string(skip) == "1") GTEST_SKIP() << "MSD_SKIP_SLURM_TESTS=1: " << unavailable;
    FAIL() << "Slurm is not running on this machine: " << unavailable
           << "\nStart a single-node Slurm with `sudo scripts/slurm_local.sh start`, or set MSD_SKIP_SLURM_TESTS=1 "
              "to skip this test.";
  }

  TempDir tmp;
  TinyOptions options;
  options.name = "tiny_slurm";
  options.stage_steps = 20;
  const fs::path file = tmp / "sweep.toml";
  write_text(file, tiny_msd_config(options) +
                       "[sweep.grid]\n"
                       "\"partition.k\" = [1, 2, 3]\n");
  const fs::path db = tmp / "out" / "results.db";

  const RunResult launch = run_msd({"sweep", file.string(), "--db", db.string(), "--launcher", "slurm", "--submit",
                                    "--slurm-option=--time=30", "--student-jobs", "2"},
                                   tmp.path());
  ASSERT_EQ(launch.exit_code, 0) << launch.output;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(launch.output, match, std::regex("submitted job ([0-9]+)"))) << launch.output;
  CancelOnExit cancel{match[1]};
  EXPECT_THAT(launch.output, HasSubstr("results merge"));

  ASSERT_TRUE(fs::exists(tmp / "out" / "shards"));
  const fs::path sweep_folder = fs::directory_iterator(tmp / "out" / "shards")->path();
  const std::string script = read_text(sweep_folder / "sweep.sbatch");
  EXPECT_THAT(script, HasSubstr("#SBATCH --array=0-2\n"));
  EXPECT_THAT(script, HasSubstr("#SBATCH --time=30\n"));
  EXPECT_THAT(script, HasSubstr(" --student-jobs 2"));

  ASSERT_TRUE(wait_for_job(cancel.job)) << "job " << cancel.job << " still queued after " << kQueueTimeoutSeconds
                                        << " s\n" << shell("squeue").output;
  cancel.job.clear();

  std::vector<std::string> shards;
  for (int task = 0; task < 3; ++task) {
    const fs::path shard = sweep_folder / ("shard-" + std::to_string(task)) / "results.db";
    ASSERT_TRUE(fs::exists(shard)) << "task " << task << " wrote no " << shard << "\n" << task_logs(sweep_folder / "logs");
    // Task i ran sweep index i, and only it.
    const std::vector<RunView> runs = read_runs(shard);
    ASSERT_EQ(runs.size(), 1u) << shard;
    EXPECT_EQ(runs[0].record.sweep_index, task);
    EXPECT_EQ(runs[0].record.status, RunStatus::finished) << runs[0].record.error << "\n"
                                                          << task_logs(sweep_folder / "logs");
    // Tasks with K > 1 trained their students in student processes (--student-jobs 2).
    if (task > 0) EXPECT_TRUE(fs::exists(shard.parent_path() / "runs" / "run-1" / "student-1.log")) << "task " << task;
    shards.push_back(shard.string());
  }

  const fs::path merged = tmp / "merged" / "results.db";
  std::vector<std::string> merge_args = {"results", "merge", merged.string()};
  merge_args.insert(merge_args.end(), shards.begin(), shards.end());
  const RunResult first = run_msd(merge_args, tmp.path());
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_THAT(first.output, HasSubstr("3 runs added, 0 updated, 0 unchanged from 3 shards"));

  const std::vector<RunView> runs = read_runs(merged);
  ASSERT_EQ(runs.size(), 3u);
  std::set<std::int64_t> indices;
  std::set<std::string> uuids;
  for (const RunView& run : runs) {
    EXPECT_EQ(run.record.status, RunStatus::finished) << run.record.name;
    EXPECT_EQ(run.record.sweep_id, runs[0].record.sweep_id);
    EXPECT_TRUE(run.metric("swd").has_value()) << run.record.name;
    indices.insert(run.record.sweep_index);
    uuids.insert(run.record.uuid);
  }
  EXPECT_EQ(indices, (std::set<std::int64_t>{0, 1, 2})) << "every run exactly once";
  EXPECT_EQ(uuids.size(), 3u);
  const std::string once = database_content(merged);

  const RunResult second = run_msd(merge_args, tmp.path());
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_THAT(second.output, HasSubstr("0 runs added, 0 updated, 3 unchanged from 3 shards"));
  EXPECT_EQ(database_content(merged), once);
}

}  // namespace
}  // namespace msd_integration
