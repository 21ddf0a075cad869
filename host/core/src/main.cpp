// msd: the command line of msd-lab.
//   msd run FILE.toml [--set key=value]... [--db PATH] [--device auto|cpu|cuda]
//   msd sweep FILE.toml [--set key=value]... [--db PATH] [--device auto|cpu|cuda] [--dry-run] [--force]
//             [--jobs N] [--index I]
//             [--student-jobs N]   (run too: train a run's students in N processes at once)
//   msd sweep FILE.toml --launcher slurm [--slurm-option OPTION]... [--slurm-max-parallel N] [--submit]
//   msd validate FILE.toml [--set key=value]...
//   msd plugins list | show NAME
//   msd results list | show RUN
//   msd results compare SWEEP --by KEY... --metric NAME... [--scope S] [--format table|csv|json|markdown]
//   msd results sql "SELECT ..." [--format table|csv|json|markdown]
//   msd results merge OUT SHARD...
//   msd results query 'metrics.swd < 0.05 and params.partition.k = 4' [--metric NAME]... [--format ...]
//   msd results plot SWEEP --x KEY --y METRIC [--scope S] [--by KEY]... --out FILE.png
//   msd report SWEEP --out FILE.html [--metric NAME]... [--db PATH]
//   msd sample RUN --n N --out FILE.npy [--from students|teacher|data]
#include <time.h>
#include <unistd.h>

#include <charconv>
#include <limits>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <map>
#include <string>
#include <vector>
#include <thread>

#include <CLI/CLI.hpp>

#include "msd/host/config.h"
#include "msd/host/plugin_registry.h"
#include "msd/host/runner.h"
#include "msd/host/sample_command.h"
#include "msd/host/slurm_launcher.h"
#include "msd/host/summary.h"
#include "msd/host/worker_pool.h"
#include "msd/results/compare.h"
#include "msd/results/filter.h"
#include "msd/results/format.h"
#include "msd/results/merge.h"
#include "msd/results/plot.h"
#include "msd/results/report.h"
#include "msd/results/store.h"

namespace {

using namespace msd;
using namespace msd::host;

constexpr const char* kDefaultDatabase = "msd-results/results.db";
/// The most processes or threads one command starts, far above any machine's cores.
constexpr std::int64_t kMaxJobs = 1024;
constexpr const char* kStudentJobsHelp =
    "train each run's students in N processes at once, one student each (default 1: one after another in "
    "this process). The same students either way, bit for bit at equal thread counts; N processes keep a GPU "
    "busy that one leaves idle";

/// Options shared by the subcommands that load plugins.
struct PluginOptions {
  std::vector<std::string> folders;  ///< --plugin-path, in addition to the defaults
};

void load_plugins(PluginRegistry& registry, const PluginOptions& options,
                  const std::vector<std::filesystem::path>& from_experiment) {
  for (const auto& folder : PluginRegistry::default_search_path()) registry.load_folder(folder);
  for (const auto& folder : options.folders) registry.load_folder(folder);
  for (const auto& folder : from_experiment) registry.load_folder(folder);
}

std::string run_command(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[256];
  while (fgets(buffer, sizeof(buffer), pipe) != nullptr) out += buffer;
  if (pclose(pipe) != 0) return "";
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

/// The git commit of the platform's sources and whether tracked files differ from it.
void record_git(Workspace& workspace) {
  const std::string dir = MSD_SOURCE_DIR;
  workspace.git_commit = run_command("git -C '" + dir + "' rev-parse HEAD 2>/dev/null");
  if (!workspace.git_commit.empty()) {
    workspace.git_dirty = !run_command("git -C '" + dir + "' status --porcelain --untracked-files=no 2>/dev/null").empty();
  }
}

std::int64_t monotonic_ms() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);  // async-signal-safe, unlike std::chrono
  return static_cast<std::int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}

/// The first SIGINT/SIGTERM stops the run at its next iteration or, while it samples, its next network
/// evaluation (checkpointed, recorded as interrupted). One that comes more than two seconds later (a
/// second Ctrl-C) ends the process at once. Closer ones are the same request arriving twice: a Ctrl-C
/// reaches a sweep's workers and the student processes of --student-jobs as well as their parent,
/// which then passes SIGTERM on.
void request_stop(int signal_number) {
  static std::atomic<std::int64_t> first_ms{0};
  const std::int64_t now = monotonic_ms();
  if (!g_stop_requested.exchange(true)) {
    first_ms = now;
    return;
  }
  if (now - first_ms > 2000) {
    std::signal(signal_number, SIG_DFL);
    std::raise(signal_number);
  }
}

