// Runs that do not finish: a killed process leaves its run `running` until the next read-write
// open of the store marks it interrupted; SIGINT ends the run gracefully as interrupted, in training
// and while it samples.
#include <signal.h>

#include <chrono>
#include <optional>
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

/// Kills and reaps the child if the test ends early.
struct ChildGuard {
  pid_t pid;
  ~ChildGuard() {
    if (pid > 0 && !wait_for_exit(pid, 0).has_value()) {
      kill(pid, SIGKILL);
      wait_for_exit(pid, 30);
    }
  }
};

/// Polls the database read-only every 100 ms until it shows a run in state `running`; returns its
/// id, or nullopt after `timeout_seconds` or when the child ends first.
std::optional<std::int64_t> wait_until_running(const fs::path& db, pid_t child, double timeout_seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (fs::exists(db)) {
      try {
        Store store(db.string(), Store::Mode::read_only);
        for (const auto& run : store.list_runs()) {
          if (run.status == RunStatus::running) return run.id;
        }
      } catch (const std::exception&) {
        // The writer may still be creating the schema.
      }
    }
    if (wait_for_exit(child, 0).has_value()) return std::nullopt;  // note: reaps the child
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return std::nullopt;
}

/// Waits until `predicate` holds, polling every 100 ms.
template <typename F>
bool wait_until(F predicate, double timeout_seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return predicate();
}

bool teacher_cached(const fs::path& dir) {
  std::error_code ec;
  const fs::path teachers = dir / "cache" / "teachers";
  if (!fs::is_directory(teachers, ec)) return false;
  for (const auto& e : fs::directory_iterator(teachers, ec)) {
    if (e.path().extension() == ".toml") return true;  // written after the weights
  }
  return false;
}

std::string long_config() {
  TinyOptions options;
  options.name = "long";
  options.stage_steps = 100000;
  return tiny_msd_config(options);
}

/// Runs `msd run <tmp>/<file> --db <tmp>/results.db` (output to <tmp>/msd.log) until its teacher is
/// cached and `settle_ms` more, then sends SIGINT. Returns the exit code, or nullopt (with a test
/// failure) when the run never got that far or msd still runs `stop_seconds` after the signal.
std::optional<int> interrupt_after_teacher(const TempDir& tmp, const std::string& file, int settle_ms,
                                           double stop_seconds) {
  const fs::path log = tmp / "msd.log";
  ChildGuard child{spawn_msd({"run", (tmp / file).string(), "--db", (tmp / "results.db").string()}, tmp.path(), log)};
  if (!wait_until_running(tmp / "results.db", child.pid, 60)) {
    ADD_FAILURE() << "the run never showed as running; log:\n" << read_text(log);
    return std::nullopt;
  }
  if (!wait_until([&] { return teacher_cached(tmp.path()); }, 60)) {
    ADD_FAILURE() << "the teacher was never cached; log:\n" << read_text(log);
    return std::nullopt;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(settle_ms));
  if (kill(child.pid, SIGINT) != 0) {
    ADD_FAILURE() << "kill(SIGINT) failed";
    return std::nullopt;
  }
  const auto code = wait_for_exit(child.pid, stop_seconds);
  if (!code) {
    ADD_FAILURE() << "msd still ran " << stop_seconds << " s after SIGINT; log:\n" << read_text(log);
    return std::nullopt;
  }
  child.pid = -1;
  EXPECT_LT(*code, 128) << "msd was ended by the signal instead of stopping gracefully; log:\n" << read_text(log);
  return code;
}

