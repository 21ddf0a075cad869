// Shared helpers of the integration tests: temporary folders, running the `msd` binary as a
// subprocess, tiny experiment files, and reading a run's rows back through msd::results::Store.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "msd/results/store.h"

namespace msd_integration {

namespace fs = std::filesystem;

/// The msd binary under test and the repository's experiments folder (compile definitions).
fs::path msd_binary();
fs::path experiments_dir();

/// A fresh folder from mkdtemp, removed with its contents on destruction (kept when the
/// environment sets MSD_KEEP_TEST_DIRS, for post-mortems).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

/// How an msd process ended. exit_code is the exit status, or 128 + signal when a signal ended it,
/// or -1 when it ran past the timeout (it is then killed).
struct RunResult {
  int exit_code = -1;
  std::string output;  ///< stdout and stderr, interleaved as written
  bool timed_out = false;
};

/// Runs `msd ARGS...` in `cwd` (the current folder when empty) and waits for it, at most
/// `timeout_seconds`. MSD_PLUGIN_PATH is cleared in the child so only the build's plugins load.
/// A non-empty `wrapper` runs `WRAPPER... msd ARGS...` instead (setpriv, a shell setting limits).
RunResult run_msd(const std::vector<std::string>& args, const fs::path& cwd = {}, int timeout_seconds = 300,
                  const std::vector<std::string>& wrapper = {});

/// Starts `msd ARGS...` without waiting; its stdout and stderr go to `log_file`. Returns its pid.
pid_t spawn_msd(const std::vector<std::string>& args, const fs::path& cwd, const fs::path& log_file);

/// Waits up to `timeout_seconds` for `pid` to end and reaps it; returns its exit code (128 + signal
/// for a signal) or nullopt when it is still running.
std::optional<int> wait_for_exit(pid_t pid, double timeout_seconds);

std::string read_text(const fs::path& file);
void write_text(const fs::path& file, const std::string& text);

/// Options of the tiny experiment (each run takes a few seconds on one core).
struct TinyOptions {
  std::string name = "tiny";
  std::int64_t seed = 0;
  std::int64_t stage_steps = 40;
};

/// The tiny MSD experiment of the brief: gaussian_grid, edm_mlp teacher (150 steps, hidden 32,
/// 1 block, batch 128, 4 sampler steps: NFE 7), K = 2 one-step students by class_consecutive, one
/// dm + regression stage, 400 evaluation samples, metrics swd, mmd, mode_coverage, cost.
std::string tiny_msd_config(const TinyOptions& options = {});

/// The sections shared by every tiny file: [experiment], [dataset], [teacher].
std::string tiny_head(const TinyOptions& options = {});

/// The [evaluate] section with the four metrics.
std::string tiny_evaluate();

/// Whether `text` contains `part`; for readable EXPECT messages use EXPECT_THAT/HasSubstr instead.
bool contains(const std::string& text, const std::string& part);

/// Whether two files exist and hold the same bytes (compared here so that a failure does not
/// print binary contents).
bool same_file_contents(const fs::path& a, const fs::path& b);


/// Reading a finished database.
struct RunView {
  fs::path db_dir;  ///< the database's folder: relative artifact paths are relative to it
  msd::results::RunRecord record;
  std::vector<msd::results::MetricRow> final_metrics;
  std::vector<msd::results::MetricRow> all_metrics;
  std::vector<std::pair<std::string, std::string>> params;
  std::vector<std::pair<std::string, std::string>> tags;
  std::vector<msd::results::Artifact> artifacts;

  std::optional<double> metric(const std::string& name, const std::string& scope = "") const;
  std::optional<std::string> param(const std::string& key) const;
  std::optional<std::string> tag(const std::string& key) const;
  /// Paths of the artifacts of `kind`, made absolute against db_dir.
  std::vector<fs::path> artifact_paths(const std::string& kind) const;
};

/// Every run of the database at `db`, opened read-only, in id order.
std::vector<RunView> read_runs(const fs::path& db);

/// The run of `runs` called `name`; throws when there is none.
const RunView& named(const std::vector<RunView>& runs, const std::string& name);

}  // namespace msd_integration
