// A sweep run by worker processes, killed with SIGKILL (supervisor and workers at once) and run again:
// the second command resumes the interrupted runs from their checkpoints and finishes the rest, with
// every run and row recorded exactly once. This is the "must show" on the 2-D data.
#include <signal.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
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
using msd::results::Store;

/// K in {1, 2, 4, 8} x 3 seeds on 8 classes of 2-D points; a total budget, so runs cost alike.
std::string k_sweep() {
  TinyOptions options;
  options.name = "k_sweep";
  options.stage_steps = 960;
  std::string text = tiny_msd_config(options);
  const auto replace = [&](const std::string& from, const std::string& to) {
    const std::size_t at = text.find(from);
    if (at == std::string::npos) throw std::logic_error("tiny config has no '" + from + "'");
    text.replace(at, from.size(), to);
  };
  replace("scope = \"per_student\"", "scope = \"total\"");
  replace("plugin = \"gaussian_grid\"", "plugin = \"gaussian_grid\"\nclasses = 8");
  replace("[experiment]\n", "[experiment]\ncheckpoint_seconds = 0.2\n");
  return text +
         "[sweep]\n"
         "seeds = [0, 1, 2]\n"
         "\n"
         "[sweep.grid]\n"
         "\"partition.k\" = [1, 2, 4, 8]\n";
}

/// Kills the process group of a still-running child when the test ends early.
struct GroupGuard {
  pid_t pid;
  ~GroupGuard() {
    if (pid > 0 && !wait_for_exit(pid, 0).has_value()) {
      kill(-pid, SIGKILL);
      wait_for_exit(pid, 30);
    }
  }
};

/// Whether a run's folder holds a checkpoint: the run's (checkpoint.pt) or a student's
/// (checkpoint-student-<k>.pt).
bool has_checkpoint(const fs::path& run_dir) {
  if (!fs::exists(run_dir)) return false;
  for (const auto& entry : fs::directory_iterator(run_dir)) {
    if (entry.path().filename().string().rfind("checkpoint", 0) == 0) return true;
  }
  return false;
}

struct Snapshot {
  int finished = 0;
  bool running_with_checkpoint = false;
};

Snapshot look(const fs::path& db) {
  Snapshot s;
  if (!fs::exists(db)) return s;
  try {
    Store store(db.string(), Store::Mode::read_only);
    for (const auto& run : store.list_runs()) {
      if (run.status == RunStatus::finished) ++s.finished;
      if (run.status == RunStatus::running && has_checkpoint(db.parent_path() / "runs" / ("run-" + std::to_string(run.id)))) {
        s.running_with_checkpoint = true;
      }
    }
  } catch (const std::exception&) {
    // The first worker may still be creating the schema.
  }
  return s;
}

std::int64_t count(const fs::path& db, const std::string& sql) {
  Store store(db.string(), Store::Mode::read_only);
  return static_cast<std::int64_t>(store.query(sql).rows.at(0).at(0).real);
}