/// Opens an existing database for the query commands: a mistyped --db must not create an empty one.
/// Read-write when this user may write it, so that opening it marks runs of dead processes as
/// interrupted; read-only otherwise (a co-author's database on a read-only share).
std::unique_ptr<results::Store> open_existing(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw std::runtime_error("no results database at " + path + " (give the right one with --db)");
  }
  const std::string folder = std::filesystem::absolute(path).parent_path().string();
  const bool writable = access(path.c_str(), W_OK) == 0 && access(folder.c_str(), W_OK) == 0;
  return std::make_unique<results::Store>(path, writable ? results::Store::Mode::read_write
                                                         : results::Store::Mode::read_only);
}

/// A whole number from `min` to `max`. CLI11's own range checks print their bounds as doubles of up to
/// 309 digits and let an integer that overflows through clamped.
CLI::Validator whole_number(std::int64_t min, std::int64_t max) {
  const std::string range = std::to_string(min) + " to " + std::to_string(max);
  return CLI::Validator(
      [min, max, range](std::string& text) -> std::string {
        std::int64_t value = 0;
        const char* end = text.data() + text.size();
        const auto [stop, error] = std::from_chars(text.data(), end, value);
        if (error != std::errc() || stop != end || value < min || value > max) {
          return "expected a whole number from " + range + ", got '" + text + "'";
        }
        return "";
      },
      "INT from " + range);
}

constexpr std::int64_t kMaxId = std::numeric_limits<std::int64_t>::max();

std::filesystem::path database_for(const std::string& flag, const RunConfig* config, const std::filesystem::path& experiment_dir) {
  if (!flag.empty()) return flag;
  if (config != nullptr && !config->results.empty()) {
    std::filesystem::path p = config->results;
    return p.is_absolute() ? p : experiment_dir / p;
  }
  return kDefaultDatabase;
}

/// The runs of an experiment file: --set overrides applied, its plugins loaded into `registry`,
/// every variant validated. `folder` receives the file's folder (relative database paths start there).
std::vector<RunConfig> load_experiment(const std::string& file, const std::vector<std::string>& sets,
                                       const PluginOptions& plugin_options, PluginRegistry& registry,
                                       std::filesystem::path& folder) {
  ExperimentFile experiment = ExperimentFile::load(file);
  for (const auto& s : sets) experiment.set_override(s);
  load_plugins(registry, plugin_options, experiment.plugin_paths());
  folder = experiment.path().parent_path();
  std::vector<RunConfig> runs = experiment.resolve(registry);
  // Two variants that resolve to one config are one run: say so, since it is rarely meant (a --set
  // override applies after the variants' keys and can erase what set two of them apart).
  std::map<std::string, const RunConfig*> first_with_hash;
  for (const RunConfig& run : runs) {
    const auto [earlier, added] = first_with_hash.emplace(run.hash, &run);
    if (added) continue;
    std::cerr << "warning: " << file << ": '" << run.name << "' is the same config as '" << earlier->second->name
              << "' (" << run.hash << "), so it is one run"
              << (sets.empty() ? "" : "; a --set override may have replaced the key that told them apart") << "\n";
  }
  return runs;
}

std::string coordinates_text(const RunConfig& run) {
  std::string coords;
  for (const auto& [key, value] : run.coords) coords += (coords.empty() ? "" : ", ") + key + "=" + value;
  return coords;
}

int cmd_validate(const std::string& file, const std::vector<std::string>& sets, const PluginOptions& plugin_options) {
  PluginRegistry registry;
  std::filesystem::path folder;
  const std::vector<RunConfig> runs = load_experiment(file, sets, plugin_options, registry, folder);
  std::cout << file << ": OK, " << runs.size() << (runs.size() == 1 ? " run" : " runs") << "\n";
  results::TextTable table({"name", "config hash", "teacher hash", "overrides"});
  for (const RunConfig& run : runs) table.add_row({run.name, run.hash, run.teacher_hash, coordinates_text(run)});
  std::cout << table.str();
  return 0;
}

/// Where runs writing to database `db` keep their files, and the provenance they record. Also makes
/// SIGINT/SIGTERM stop the current run at its next iteration (recorded as interrupted).
Workspace prepare_workspace(const std::filesystem::path& db, const std::string& cache, const std::string& device) {
  Workspace workspace;
  // Absolute, because artifact paths are stored in the database and read from any folder later.
  const std::filesystem::path db_folder = std::filesystem::absolute(db).parent_path();
  workspace.cache = std::filesystem::absolute(cache.empty() ? db_folder / "cache" : std::filesystem::path(cache));
  workspace.artifacts = database_folder(db, "runs");
  workspace.device = device;
  record_git(workspace);
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  return workspace;
}

