// msd run FILE [--only VARIANT]...: every run of an experiment file (or of the named variants), one after
// another, each recorded as a new run; then the side-by-side summary.
#include <iostream>
#include <set>

#include "cli.h"
#include "msd/host/summary.h"

namespace msd::host::cli {

namespace {

struct RunOptions {
  ExperimentOptions experiment;
  std::vector<std::string> only;
};

/// The runs of `runs` that the --only names pick: a variant's name picks all of its grid, zip and seed
/// runs ("base[partition.k=2,seed=0]").
std::vector<RunConfig> chosen(const std::vector<RunConfig>& runs, const std::vector<std::string>& only,
                              const std::string& file) {
  if (only.empty()) return runs;
  std::vector<RunConfig> picked;
  for (const std::string& name : only) {
    const std::size_t before = picked.size();
    for (const RunConfig& run : runs) {
      if (run.name == name || run.name.rfind(name + "[", 0) == 0) picked.push_back(run);
    }
    if (picked.size() == before) throw std::runtime_error("--only " + name + ": " + file + " has no variant of that name");
  }
  return picked;
}

/// `runs` without those whose config an earlier one has (load_experiment warned of them): one run each.
std::vector<RunConfig> distinct(std::vector<RunConfig> runs) {
  std::set<std::string> hashes;
  std::vector<RunConfig> kept;
  for (RunConfig& run : runs) {
    if (hashes.insert(run.hash).second) kept.push_back(std::move(run));
  }
  return kept;
}

int run(const RunOptions& options, const GlobalOptions& global) {
  PluginRegistry registry;
  const ExperimentOptions& o = options.experiment;
  Experiment experiment = load_experiment(o.file, o.sets, global, registry);
  experiment.runs = distinct(chosen(experiment.runs, options.only, o.file));
  const std::filesystem::path db = database_for(o.db, experiment);
  if (db.has_parent_path()) std::filesystem::create_directories(db.parent_path());
  results::Store store(db.string());
  Runner runner(registry, store, prepare_workspace(db, o, global, experiment.plugin_folders), std::cout);
  std::vector<std::int64_t> ids;
  bool all_finished = true;
  for (const RunConfig& config : experiment.runs) {
    const RunReport report = runner.run(config);
    ids.push_back(report.run_id);
    all_finished = all_finished && report.status == results::RunStatus::finished;
    if (g_stop_requested) break;
  }
  std::cout << "\n" << experiment.runs.front().experiment << " (" << db.string() << ")\n"
            << format_run_summary(store, ids, summary_columns(registry, experiment.runs));
  return all_finished ? 0 : 1;
}

}  // namespace

Commands add_run_command(CLI::App& app, const GlobalOptions& global) {
  auto options = std::make_shared<RunOptions>();
  CLI::App* command = app.add_subcommand("run", "run an experiment file (every variant, or those named by --only)");
  add_experiment_options(command, options->experiment);
  command->add_option("--only", options->only, "run only this variant (repeatable)");
  return {{command, [options, &global] { return run(*options, global); }}};
}

}  // namespace msd::host::cli
