// msd sweep FILE: the runs of an experiment file that the database has not finished (all with --force),
// resuming interrupted ones from their checkpoints; --dry-run only says which those are, --jobs N shares
// them among N worker processes (msd/host/worker_pool.h), --launcher slurm writes a job array instead.
#include <iostream>
#include <optional>
#include <thread>

#include "cli.h"
#include "msd/host/slurm_launcher.h"
#include "msd/host/summary.h"
#include "msd/host/worker_pool.h"
#include "msd/results/format.h"

namespace msd::host::cli {

namespace {

struct SweepOptions {
  ExperimentOptions experiment;
  bool dry_run = false;
  bool force = false;
  std::int64_t index = -1;          ///< --index: only this sweep index (a Slurm array task)
  int jobs = 1;                     ///< --jobs: worker processes
  int worker = -1;                  ///< set by the supervisor: this process is worker W of --jobs
  std::int64_t after_run = -1;      ///< set by the supervisor under --force: runs up to this id do not count
  std::int64_t worker_threads = 0;  ///< set by the supervisor: threads of a run with experiment.threads = 0
  std::string launcher;             ///< "slurm", or empty: run here
  SlurmOptions slurm;
};

/// The id of the latest finished run with this config hash and an id above `after_id`, if any.
std::optional<std::int64_t> finished_run(const results::Store* store, const std::string& hash, std::int64_t after_id = 0) {
  if (store == nullptr) return std::nullopt;
  std::optional<std::int64_t> id;
  for (const results::RunRecord& record : store->runs_with_hash(hash)) {
    if (record.id > after_id && record.status == results::RunStatus::finished) id = record.id;
  }
  return id;
}

/// A worker's command line: this process's, less --jobs, with the run ids that do not count and its
/// share of the cores (experiment.threads = 0 means every core: N workers share them).
std::vector<std::string> worker_command(const GlobalOptions& global, std::int64_t after_id, int jobs) {
  std::vector<std::string> command{std::filesystem::read_symlink("/proc/self/exe").string()};
  for (std::size_t i = 1; i < global.command_line.size(); ++i) {
    const std::string& arg = global.command_line[i];
    if (arg == "--jobs") {
      ++i;
      continue;
    }
    if (arg.rfind("--jobs=", 0) != 0) command.push_back(arg);
  }
  const unsigned share = std::max(1u, std::thread::hardware_concurrency() / static_cast<unsigned>(jobs));
  command.insert(command.end(), {"--after-run", std::to_string(after_id), "--worker-threads", std::to_string(share)});
  return command;
}

int dry_run(const std::vector<RunConfig>& runs, const std::filesystem::path& db) {
  // Read-only, and only when the file exists: a dry run creates nothing.
  std::unique_ptr<results::Store> store;
  if (std::filesystem::exists(db)) store = std::make_unique<results::Store>(db.string(), results::Store::Mode::read_only);
  results::TextTable table({"index", "name", "coordinates", "config hash", "state"});
  std::size_t done = 0;
  for (const RunConfig& run : runs) {
    const bool finished = finished_run(store.get(), run.hash).has_value();
    done += finished ? 1 : 0;
    table.add_row({std::to_string(run.sweep_index), run.name, coordinates_text(run), run.hash, finished ? "done" : "todo"});
  }
  std::cout << runs.front().experiment << " (" << db.string() << ", sweep " << runs.front().sweep_id << ")\n"
            << table.str() << runs.size() << (runs.size() == 1 ? " run, " : " runs, ") << done << " done, "
            << runs.size() - done << " to run\n";
  return 0;
}

int with_workers(const SweepOptions& options, const GlobalOptions& global, const PluginRegistry& registry,
                 const std::vector<RunConfig>& runs, results::Store& store, const std::filesystem::path& db,
                 std::int64_t after_id) {
  const std::string& sweep_id = runs.front().sweep_id;
  WorkerPoolOptions pool;
  pool.command = worker_command(global, after_id, options.jobs);
  pool.jobs = options.jobs;
  pool.database = db;
  pool.log_folder = database_folder(db, "logs") / ("sweep-" + sweep_id);
  pool.sweep_id = sweep_id;
  pool.after_id = after_id;
  for (const RunConfig& run : runs) pool.config_hashes.push_back(run.hash);
  install_stop_handling();
  const bool workers_ok = run_worker_pool(pool, std::cout);
  std::vector<std::int64_t> ids;
  for (const RunConfig& run : runs) {
    if (const std::optional<std::int64_t> id = finished_run(&store, run.hash, after_id)) ids.push_back(*id);
  }
  std::cout << "\n" << runs.front().experiment << " (" << db.string() << ", sweep " << sweep_id << "): " << ids.size()
            << " of " << runs.size() << " runs finished\n"
            << format_run_summary(store, ids, summary_columns(registry, runs));
  return workers_ok && ids.size() == runs.size() ? 0 : 1;
}

/// The sweep's runs in this process, each claimed in the store first (a worker of --jobs does the same).
int in_this_process(const SweepOptions& options, const GlobalOptions& global, const PluginRegistry& registry,
                    const Experiment& experiment, const std::vector<RunConfig>& runs, results::Store& store,
                    const std::filesystem::path& db, std::int64_t after_id) {
  Workspace workspace = prepare_workspace(db, options.experiment, global, experiment.plugin_folders);
  workspace.cores = options.worker_threads;
  Runner runner(registry, store, std::move(workspace), std::cout);
  const std::string& sweep_id = runs.front().sweep_id;
  std::vector<std::int64_t> ids;
  bool all_finished = true;
  std::size_t ran = 0, skipped = 0, elsewhere = 0;
  for (std::size_t position = 0; position < runs.size() && !g_stop_requested; ++position) {
    const RunConfig& run = runs[position];
    if (runs.size() > 1) {
      std::cout << "-- sweep " << sweep_id << ": run " << position + 1 << " of " << runs.size() << " ("
                << ran + skipped << " done so far)\n";
    }
    const RunReport report = runner.claim_and_run(run, after_id);
    using Outcome = results::RunClaim::Outcome;
    if (report.outcome == Outcome::finished || report.outcome == Outcome::running) {
      const bool done = report.outcome == Outcome::finished;
      std::cout << "== skip " << run.sweep_index << ": " << run.experiment << " / " << run.name << " (config "
                << run.hash << (done ? " finished as run " : " is being run by another process as run ")
                << report.run_id << ")\n";
      (done ? skipped : elsewhere) += 1;
      // A worker leaves a run another worker is running to that worker and its summary.
      if (done || options.worker < 0) ids.push_back(report.run_id);
      all_finished = all_finished && (done || options.worker >= 0);
      continue;
    }
    ++ran;
    ids.push_back(report.run_id);
    all_finished = all_finished && report.status == results::RunStatus::finished && !g_stop_requested;
  }
  std::cout << "\n" << runs.front().experiment << " (" << db.string() << ", sweep " << sweep_id << "): "
            << "ran " << ran << ", " << skipped << " already finished"
            << (elsewhere > 0 ? ", " + std::to_string(elsewhere) + " being run by other processes" : "") << "\n"
            << format_run_summary(store, ids, summary_columns(registry, runs));
  return all_finished ? 0 : 1;
}

int on_slurm(const SweepOptions& options, const GlobalOptions& global, const Experiment& experiment) {
  if (options.dry_run) throw std::runtime_error("--dry-run and --launcher slurm: without --submit the launcher only writes the script");
  if (options.index >= 0 || options.jobs > 1) {
    throw std::runtime_error("--index and --jobs do not go with --launcher slurm: each array task runs one sweep index");
  }
  SlurmSweep sweep;
  sweep.experiment_file = options.experiment.file;
  sweep.sets = options.experiment.sets;
  sweep.database = database_for(options.experiment.db, experiment);
  sweep.cache = options.experiment.cache;
  sweep.device = options.experiment.device;
  sweep.force = options.force;
  sweep.plugin_folders = global.plugin_folders;
  sweep.student_jobs = options.experiment.student_jobs;
  return launch_sweep_on_slurm(experiment.runs, sweep, options.slurm, std::cout);
}

int sweep(const SweepOptions& options, const GlobalOptions& global) {
  PluginRegistry registry;
  const ExperimentOptions& o = options.experiment;
  const Experiment experiment = load_experiment(o.file, o.sets, global, registry);
  if (options.launcher == "slurm") return on_slurm(options, global, experiment);
  std::vector<RunConfig> runs = experiment.runs;
  if (options.index >= static_cast<std::int64_t>(runs.size())) {
    throw std::runtime_error("--index " + std::to_string(options.index) + ": " + o.file + " has " +
                             std::to_string(runs.size()) + " runs (indices 0 to " + std::to_string(runs.size() - 1) + ")");
  }
  if (options.index >= 0) runs = {runs[static_cast<size_t>(options.index)]};
  const std::filesystem::path db = database_for(o.db, experiment);
  if (options.dry_run) return dry_run(runs, db);
  if (db.has_parent_path()) std::filesystem::create_directories(db.parent_path());
  results::Store store(db.string());
  // --force reruns what is finished: runs recorded before this command started do not count.
  const std::int64_t after_id = options.after_run >= 0 ? options.after_run : options.force ? store.last_run_id() : 0;
  if (options.jobs > 1 && options.worker < 0) return with_workers(options, global, registry, runs, store, db, after_id);
  return in_this_process(options, global, registry, experiment, runs, store, db, after_id);
}

void add_slurm_options(CLI::App* command, SweepOptions& options) {
  CLI::Option* launcher = command->add_option("--launcher", options.launcher,
      "slurm: write a Slurm job array script instead, one task per run (default: run here)")
      ->check(CLI::IsMember({"slurm"}));
  command->add_option("--slurm-option", options.slurm.sbatch_options,
                      "extra #SBATCH line of the job script: --slurm-option=--partition=gpu (repeatable)")->needs(launcher);
  command->add_option("--slurm-max-parallel", options.slurm.max_parallel, "most array tasks running at once (default: no limit)")
      ->check(whole_number(0, kMaxId))->needs(launcher);
  command->add_flag("--submit", options.slurm.submit, "submit the job script with sbatch and print the job id")->needs(launcher);
}

}  // namespace

Commands add_sweep_command(CLI::App& app, const GlobalOptions& global) {
  auto options = std::make_shared<SweepOptions>();
  CLI::App* command = app.add_subcommand("sweep", "run the runs of an experiment file the database has not finished");
  add_experiment_options(command, options->experiment);
  command->add_flag("--dry-run", options->dry_run, "list the runs, done or to do, and run nothing");
  command->add_flag("--force", options->force, "run every run, even those the database has finished");
  command->add_option("--index", options->index, "run only the run with this sweep index (see --dry-run)")
      ->check(whole_number(0, kMaxId));
  command->add_option("--jobs", options->jobs, "worker processes sharing the runs (default 1: this process)")
      ->check(whole_number(1, kMaxJobs));
  // Set by the supervisor of --jobs on its workers' command lines; not for people.
  command->add_option("--worker", options->worker)->group("")->check(whole_number(0, kMaxJobs));
  command->add_option("--after-run", options->after_run)->group("")->check(whole_number(0, kMaxId));
  command->add_option("--worker-threads", options->worker_threads)->group("")->check(whole_number(0, kMaxJobs));
  add_slurm_options(command, *options);
  return {{command, [options, &global] { return sweep(*options, global); }}};
}

}  // namespace msd::host::cli