/// How the runner starts the student processes of --student-jobs: this program's `train-student`
/// with the same experiment file, overrides, plugin folders, database, cache and device, so that it
/// resolves the same run config.
void set_student_command(Workspace& workspace, int student_jobs, const std::string& file,
                         const std::vector<std::string>& sets, const PluginOptions& plugin_options,
                         const std::filesystem::path& db) {
  workspace.student_jobs = student_jobs;
  std::vector<std::string>& command = workspace.student_command;
  command = {std::filesystem::read_symlink("/proc/self/exe").string()};
  for (const std::string& folder : plugin_options.folders) {
    command.push_back("--plugin-path");
    command.push_back(std::filesystem::absolute(folder).string());
  }
  command.insert(command.end(), {"train-student", std::filesystem::absolute(file).string(), "--db",
                                 std::filesystem::absolute(db).string(), "--cache", workspace.cache.string()});
  for (const std::string& set : sets) {
    command.push_back("--set");
    command.push_back(set);
  }
  if (!workspace.device.empty()) {
    command.push_back("--device");
    command.push_back(workspace.device);
  }
}

struct RunOptions {
  std::string file;
  std::vector<std::string> sets;
  std::vector<std::string> only;
  std::string db;
  std::string device;
  std::string cache;
  int student_jobs = 1;
};

int cmd_run(const RunOptions& options, const PluginOptions& plugin_options) {
  PluginRegistry registry;
  std::filesystem::path folder;
  std::vector<RunConfig> runs = load_experiment(options.file, options.sets, plugin_options, registry, folder);
  if (!options.only.empty()) {
    std::vector<RunConfig> chosen;
    for (const std::string& name : options.only) {
      bool found = false;
      for (const RunConfig& run : runs) {
        // A variant's name picks all of its grid, zip and seed runs ("base[partition.k=2,seed=0]").
        if (run.name == name || run.name.rfind(name + "[", 0) == 0) {
          chosen.push_back(run);
          found = true;
        }
      }
      if (!found) throw std::runtime_error("--only " + name + ": " + options.file + " has no variant of that name");
    }
    runs = chosen;
  }
  const std::filesystem::path db = database_for(options.db, &runs.front(), folder);
  if (db.has_parent_path()) std::filesystem::create_directories(db.parent_path());
  results::Store store(db.string());
  Workspace workspace = prepare_workspace(db, options.cache, options.device);
  set_student_command(workspace, options.student_jobs, options.file, options.sets, plugin_options, db);
  Runner runner(registry, store, std::move(workspace), std::cout);
  std::vector<std::int64_t> ids;
  bool all_finished = true;
  for (const RunConfig& run : runs) {
    RunReport report = runner.run(run);
    ids.push_back(report.run_id);
    all_finished = all_finished && report.status == results::RunStatus::finished;
    if (g_stop_requested) break;
  }
  std::cout << "\n" << runs.front().experiment << " (" << db.string() << ")\n" << format_run_summary(store, ids, summary_columns(registry, runs));
  return all_finished ? 0 : 1;
}

struct SweepOptions {
  std::string file;
  std::vector<std::string> sets;
  std::string db;
  std::string device;
  std::string cache;
  bool dry_run = false;
  bool force = false;
  std::int64_t index = -1;      ///< --index: only this sweep index (a Slurm array task)
  int jobs = 1;                 ///< --jobs: worker processes
  int worker = -1;              ///< set by the supervisor: this process is worker W of --jobs
  std::int64_t after_run = -1;  ///< set by the supervisor under --force: runs up to this id do not count
  std::int64_t worker_threads = 0;  ///< set by the supervisor: threads of a run with experiment.threads = 0
  int student_jobs = 1;         ///< --student-jobs: processes training one run's students at once
};

/// The id of the latest finished run with this config hash and an id above `after_id`, if the
/// database has one.
std::optional<std::int64_t> finished_run(const results::Store* store, const std::string& hash,
                                         std::int64_t after_id = 0) {
  if (store == nullptr) return std::nullopt;
  std::optional<std::int64_t> id;
  for (const results::RunRecord& record : store->runs_with_hash(hash)) {
    if (record.id > after_id && record.status == results::RunStatus::finished) id = record.id;
  }
  return id;
}

/// This process's command line, for starting sweep workers like it.
std::vector<std::string> g_command_line;

/// The worker command line: this program with the supervisor's arguments, less --jobs.
std::vector<std::string> worker_command(std::int64_t after_id, int jobs) {
  std::vector<std::string> command{std::filesystem::read_symlink("/proc/self/exe").string()};
  for (std::size_t i = 1; i < g_command_line.size(); ++i) {
    const std::string& arg = g_command_line[i];
    if (arg == "--jobs") {
      ++i;
      continue;
    }
    if (arg.rfind("--jobs=", 0) == 0) continue;
    command.push_back(arg);
  }
  command.push_back("--after-run");
  command.push_back(std::to_string(after_id));
  // experiment.threads = 0 means every core: N workers share them rather than each taking all.
  command.push_back("--worker-threads");
  command.push_back(std::to_string(std::max(1u, std::thread::hardware_concurrency() / static_cast<unsigned>(jobs))));
  return command;
}

