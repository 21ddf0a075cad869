// The `msd` command line: one file per command (run, sweep, train-student, validate, plugins, results,
// report, sample), the option sets they share, and the helpers they have in common. Each add_*
// function declares its subcommands on the app and returns, for each, the work to do once it is chosen.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "msd/host/config.h"
#include "msd/host/plugin_registry.h"
#include "msd/host/runner.h"
#include "msd/results/store.h"

namespace msd::host::cli {

/// The options every command reads: written before the subcommand.
struct GlobalOptions {
  std::vector<std::string> plugin_folders;  ///< --plugin-path, in addition to the default folders
  std::vector<std::string> command_line;    ///< this process's arguments (sweep workers are started alike)
};

/// A subcommand, and what it does when the command line chose it (returns the exit status).
struct Command {
  CLI::App* app;
  std::function<int()> run;
};
using Commands = std::vector<Command>;

Commands add_run_command(CLI::App& app, const GlobalOptions& global);
Commands add_sweep_command(CLI::App& app, const GlobalOptions& global);
Commands add_train_student_command(CLI::App& app, const GlobalOptions& global);
Commands add_validate_command(CLI::App& app, const GlobalOptions& global);
Commands add_plugins_commands(CLI::App& app, const GlobalOptions& global);
Commands add_results_commands(CLI::App& app);
Commands add_report_command(CLI::App& app);
Commands add_sample_command(CLI::App& app, const GlobalOptions& global);

// ---- shared by the commands -----------------------------------------------------------------------

inline constexpr const char* kDefaultDatabase = "msd-results/results.db";
/// The most processes or threads one command starts, far above any machine's cores.
inline constexpr std::int64_t kMaxJobs = 1024;
inline constexpr std::int64_t kMaxId = std::numeric_limits<std::int64_t>::max();

/// A whole number from `min` to `max`. CLI11's own range checks print their bounds as doubles of up to
/// 309 digits and let an integer that overflows through clamped.
CLI::Validator whole_number(std::int64_t min, std::int64_t max);

/// The options of the commands that run an experiment file (run, sweep), declared once.
struct ExperimentOptions {
  std::string file;
  std::vector<std::string> sets;
  std::string db;
  std::string device;
  std::string cache;
  int student_jobs = 1;
};
void add_experiment_options(CLI::App* command, ExperimentOptions& options);
/// --db, --cache and --device: also train-student's.
void add_storage_options(CLI::App* command, std::string& db, std::string& cache, std::string& device);

/// Loads the default plugin folders, --plugin-path and `more` into `registry`.
void load_plugins(PluginRegistry& registry, const GlobalOptions& global,
                  const std::vector<std::filesystem::path>& more = {});

/// An experiment file made runs: its plugins loaded into `registry`, every variant validated, and the
/// folder its relative paths start from.
struct Experiment {
  std::vector<RunConfig> runs;
  std::filesystem::path folder;
  std::vector<std::filesystem::path> plugin_folders;  ///< experiment.plugin_paths, resolved
};
Experiment load_experiment(const std::string& file, const std::vector<std::string>& sets, const GlobalOptions& global,
                           PluginRegistry& registry);

/// --db, else experiment.results (relative to the file's folder), else kDefaultDatabase.
std::filesystem::path database_for(const std::string& flag, const Experiment& experiment);

/// Where runs writing to `db` keep their files and the provenance they record, and how student
/// processes are started (this program's train-student with the same plugins, database, cache and
/// device). Makes SIGINT/SIGTERM stop the current run at its next iteration (install_stop_handling).
Workspace prepare_workspace(const std::filesystem::path& db, const ExperimentOptions& options,
                            const GlobalOptions& global, const std::vector<std::filesystem::path>& plugin_folders);

/// The first SIGINT/SIGTERM asks the running work to stop (g_stop_requested); a second one more than
/// two seconds later ends the process. Installed by the commands that run experiments.
void install_stop_handling();

/// Opens an existing database for the query commands: a mistyped --db must not create an empty one.
/// Read-write when this user may write it (opening marks runs of dead processes as interrupted),
/// read-only otherwise (a co-author's database on a read-only share).
std::unique_ptr<results::Store> open_existing(const std::string& path);

/// "key=value, ..." of a run's sweep coordinates.
std::string coordinates_text(const RunConfig& run);

}  // namespace msd::host::cli