TEST(Resume, KilledSweepOfWorkersFinishesWithEveryRunOnce) {
  TempDir tmp;
  const fs::path file = tmp / "k_sweep.toml";
  write_text(file, k_sweep());
  const fs::path db = tmp / "out" / "results.db";
  const std::vector<std::string> sweep{"sweep", file.string(), "--db", db.string(), "--jobs", "2"};

  // Kill everything once some runs are finished and another has a checkpoint. The run seen with a
  // checkpoint may finish (and drop it) in the instant before the kill; then the kill left nothing to
  // resume from a checkpoint, and the scenario starts over in a fresh database.
  bool killed_with_checkpoint = false;
  for (int attempt = 0; attempt < 5 && !killed_with_checkpoint; ++attempt) {
    fs::remove_all(db.parent_path());
    GroupGuard first{spawn_msd(sweep, tmp.path(), tmp / "first.log")};
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    bool ready = false;
    while (!ready && std::chrono::steady_clock::now() < deadline) {
      const Snapshot s = look(db);
      ready = s.finished >= 3 && s.running_with_checkpoint;
      ASSERT_FALSE(wait_for_exit(first.pid, 0).has_value()) << "the sweep ended before it could be killed:\n"
                                                            << read_text(tmp / "first.log");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(ready) << read_text(tmp / "first.log");
    ASSERT_EQ(kill(-first.pid, SIGKILL), 0);
    ASSERT_EQ(wait_for_exit(first.pid, 30), 128 + SIGKILL);
    killed_with_checkpoint = look(db).running_with_checkpoint;
  }
  ASSERT_TRUE(killed_with_checkpoint) << "five kills in a row left no run with a checkpoint";
  const std::int64_t finished_before = count(db, "SELECT count(*) FROM runs WHERE status = 'finished'");
  ASSERT_LT(finished_before, 12);

  const RunResult second = run_msd(sweep, tmp.path(), 600);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_THAT(second.output, HasSubstr("12 of 12 runs finished"));

  // Exactly 12 runs, all finished, one per config; the interrupted ones were resumed, not restarted.
  const std::vector<RunView> runs = read_runs(db);
  ASSERT_EQ(runs.size(), 12u);
  std::set<std::string> hashes;
  std::int64_t resumed = 0;
  for (const RunView& run : runs) {
    EXPECT_EQ(run.record.status, RunStatus::finished) << run.record.error;
    hashes.insert(run.record.config_hash);
    if (run.record.attempts > 1) ++resumed;
  }
  EXPECT_EQ(hashes.size(), 12u);
  EXPECT_GE(resumed, 1);
  std::string worker_logs;
  for (const auto& entry : fs::recursive_directory_iterator(db.parent_path() / "logs")) {
    if (entry.is_regular_file()) worker_logs += read_text(entry.path());
  }
  // From a mid-stage checkpoint ("resumed at iteration") or one written after a student.
  EXPECT_THAT(worker_logs, HasSubstr("resuming from "));
  for (const RunView& run : runs) {
    EXPECT_FALSE(has_checkpoint(db.parent_path() / "runs" / ("run-" + std::to_string(run.record.id))))
        << "a finished run keeps no checkpoint";
  }

  // No duplicated rows, and no missing ones: every seed of a K logged the same rows, resumed or not.
  EXPECT_EQ(count(db, "SELECT count(*) FROM (SELECT run_id, kind, path FROM artifacts GROUP BY 1, 2, 3 HAVING count(*) > 1)"), 0);
  std::map<std::string, std::set<std::int64_t>> rows_per_k;
  for (const RunView& run : runs) rows_per_k[*run.param("partition.k")].insert(static_cast<std::int64_t>(run.all_metrics.size()));
  ASSERT_EQ(rows_per_k.size(), 4u);
  for (const auto& [k, sizes] : rows_per_k) EXPECT_EQ(sizes.size(), 1u) << "K=" << k << ": metric row counts differ";

  // A resumed run computes what an uninterrupted one does: rerun one in a fresh database and compare.
  const RunView* resumed_run = nullptr;
  for (const RunView& run : runs) {
    if (run.record.attempts > 1) resumed_run = &run;
  }
  ASSERT_NE(resumed_run, nullptr);
  const fs::path fresh = tmp / "fresh" / "results.db";
  const RunResult again = run_msd({"sweep", file.string(), "--db", fresh.string(), "--index",
                                   std::to_string(resumed_run->record.sweep_index)},
                                  tmp.path(), 300);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  const RunView reference = read_runs(fresh).at(0);
  EXPECT_EQ(reference.record.config_hash, resumed_run->record.config_hash);
  for (const char* metric : {"swd", "mmd", "mode_coverage"}) {
    EXPECT_EQ(reference.metric(metric), resumed_run->metric(metric)) << metric;
  }

  // The comparison researchers read: mean +- std over the 3 seeds, one row per K.
  const RunResult compare = run_msd({"results", "compare", "k_sweep", "--by", "partition.k", "--metric", "swd",
                                     "--db", db.string()});
  ASSERT_EQ(compare.exit_code, 0) << compare.output;
  for (const char* k : {"1", "2", "4", "8"}) EXPECT_THAT(compare.output, HasSubstr(k));
  EXPECT_THAT(compare.output, HasSubstr("±"));
  std::cout << compare.output;
}


/// Two students of 2 x 2500 iterations, checkpointing every 0.2 s, and the database of one
/// uninterrupted run of it, to compare resumed runs with (made once for the tests that use it).
struct LongRun {
  fs::path file;
  fs::path reference_db;
};

/// The long run in `folder`/`name`, with `experiment_keys` added to its [experiment] section.
LongRun make_long_run(const TempDir& folder, const std::string& name, const std::string& experiment_keys) {
  TinyOptions options;
  options.stage_steps = 2500;
  std::string text = tiny_msd_config(options);
  text.replace(text.find("[experiment]\n"), 13, "[experiment]\ncheckpoint_seconds = 0.2\n" + experiment_keys);
  LongRun run{folder / (name + ".toml"), folder / name / "results.db"};
  write_text(run.file, text);
  const RunResult reference = run_msd({"run", run.file.string(), "--db", run.reference_db.string()}, folder.path(), 600);
  EXPECT_EQ(reference.exit_code, 0) << reference.output;
  return run;
}

class ResumeStudents : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    folder_ = std::make_unique<TempDir>();
    run_ = make_long_run(*folder_, "reference", "");
    grouped_run_ = make_long_run(*folder_, "grouped", "students_per_network = 2\n");
  }
  static void TearDownTestSuite() { folder_.reset(); }

  static std::unique_ptr<TempDir> folder_;
  static LongRun run_;
  static LongRun grouped_run_;  ///< the same students trained as one grouped network
};
std::unique_ptr<TempDir> ResumeStudents::folder_;
LongRun ResumeStudents::run_;
LongRun ResumeStudents::grouped_run_;