/// Runs every run of the file's sweep that the database has not finished yet (all with --force),
/// resuming interrupted ones from their checkpoints; --dry-run only says which those are. With
/// --jobs N, N worker processes share the work (see msd/host/worker_pool.h).
int cmd_sweep(const SweepOptions& options, const PluginOptions& plugin_options) {
  PluginRegistry registry;
  std::filesystem::path folder;
  std::vector<RunConfig> runs = load_experiment(options.file, options.sets, plugin_options, registry, folder);
  const std::filesystem::path db = database_for(options.db, &runs.front(), folder);
  if (options.index >= 0) {
    if (options.index >= static_cast<std::int64_t>(runs.size())) {
      throw std::runtime_error("--index " + std::to_string(options.index) + ": " + options.file + " has " +
                               std::to_string(runs.size()) + " runs (indices 0 to " + std::to_string(runs.size() - 1) + ")");
    }
    runs = {runs[static_cast<size_t>(options.index)]};
  }

  if (options.dry_run) {
    // Read-only, and only when the file exists: a dry run creates nothing.
    std::unique_ptr<results::Store> store;
    if (std::filesystem::exists(db)) store = std::make_unique<results::Store>(db.string(), results::Store::Mode::read_only);
    results::TextTable table({"index", "name", "coordinates", "config hash", "state"});
    std::size_t done = 0;
    for (const RunConfig& run : runs) {
      const bool finished = finished_run(store.get(), run.hash).has_value();
      done += finished ? 1 : 0;
      table.add_row({std::to_string(run.sweep_index), run.name, coordinates_text(run), run.hash,
                     finished ? "done" : "todo"});
    }
    std::cout << runs.front().experiment << " (" << db.string() << ", sweep " << runs.front().sweep_id << ")\n"
              << table.str() << runs.size() << (runs.size() == 1 ? " run, " : " runs, ") << done << " done, "
              << runs.size() - done << " to run\n";
    return 0;
  }

  if (db.has_parent_path()) std::filesystem::create_directories(db.parent_path());
  results::Store store(db.string());
  // --force reruns what is finished: runs recorded before this command started do not count.
  std::int64_t after_id = options.after_run;
  if (after_id < 0) {
    after_id = options.force ? store.last_run_id() : 0;
  }
  const std::string sweep_id = runs.front().sweep_id;

  if (options.jobs > 1 && options.worker < 0) {
    WorkerPoolOptions pool;
    pool.command = worker_command(after_id, options.jobs);
    pool.jobs = options.jobs;
    pool.database = db;
    pool.log_folder = database_folder(db, "logs") / ("sweep-" + sweep_id);
    pool.sweep_id = sweep_id;
    pool.after_id = after_id;
    for (const RunConfig& run : runs) pool.config_hashes.push_back(run.hash);
    std::signal(SIGINT, request_stop);
    std::signal(SIGTERM, request_stop);
    const bool workers_ok = run_worker_pool(pool, std::cout);
    std::vector<std::int64_t> ids;
    bool all_finished = true;
    for (const RunConfig& run : runs) {
      const std::optional<std::int64_t> id = finished_run(&store, run.hash, after_id);
      all_finished = all_finished && id.has_value();
      if (id) ids.push_back(*id);
    }
    std::cout << "\n" << runs.front().experiment << " (" << db.string() << ", sweep " << sweep_id << "): " << ids.size()
              << " of " << runs.size() << " runs finished\n"
              << format_run_summary(store, ids, summary_columns(registry, runs));
    return workers_ok && all_finished ? 0 : 1;
  }

  Workspace workspace = prepare_workspace(db, options.cache, options.device);
  workspace.cores = options.worker_threads;
  set_student_command(workspace, options.student_jobs, options.file, options.sets, plugin_options, db);
  Runner runner(registry, store, std::move(workspace), std::cout);
  std::vector<std::int64_t> ids;
  bool all_finished = true;
  std::size_t ran = 0, skipped = 0, elsewhere = 0;
  for (std::size_t position = 0; position < runs.size(); ++position) {
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
    all_finished = all_finished && report.status == results::RunStatus::finished;
    if (g_stop_requested) {
      all_finished = false;
      break;
    }
  }
  std::cout << "\n" << runs.front().experiment << " (" << db.string() << ", sweep " << sweep_id << "): "
            << "ran " << ran << ", " << skipped << " already finished"
            << (elsewhere > 0 ? ", " + std::to_string(elsewhere) + " being run by other processes" : "") << "\n"
            << format_run_summary(store, ids, summary_columns(registry, runs));
  return all_finished ? 0 : 1;
}