// 11. ---------------------------------------------------------------------------------------------
TEST(Interrupt, KilledRunIsMarkedInterruptedByTheNextReadWriteOpen) {
  TempDir tmp;
  write_text(tmp / "long.toml", long_config());
  const fs::path db = tmp / "results.db";
  const fs::path log = tmp / "msd.log";
  ChildGuard child{spawn_msd({"run", (tmp / "long.toml").string(), "--db", db.string()}, tmp.path(), log)};

  const auto id = wait_until_running(db, child.pid, 60);
  ASSERT_TRUE(id.has_value()) << "the run never showed as running; log:\n" << read_text(log);

  ASSERT_EQ(kill(child.pid, SIGKILL), 0);
  const auto code = wait_for_exit(child.pid, 30);  // reaped: its pid no longer exists
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 128 + SIGKILL);
  child.pid = -1;

  {
    // Read-only opens do not change anything: the run still looks alive.
    Store store(db.string(), Store::Mode::read_only);
    const auto run = store.find_run(*id);
    ASSERT_TRUE(run.has_value());
    EXPECT_EQ(run->status, RunStatus::running);
  }
  {
    Store store(db.string());  // read-write: marks runs of dead processes
    const auto run = store.find_run(*id);
    ASSERT_TRUE(run.has_value());
    EXPECT_EQ(run->status, RunStatus::interrupted);
    EXPECT_FALSE(run->ended_at.empty());
    EXPECT_FALSE(run->error.empty());
  }
  const auto runs = read_runs(db);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].record.status, RunStatus::interrupted);
}

TEST(Interrupt, SigintEndsTheRunGracefullyAsInterrupted) {
  TempDir tmp;
  write_text(tmp / "long.toml", long_config());
  const fs::path db = tmp / "results.db";
  const fs::path log = tmp / "msd.log";
  // Past the teacher, into the students' (long) stage.
  const std::optional<int> code = interrupt_after_teacher(tmp, "long.toml", 500, 60);
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0) << read_text(log);

  const std::string output = read_text(log);
  EXPECT_THAT(output, HasSubstr("interrupted"));

  const auto runs = read_runs(db);  // read-only: the status was written by msd itself
  ASSERT_EQ(runs.size(), 1u);
  const RunView& run = runs[0];
  EXPECT_EQ(run.record.status, RunStatus::interrupted) << run.record.error;
  EXPECT_FALSE(run.record.ended_at.empty());
  EXPECT_THAT(run.record.error, HasSubstr("interrupted"));
  // The teacher was recorded; the interrupted stage left no student checkpoints and no final scores.
  EXPECT_EQ(run.artifact_paths("teacher").size(), 1u);
  EXPECT_TRUE(run.artifact_paths("student").empty());
  EXPECT_FALSE(run.metric("swd").has_value());
  // Curve points logged before the signal were flushed.
  bool curve = false;
  for (const auto& m : run.all_metrics) curve = curve || (m.name.rfind("train.dm.", 0) == 0 && m.scope == "student:0");
  EXPECT_TRUE(curve) << "no training-curve rows survived the interrupt";
}

/// A teacher-only run whose evaluation samples for minutes: 10 million samples at NFE 399.
std::string long_sampling_config() {
  TinyOptions options;
  options.name = "long_sampling";
  std::string head = tiny_head(options);
  const std::string steps = "sampler_steps = 4\n";
  head.replace(head.find(steps), steps.size(), "sampler_steps = 200\n");
  return head +
         "[distill]\n"
         "enabled = false\n"
         "\n"
         "[evaluate]\n"
         "samples = 10000000\n"
         "\n"
         "[[evaluate.metric]]\n"
         "plugin = \"swd\"\n";
}

TEST(Interrupt, SigintStopsARunWhileItSamples) {
  TempDir tmp;
  write_text(tmp / "long_sampling.toml", long_sampling_config());
  const fs::path db = tmp / "results.db";
  // Past the teacher's training (a second), into the evaluation's sampling (minutes).
  ASSERT_TRUE(interrupt_after_teacher(tmp, "long_sampling.toml", 1000, 20).has_value());

  const auto runs = read_runs(db);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].record.status, RunStatus::interrupted) << runs[0].record.error;
  EXPECT_FALSE(runs[0].metric("swd").has_value());
}

}  // namespace
}  // namespace msd_integration