/// Starts `msd sweep` of the long run into `folder` with `first_flags`, stops it with SIGINT once
/// every student in `checkpointed` has a checkpoint, then runs the same sweep with `second_flags` to
/// the end. Returns the second command's output; the resumed run's students must be those of the
/// uninterrupted reference, byte for byte.
std::string interrupt_and_resume(const TempDir& tmp, const LongRun& run, const std::string& folder,
                                 const std::vector<std::string>& first_flags,
                                 const std::vector<std::string>& second_flags, const std::vector<int>& checkpointed) {
  const fs::path db = tmp / folder / "results.db";
  fs::create_directories(db.parent_path());
  fs::copy(run.reference_db.parent_path() / "cache", db.parent_path() / "cache", fs::copy_options::recursive);
  std::vector<std::string> sweep{"sweep", run.file.string(), "--db", db.string()};
  const fs::path log = tmp / (folder + "-first.log");
  std::vector<std::string> first = sweep;
  first.insert(first.end(), first_flags.begin(), first_flags.end());
  GroupGuard attempt{spawn_msd(first, tmp.path(), log)};
  const fs::path run_dir = db.parent_path() / "runs" / "run-1";
  const auto all_checkpointed = [&] {
    for (int k : checkpointed) {
      if (!fs::exists(run_dir / ("checkpoint-student-" + std::to_string(k) + ".pt"))) return false;
    }
    return true;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (!all_checkpointed() && std::chrono::steady_clock::now() < deadline) {
    EXPECT_FALSE(wait_for_exit(attempt.pid, 0).has_value()) << "the run ended before it could be stopped:\n"
                                                            << read_text(log);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(all_checkpointed()) << read_text(log);
  EXPECT_EQ(kill(attempt.pid, SIGINT), 0);
  const auto code = wait_for_exit(attempt.pid, 60);
  EXPECT_TRUE(code.has_value()) << "msd did not stop within 60 s of SIGINT:\n" << read_text(log);
  attempt.pid = -1;
  EXPECT_EQ(code.value_or(-1), 1) << read_text(log);
  {
    Store store(db.string(), Store::Mode::read_only);
    const auto interrupted = store.find_run(1);
    EXPECT_TRUE(interrupted.has_value());
    if (interrupted) EXPECT_EQ(interrupted->status, RunStatus::interrupted) << interrupted->error;
  }
  for (int k : checkpointed) {
    EXPECT_FALSE(fs::exists(run_dir / ("student-" + std::to_string(k) + ".pt"))) << "student " << k << " finished";
  }

  std::vector<std::string> second = sweep;
  second.insert(second.end(), second_flags.begin(), second_flags.end());
  const RunResult resumed_command = run_msd(second, tmp.path(), 600);
  EXPECT_EQ(resumed_command.exit_code, 0) << resumed_command.output;
  EXPECT_FALSE(has_checkpoint(run_dir)) << "a finished run keeps no checkpoint";
  const RunView resumed = read_runs(db).at(0);
  const RunView uninterrupted = read_runs(run.reference_db).at(0);
  EXPECT_EQ(resumed.record.status, RunStatus::finished) << resumed.record.error;
  EXPECT_EQ(resumed.record.attempts, 2);
  EXPECT_EQ(resumed.artifact_paths("student").size(), 2u);
  for (size_t k = 0; k < 2 && k < resumed.artifact_paths("student").size(); ++k) {
    EXPECT_TRUE(same_file_contents(resumed.artifact_paths("student")[k], uninterrupted.artifact_paths("student")[k]))
        << "student " << k;
  }
  EXPECT_EQ(resumed.metric("swd"), uninterrupted.metric("swd"));
  EXPECT_EQ(resumed.metric("train.iterations"), std::optional<double>(5000.0));
  return resumed_command.output;
}

// --student-jobs under SIGINT: the run passes the stop on to its student processes, which checkpoint;
// the run is recorded as interrupted; the same sweep command resumes each student from its own
// checkpoint, and the students equal those of one uninterrupted process.
TEST_F(ResumeStudents, StudentProcessesStopOnSigintAndResumeToTheSameStudents) {
  TempDir tmp;
  const std::vector<std::string> jobs{"--student-jobs", "2"};
  interrupt_and_resume(tmp, run_, "out", jobs, jobs, {0, 1});
  const fs::path run_dir = tmp / "out" / "runs" / "run-1";
  for (const char* k : {"0", "1"}) {
    const std::string student_log = read_text(run_dir / ("student-" + std::string(k) + ".log"));
    EXPECT_THAT(student_log, HasSubstr("interrupted")) << k;
    EXPECT_THAT(student_log, HasSubstr("resumed at iteration")) << k;
  }
}

// The run's process and student processes write the same student checkpoints: an attempt with
// --student-jobs is resumed by the run's process alone, and an attempt of the run's process alone
// by student processes, each student from where it stopped.
TEST_F(ResumeStudents, StudentCheckpointsServeTheRunsProcessAndStudentProcessesAlike) {
  TempDir tmp;
  const std::string in_process = interrupt_and_resume(tmp, run_, "to_one", {"--student-jobs", "2"}, {}, {0, 1});
  for (const char* k : {"0", "1"}) {
    EXPECT_THAT(in_process, HasSubstr("checkpoint-student-" + std::string(k) + ".pt: student " + k)) << in_process;
  }
  EXPECT_THAT(in_process, HasSubstr("resumed at iteration"));

  interrupt_and_resume(tmp, run_, "to_processes", {}, {"--student-jobs", "2"}, {0});
  EXPECT_THAT(read_text(tmp / "to_processes" / "runs" / "run-1" / "student-0.log"), HasSubstr("resumed at iteration"));
}

// Students trained as one grouped network checkpoint as one (checkpoint-student-0.pt holds both) and
// resume to the students of the uninterrupted grouped run, byte for byte.
TEST_F(ResumeStudents, AGroupedNetworkResumesToTheSameStudents) {
  TempDir tmp;
  const std::string resumed = interrupt_and_resume(tmp, grouped_run_, "grouped", {}, {}, {0});
  EXPECT_THAT(resumed, HasSubstr("checkpoint-student-0.pt: students 0-1 of 2")) << resumed;
  EXPECT_FALSE(fs::exists(tmp / "grouped" / "runs" / "run-1" / "checkpoint-student-1.pt"));
}

}  // namespace
}  // namespace msd_integration