struct TrainStudentOptions {
  std::string file;
  std::vector<std::string> sets;
  std::string db;
  std::string cache;
  std::string device;
  std::int64_t run_id = 0;
  std::int64_t student = 0;
  std::int64_t threads = 0;
};

/// `msd train-student` (started by a run under --student-jobs, not by people): trains one student
/// of a running run. Exit status 0: finished; 3: interrupted (checkpointed); 1: failed.
int cmd_train_student(const TrainStudentOptions& options, const PluginOptions& plugin_options) {
  // Its output goes to a log file that the run's process reads for its progress display: no buffering.
  std::cout.setf(std::ios::unitbuf);
  PluginRegistry registry;
  std::filesystem::path folder;
  const std::vector<RunConfig> runs = load_experiment(options.file, options.sets, plugin_options, registry, folder);
  results::Store store(options.db);
  const std::optional<results::RunRecord> record = store.find_run(options.run_id);
  if (!record) throw std::runtime_error(options.db + " has no run " + std::to_string(options.run_id));
  const auto config = std::find_if(runs.begin(), runs.end(),
                                   [&](const RunConfig& run) { return run.hash == record->config_hash; });
  if (config == runs.end()) {
    throw std::runtime_error(options.file + " (with its --set overrides) no longer has the config of run " +
                             std::to_string(options.run_id) + " (" + record->config_hash +
                             "); was the file edited while the run was going?");
  }
  Workspace workspace = prepare_workspace(options.db, options.cache, options.device);
  workspace.cores = options.threads;
  Runner runner(registry, store, std::move(workspace), std::cout);
  const RunReport report = runner.train_student(*config, options.run_id, options.student);
  if (report.status == results::RunStatus::finished) return 0;
  return report.status == results::RunStatus::interrupted ? 3 : 1;
}

/// `msd sweep --launcher slurm`: writes the sweep's job array script (and submits it with --submit).
int cmd_sweep_on_slurm(const SweepOptions& options, const SlurmOptions& slurm, const PluginOptions& plugin_options) {
  if (options.dry_run) throw std::runtime_error("--dry-run and --launcher slurm: without --submit the launcher only writes the script");
  if (options.index >= 0 || options.jobs > 1) {
    throw std::runtime_error("--index and --jobs do not go with --launcher slurm: each array task runs one sweep index");
  }
  PluginRegistry registry;
  std::filesystem::path folder;
  const std::vector<RunConfig> runs = load_experiment(options.file, options.sets, plugin_options, registry, folder);
  SlurmSweep sweep;
  sweep.experiment_file = options.file;
  sweep.sets = options.sets;
  sweep.database = database_for(options.db, &runs.front(), folder);
  sweep.cache = options.cache;
  sweep.device = options.device;
  sweep.force = options.force;
  sweep.plugin_folders = plugin_options.folders;
  sweep.student_jobs = options.student_jobs;
  return launch_sweep_on_slurm(runs, sweep, slurm, std::cout);
}

}  // namespace

