// `msd sweep FILE --launcher slurm`: runs a sweep on a Slurm cluster as one job array.
//
// Task i of the array runs `msd sweep FILE --index i` into a database of its own (a shard), because
// SQLite must not be shared over NFS: its locks are not reliable there. The teacher cache is shared
// (a file lock serialises training a teacher). After the job, `msd results merge DB SHARD...` gathers
// the shards into the sweep's database; merging is idempotent, so it can run while tasks still run
// and again at the end. A resubmitted script reruns only what each shard has not finished.
//
//   <database folder>/shards/<sweep id>/sweep.sbatch             the job script
//   <database folder>/shards/<sweep id>/logs/<job>_<task>.out    stdout and stderr of each task (.err)
//   <database folder>/shards/<sweep id>/shard-<i>/results.db     task i's database; its checkpoints in
//                                                                shard-<i>/runs/ (run ids restart at 1
//                                                                in every shard, hence a folder each)
// A database not named results.db uses <name>.shards/ instead of shards/ (see database_folder).
#pragma once

#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "msd/host/config.h"

namespace msd::host {

/// Options of the Slurm launcher (`msd sweep --launcher slurm ...`).
struct SlurmOptions {
  std::vector<std::string> sbatch_options;  ///< --slurm-option: extra "#SBATCH" lines, e.g. "--partition=gpu"
  int max_parallel = 0;                     ///< --slurm-max-parallel: most tasks running at once; 0: no limit
  bool submit = false;                      ///< --submit: run sbatch and print the job id
};

/// The sweep to launch and what every task passes on to `msd sweep`.
struct SlurmSweep {
  std::filesystem::path experiment_file;     ///< the experiment TOML file
  std::vector<std::string> sets;             ///< --set overrides, given to every task
  std::filesystem::path database;            ///< the database the shards will be merged into
  std::filesystem::path cache;               ///< teacher cache; empty: <database folder>/cache, as locally
  std::string device;                        ///< --device of every task; empty: the experiment's
  bool force = false;                        ///< --force for every task: rerun what its shard has finished
  std::vector<std::string> plugin_folders;   ///< --plugin-path of every task
  int student_jobs = 1;                      ///< --student-jobs of every task (ask Slurm for the cores)
};

/// Where a launch keeps its files (see the top of this header).
struct SlurmLayout {
  std::filesystem::path folder;  ///< database_folder(database, "shards")/<sweep id>, absolute
  std::filesystem::path script;  ///< folder/sweep.sbatch
  std::filesystem::path logs;    ///< folder/logs

  SlurmLayout(const std::filesystem::path& database, const std::string& sweep_id);
  /// Task `index`'s database.
  std::filesystem::path shard(std::size_t index) const;
  /// A shell word matching every shard's database (for `msd results merge`).
  std::string shard_glob() const;
};

/// `word` quoted for a POSIX shell: single quotes, each ' written as '\''.
std::string shell_quote(const std::string& word);

/// The job script that runs `runs` (a resolved sweep, sweep_index 0..N-1) as an array of N tasks,
/// each with `msd_binary`. Throws std::invalid_argument for an --slurm-option that cannot be an
/// sbatch option, or an empty sweep.
std::string sbatch_script(const std::vector<RunConfig>& runs, const SlurmSweep& sweep, const SlurmOptions& options,
                          const std::filesystem::path& msd_binary);

/// Writes the job script for `runs` and says how to submit it and merge the shards; with
/// options.submit, runs sbatch and prints the job id. Throws std::runtime_error with sbatch's own
/// message when sbatch fails or is not installed. Returns the process exit status.
int launch_sweep_on_slurm(const std::vector<RunConfig>& runs, const SlurmSweep& sweep, const SlurmOptions& options,
                          std::ostream& out);

}  // namespace msd::host
