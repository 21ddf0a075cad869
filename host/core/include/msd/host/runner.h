// Executes one resolved run end to end: teacher (trained or from the cache), partition, students through
// their stages, evaluation, and every row of it in the results store.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include "msd/host/config.h"
#include "msd/host/plugin_registry.h"
#include "msd/host/stop.h"
#include "msd/results/store.h"

namespace msd::host {

/// Where a run's files go. Everything is findable from the run's row: artifacts are recorded with paths.
struct Workspace {
  std::filesystem::path cache;      ///< teachers keyed by their config hash: <cache>/teachers/<hash>.pt
  std::filesystem::path artifacts;  ///< per-run folders: <artifacts>/run-<id>/
  std::string device;               ///< overrides experiment.device when not empty
  std::string git_commit;           ///< recorded with each run
  bool git_dirty = false;
  std::int64_t cores = 0;           ///< threads of a run whose experiment.threads is 0; 0: every core
                                    ///< (sweep workers get their share, so N workers do not oversubscribe)
  int student_jobs = 1;             ///< processes training a run's students at once (--student-jobs)
  std::vector<std::string> student_command;  ///< how to start one: `msd --plugin-path ... train-student --db
                                             ///< --cache`; the runner adds the run, student and threads
};

/// Makes the run's metric plugins and asks each whether it can evaluate config.evaluate.samples samples
/// (Metric::check), so that a setting the evaluation cannot honour fails when the file is loaded, not
/// after the training. Throws std::runtime_error naming the run, the metric and its section.
void check_metrics(const PluginRegistry& registry, const RunConfig& config);

/// The outcome of one run, for the summary table.
struct RunReport {
  std::int64_t run_id = 0;
  std::string name;
  results::RunStatus status = results::RunStatus::failed;
  std::string error;
  results::RunClaim::Outcome outcome = results::RunClaim::Outcome::started;  ///< see Runner::claim_and_run
};

class Runner {
 public:
  Runner(const PluginRegistry& registry, results::Store& store, Workspace workspace, std::ostream& log);
  /// Runs one config as a new run. Never throws for a failure inside the run: it is recorded and
  /// reported. Throws, recording nothing, when the run's device is not on this machine.
  RunReport run(const RunConfig& config);
  /// For sweeps and their workers: claims the config in the store (Store::claim_run) and runs it, or
  /// resumes its interrupted run from the last checkpoint, or reports (outcome finished or running,
  /// nothing done) that it is finished or being run by another process.
  RunReport claim_and_run(const RunConfig& config, std::int64_t after_id);
  /// For the processes of --student-jobs (`msd train-student`): trains student `student` of the
  /// running run `run_id` from its seed, or from its own checkpoint, and leaves its weights and
  /// compute in the run's folder for the run's process to gather. Writes only the student's curves to
  /// the store. The report's status is finished, interrupted or failed (with the error).
  RunReport train_student(const RunConfig& config, std::int64_t run_id, std::int64_t student);

 private:
  /// The run's row. Throws when the run's device is not on this machine.
  results::NewRun new_run(const RunConfig& config) const;
  RunReport execute(const RunConfig& config, const std::string& device, std::int64_t run_id, bool resume);

  const PluginRegistry& registry_;
  results::Store& store_;
  Workspace workspace_;
  std::ostream& log_;
};

/// The message of `error` for people: LibTorch's errors lose the C++ stack trace they carry.
std::string describe_error(const std::exception& error);

/// The folder `name` (runs, logs, shards) that database `db` keeps beside it: <db folder>/<name> for a
/// database named results.db, <db folder>/<stem>.<name> for any other. Run ids restart at 1 in every
/// database and a sweep has the same id whichever database it writes to, so two databases in one
/// folder must not share these. (The teacher cache is shared on purpose: its files are keyed by hash.)
std::filesystem::path database_folder(const std::filesystem::path& db, const std::string& name);

}  // namespace msd::host