int main(int argc, char** argv) {
  g_command_line.assign(argv, argv + argc);
  CLI::App app{"msd-lab: multi-student diffusion distillation experiments"};
  app.require_subcommand(1);
  PluginOptions plugin_options;
  app.add_option("--plugin-path", plugin_options.folders, "extra folder of plugin libraries (repeatable)");

  RunOptions run_options;
  CLI::App* run = app.add_subcommand("run", "run an experiment file (every variant, or those named by --only)");
  run->add_option("file", run_options.file, "experiment TOML file")->required()->check(CLI::ExistingFile);
  run->add_option("--set", run_options.sets, "override a key: --set teacher.steps=100 (repeatable)");
  run->add_option("--only", run_options.only, "run only this variant (repeatable)");
  run->add_option("--db", run_options.db, "results database (default: experiment.results, else msd-results/results.db)");
  run->add_option("--device", run_options.device, "auto, cpu or cuda (default: experiment.device)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  run->add_option("--cache", run_options.cache, "teacher cache folder (default: <database folder>/cache)");
  run->add_option("--student-jobs", run_options.student_jobs, kStudentJobsHelp)->check(whole_number(1, kMaxJobs));

  // Started by a run under --student-jobs; not for people, so not in --help.
  TrainStudentOptions train_student_options;
  CLI::App* train_student = app.add_subcommand("train-student", "")->group("");
  train_student->add_option("file", train_student_options.file)->required()->check(CLI::ExistingFile);
  train_student->add_option("--set", train_student_options.sets);
  train_student->add_option("--db", train_student_options.db)->required()->check(CLI::ExistingFile);
  train_student->add_option("--cache", train_student_options.cache)->required();
  train_student->add_option("--device", train_student_options.device)->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  train_student->add_option("--run", train_student_options.run_id)->required()->check(whole_number(1, kMaxId));
  train_student->add_option("--student", train_student_options.student)->required()->check(whole_number(0, kMaxJobs));
  train_student->add_option("--threads", train_student_options.threads)->check(whole_number(0, kMaxJobs));

  SweepOptions sweep_options;
  CLI::App* sweep = app.add_subcommand("sweep", "run the runs of an experiment file the database has not finished");
  sweep->add_option("file", sweep_options.file, "experiment TOML file")->required()->check(CLI::ExistingFile);
  sweep->add_option("--set", sweep_options.sets, "override a key in every run (repeatable)");
  sweep->add_option("--db", sweep_options.db, "results database (default: experiment.results, else msd-results/results.db)");
  sweep->add_option("--device", sweep_options.device, "auto, cpu or cuda (default: experiment.device)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  sweep->add_option("--cache", sweep_options.cache, "teacher cache folder (default: <database folder>/cache)");
  sweep->add_flag("--dry-run", sweep_options.dry_run, "list the runs, done or to do, and run nothing");
  sweep->add_flag("--force", sweep_options.force, "run every run, even those the database has finished");
  sweep->add_option("--index", sweep_options.index, "run only the run with this sweep index (see --dry-run)")
      ->check(whole_number(0, kMaxId));
  sweep->add_option("--jobs", sweep_options.jobs, "worker processes sharing the runs (default 1: this process)")
      ->check(whole_number(1, kMaxJobs));
  sweep->add_option("--student-jobs", sweep_options.student_jobs, kStudentJobsHelp)->check(whole_number(1, kMaxJobs));
  // Set by the supervisor of --jobs on its workers' command lines; not for people.
  sweep->add_option("--worker", sweep_options.worker)->group("")->check(whole_number(0, kMaxJobs));
  sweep->add_option("--after-run", sweep_options.after_run)->group("")->check(whole_number(0, kMaxId));
  sweep->add_option("--worker-threads", sweep_options.worker_threads)->group("")->check(whole_number(0, kMaxJobs));
  SlurmOptions slurm_options;
  std::string sweep_launcher;
  CLI::Option* launcher = sweep->add_option("--launcher", sweep_launcher,
      "slurm: write a Slurm job array script instead, one task per run (default: run here)")
      ->check(CLI::IsMember({"slurm"}));
  sweep->add_option("--slurm-option", slurm_options.sbatch_options,
                    "extra #SBATCH line of the job script: --slurm-option=--partition=gpu (repeatable)")->needs(launcher);
  sweep->add_option("--slurm-max-parallel", slurm_options.max_parallel, "most array tasks running at once (default: no limit)")
      ->check(whole_number(0, kMaxId))->needs(launcher);
  sweep->add_flag("--submit", slurm_options.submit, "submit the job script with sbatch and print the job id")->needs(launcher);

  std::string validate_file;
  std::vector<std::string> validate_sets;
  CLI::App* validate = app.add_subcommand("validate", "check an experiment file without running it");
  validate->add_option("file", validate_file, "experiment TOML file")->required()->check(CLI::ExistingFile);
  validate->add_option("--set", validate_sets, "override a key (repeatable)");

  CLI::App* plugins = app.add_subcommand("plugins", "list loaded plugins or show one's keys");
  plugins->require_subcommand(1);
  CLI::App* plugins_list = plugins->add_subcommand("list", "kind, name, version and file of every plugin");
  std::string plugin_name;
  CLI::App* plugins_show = plugins->add_subcommand("show", "a plugin's description and config keys");
  plugins_show->add_option("name", plugin_name, "plugin name")->required();

  std::string db = kDefaultDatabase;
  std::string experiment_filter;
  CLI::App* results_cmd = app.add_subcommand("results", "query the results database");
  results_cmd->require_subcommand(1);
  results_cmd->add_option("--db", db, "results database")->capture_default_str();
  CLI::App* results_list = results_cmd->add_subcommand("list", "one line per run");
  results_list->fallthrough();  // `msd results list --db X` as well as `msd results --db X list`
  results_list->add_option("--experiment", experiment_filter, "only runs of this experiment");
  std::int64_t show_run = 0;
  CLI::App* results_show = results_cmd->add_subcommand("show", "config, status and final metrics of a run");
  results_show->fallthrough();
  results_show->add_option("run", show_run, "run id")->required()->check(whole_number(1, kMaxId));

  results::CompareRequest compare_request;
  std::string compare_format = "table";
  CLI::App* results_compare = results_cmd->add_subcommand(
      "compare", "mean, std and count of final metrics of a sweep's finished runs, grouped by params");
  results_compare->fallthrough();
  results_compare->add_option("sweep", compare_request.selection,
                              "sweep id (or a unique prefix of 4+ characters) or experiment name")
      ->required();
  results_compare->add_option("--by", compare_request.by, "param key to group by, e.g. partition.k (repeatable)")
      ->required();
  results_compare->add_option("--metric", compare_request.metrics, "metric name, e.g. swd (repeatable)")
      ->required();
  results_compare->add_option("--scope", compare_request.scope, "metric scope (default: whole model)");
  results_compare->add_option("--format", compare_format, "table, csv, json or markdown")
      ->check(CLI::IsMember({"table", "csv", "json", "markdown"}))
      ->capture_default_str();
  std::string sql_text;
  std::string sql_format = "table";
  CLI::App* results_sql = results_cmd->add_subcommand("sql", "run one SQL query on the database, opened read-only");
  results_sql->fallthrough();
  results_sql->add_option("query", sql_text, "SQL statement, e.g. \"SELECT * FROM metric_values\"")->required();
  results::QueryLimits sql_limits;
  sql_limits.max_rows = 10000;
  sql_limits.max_seconds = 300;
  results_sql->add_option("--max-rows", sql_limits.max_rows, "print at most this many rows; 0: all")
      ->capture_default_str()->check(whole_number(0, kMaxId));
  results_sql->add_option("--timeout", sql_limits.max_seconds, "stop a query that runs longer, in seconds")
      ->capture_default_str()->check(CLI::Range(0.001, 1e6));
  results_sql->add_option("--format", sql_format, "table, csv, json or markdown")
      ->check(CLI::IsMember({"table", "csv", "json", "markdown"}))
      ->capture_default_str();
  std::string merge_out;
  std::vector<std::string> merge_shards;
  CLI::App* results_merge = results_cmd->add_subcommand(
      "merge", "copy the runs of shard databases (e.g. of a Slurm job array) into OUT; merging again changes nothing");
  results_merge->add_option("out", merge_out, "database to merge into (created if absent)")->required();
  results_merge->add_option("shards", merge_shards, "shard databases")->required();
  results::RunQuery run_query;
  std::string query_format = "table";
  CLI::App* results_query = results_cmd->add_subcommand(
      "query", "runs matching a filter, e.g. 'metrics.swd < 0.05 and params.partition.k = 4' (docs/RESULTS.md)");
  results_query->fallthrough();
  results_query->add_option("filter", run_query.filter, "filter over metrics., params., coords., tags. and run fields")
      ->required();
  results_query->add_option("--metric", run_query.metrics, "metric to show, NAME or NAME@SCOPE (repeatable)");
  results_query->add_option("--format", query_format, "table, csv, json or markdown")
      ->check(CLI::IsMember({"table", "csv", "json", "markdown"}))
      ->capture_default_str();

  results::PlotRequest plot_request;
  std::string plot_out;
  CLI::App* results_plot = results_cmd->add_subcommand(
      "plot", "PNG line plot of a metric's mean ± std over a sweep's finished runs against one param");
  results_plot->fallthrough();
  results_plot->add_option("sweep", plot_request.selection, "sweep id (or a unique prefix of 4+ characters) or experiment name")
      ->required();
  results_plot->add_option("--x", plot_request.x, "param key on the x axis, e.g. partition.k")->required();
  results_plot->add_option("--y", plot_request.y, "metric name on the y axis, e.g. swd")->required();
  results_plot->add_option("--scope", plot_request.scope, "metric scope (default: whole model)");
  results_plot->add_option("--by", plot_request.by, "one line per value of this param key (repeatable)");
  results_plot->add_option("--out", plot_out, "output PNG file")->required();

  results::ReportRequest report_request;
  std::string report_out;
  std::string report_db = kDefaultDatabase;
  CLI::App* report = app.add_subcommand("report", "one self-contained HTML page about a sweep: tables, plots, samples");
  report->add_option("sweep", report_request.selection, "sweep id (or a unique prefix of 4+ characters) or experiment name")
      ->required();
  report->add_option("--out", report_out, "output HTML file")->required();
  report->add_option("--metric", report_request.metrics, "metric to compare (repeatable; default: the shared final ones)");
  report->add_option("--db", report_db, "results database")->capture_default_str();

  SampleRequest sample_request;
  std::string sample_db = kDefaultDatabase;
  CLI::App* sample = app.add_subcommand("sample", "write samples of a run's models (or its dataset) as .npy");
  sample->add_option("run", sample_request.run_id, "run id")->required()->check(whole_number(1, kMaxId));
  sample->add_option("--n", sample_request.n, "number of samples")->capture_default_str()
      ->check(whole_number(1, kMaxSampleCount));
  sample->add_option("--out", sample_request.out, "output .npy file (labels: <stem>_labels.npy)")->required();
  sample->add_option("--from", sample_request.from, "students, teacher or data")
      ->check(CLI::IsMember({"students", "teacher", "data"}))
      ->capture_default_str();
  sample->add_option("--seed", sample_request.seed, "random seed")->capture_default_str()->check(whole_number(0, kMaxId));
  sample->add_option("--device", sample_request.device, "cpu, cuda or auto")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  sample->add_option("--db", sample_db, "results database")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // --help and --version exit 0; every mistake on the command line exits 2, as a bad experiment file does.
    return app.exit(error) == 0 ? 0 : 2;
  }

  try {
    if (run->parsed()) return cmd_run(run_options, plugin_options);
    if (train_student->parsed()) return cmd_train_student(train_student_options, plugin_options);
    if (sweep->parsed() && sweep_launcher == "slurm") return cmd_sweep_on_slurm(sweep_options, slurm_options, plugin_options);
    if (sweep->parsed()) return cmd_sweep(sweep_options, plugin_options);
    if (validate->parsed()) return cmd_validate(validate_file, validate_sets, plugin_options);
    if (plugins_list->parsed()) {
      PluginRegistry registry;
      load_plugins(registry, plugin_options, {});
      std::cout << format_plugin_list(registry);
      return 0;
    }
    if (plugins_show->parsed()) {
      PluginRegistry registry;
      load_plugins(registry, plugin_options, {});
      const LoadedPlugin* plugin = registry.find_any(plugin_name);
      if (plugin == nullptr) {
        std::string known;
        for (const LoadedPlugin* p : registry.all()) known += (known.empty() ? "" : ", ") + p->info.name;
        throw PluginError("no plugin named '" + plugin_name + "'; loaded plugins: " + known);
      }
      std::cout << format_plugin_details(*plugin);
      return 0;
    }
    if (results_list->parsed()) {
      std::cout << results::format_run_list(open_existing(db)->list_runs(experiment_filter));
      return 0;
    }
    if (results_show->parsed()) {
      std::cout << results::format_run_details(*open_existing(db), show_run);
      return 0;
    }
    if (results_compare->parsed()) {
      const results::ComparisonTable table = results::compare_runs(*open_existing(db), compare_request);
      std::cout << results::format_comparison(table, results::output_format_from_string(compare_format));
      return 0;
    }
    if (results_merge->parsed()) {
      const std::vector<results::ShardMerge> merges = results::merge_shards(merge_out, merge_shards);
      std::cout << results::format_merge_report(merge_out, merges);
      for (const results::ShardMerge& merge : merges) {
        if (!merge.error.empty()) return 1;
      }
      return 0;
    }
    if (results_sql->parsed()) {
      const results::Store store(db, results::Store::Mode::read_only);
      const results::QueryResult rows = store.query(sql_text, {}, sql_limits);
      std::cout << results::format_query_result(rows, results::output_format_from_string(sql_format));
      if (rows.truncated) {
        std::cerr << "msd: stopped after " << rows.rows.size()
                  << " rows; the query has more (--max-rows N shows more, 0 all; or add a LIMIT)\n";
      }
      return 0;
    }
    if (results_query->parsed()) {
      const results::Store store(db, results::Store::Mode::read_only);
      const results::QueryResult runs = results::query_runs(store, run_query);
      const results::OutputFormat format = results::output_format_from_string(query_format);
      // An empty table says nothing; csv and json stay machine-readable (a header, []).
      if (runs.rows.empty() && format == results::OutputFormat::table) {
        std::cerr << "no runs match\n";
        return 0;
      }
      std::cout << results::format_query_result(runs, format);
      return 0;
    }
    if (results_plot->parsed()) {
      results::plot_sweep(*open_existing(db), plot_request, plot_out);
      std::cout << "wrote " << plot_out << "\n";
      return 0;
    }
    if (report->parsed()) {
      results::write_report(*open_existing(report_db), report_request, report_out);
      std::cout << "wrote " << report_out << "\n";
      return 0;
    }
    if (sample->parsed()) {
      PluginRegistry registry;
      load_plugins(registry, plugin_options, {});
      std::cout << sample_run(sample_request, registry, *open_existing(sample_db)) << "\n";
      return 0;
    }
  } catch (const ConfigError& e) {
    std::cerr << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "msd: " << describe_error(e) << "\n";
    return 1;
  }
  return 0;
}
