#include <time.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <csignal>
#include <iostream>
#include <map>

#include "build_commit.h"
#include "cli.h"

namespace msd::host::cli {

namespace {

constexpr const char* kStudentJobsHelp =
    "train each run's students in N processes at once, one student each (default 1: one after another in "
    "this process). The same students either way, bit for bit at equal thread counts; N processes keep a GPU "
    "busy that one leaves idle";

/// The git commit this msd was built from and whether tracked files differed from it then.
void record_git(Workspace& workspace) {
  workspace.git_commit = kBuildGitCommit;
  workspace.git_dirty = kBuildGitDirty;  // false when there is no commit (cmake/git_commit.cmake)
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

}  // namespace

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

void add_storage_options(CLI::App* command, std::string& db, std::string& cache, std::string& device) {
  command->add_option("--db", db, "results database (default: experiment.results, else msd-results/results.db)");
  command->add_option("--cache", cache, "teacher cache folder (default: <database folder>/cache)");
  command->add_option("--device", device, "auto, cpu or cuda (default: experiment.device)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
}

void add_experiment_options(CLI::App* command, ExperimentOptions& options) {
  command->add_option("file", options.file, "experiment TOML file")->required()->check(CLI::ExistingFile);
  command->add_option("--set", options.sets, "override a key in every run: --set teacher.steps=100 (repeatable)");
  add_storage_options(command, options.db, options.cache, options.device);
  command->add_option("--student-jobs", options.student_jobs, kStudentJobsHelp)->check(whole_number(1, kMaxJobs));
}

void load_plugins(PluginRegistry& registry, const GlobalOptions& global, const std::vector<std::filesystem::path>& more) {
  for (const auto& folder : PluginRegistry::default_search_path()) registry.load_folder(folder);
  for (const auto& folder : global.plugin_folders) registry.load_folder(folder);
  for (const auto& folder : more) registry.load_folder(folder);
}

Experiment load_experiment(const std::string& file, const std::vector<std::string>& sets, const GlobalOptions& global,
                           PluginRegistry& registry) {
  ExperimentFile experiment = ExperimentFile::load(file);
  for (const auto& s : sets) experiment.set_override(s);
  Experiment loaded;
  loaded.plugin_folders = experiment.plugin_paths();
  load_plugins(registry, global, loaded.plugin_folders);
  loaded.folder = experiment.path().parent_path();
  loaded.runs = experiment.resolve(registry);
  for (const RunConfig& run : loaded.runs) check_metrics(registry, run);
  // Two variants that resolve to one config are one run: say so, since it is rarely meant (a --set
  // override applies after the variants' keys and can erase what set two of them apart).
  std::map<std::string, const RunConfig*> first_with_hash;
  for (const RunConfig& run : loaded.runs) {
    const auto [earlier, added] = first_with_hash.emplace(run.hash, &run);
    if (added) continue;
    std::cerr << "warning: " << file << ": '" << run.name << "' is the same config as '" << earlier->second->name
              << "' (" << run.hash << "), so it is one run"
              << (sets.empty() ? "" : "; a --set override may have replaced the key that told them apart") << "\n";
  }
  return loaded;
}

std::filesystem::path database_for(const std::string& flag, const Experiment& experiment) {
  if (!flag.empty()) return flag;
  const std::string& results = experiment.runs.front().results;
  if (results.empty()) return kDefaultDatabase;
  const std::filesystem::path path = results;
  return path.is_absolute() ? path : experiment.folder / path;
}

Workspace prepare_workspace(const std::filesystem::path& db, const ExperimentOptions& options,
                            const GlobalOptions& global, const std::vector<std::filesystem::path>& plugin_folders) {
  namespace fs = std::filesystem;
  Workspace workspace;
  // Absolute, because the paths go into child command lines and the store, read from any folder later.
  const fs::path db_folder = fs::absolute(db).parent_path();
  workspace.cache = fs::absolute(options.cache.empty() ? db_folder / "cache" : fs::path(options.cache));
  workspace.artifacts = database_folder(db, "runs");
  workspace.device = options.device;
  workspace.student_jobs = options.student_jobs;
  record_git(workspace);
  // A student process resolves its run from the config stored with it; it needs the same plugins.
  std::vector<std::string>& command = workspace.student_command;
  command = {fs::read_symlink("/proc/self/exe").string()};
  std::vector<fs::path> folders(global.plugin_folders.begin(), global.plugin_folders.end());
  folders.insert(folders.end(), plugin_folders.begin(), plugin_folders.end());
  for (const fs::path& folder : folders) command.insert(command.end(), {"--plugin-path", fs::absolute(folder).string()});
  command.insert(command.end(), {"train-student", "--db", fs::absolute(db).string(), "--cache", workspace.cache.string()});
  if (!workspace.device.empty()) command.insert(command.end(), {"--device", workspace.device});
  install_stop_handling();
  return workspace;
}

void install_stop_handling() {
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
}

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

std::string coordinates_text(const RunConfig& run) {
  std::string coords;
  for (const auto& [key, value] : run.coords) coords += (coords.empty() ? "" : ", ") + key + "=" + value;
  return coords;
}

}  // namespace msd::host::cli
