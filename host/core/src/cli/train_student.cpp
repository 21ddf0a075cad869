// msd train-student --db DB --run RUN --student K: one student of a running run, in a process of its
// own (started by a run under --student-jobs, not by people). It resolves the run from the config
// stored with it, as `msd sample` does. Exit status 0: finished; 3: interrupted (checkpointed); 1: failed.
#include <iostream>

#include "cli.h"

namespace msd::host::cli {

namespace {

struct TrainStudentOptions {
  ExperimentOptions storage;  ///< --db, --cache and --device
  std::int64_t run_id = 0;
  std::int64_t student = 0;
  std::int64_t threads = 0;
};

int train_student(const TrainStudentOptions& options, const GlobalOptions& global) {
  // Its output goes to a log file that the run's process reads for its progress display: no buffering.
  std::cout.setf(std::ios::unitbuf);
  PluginRegistry registry;
  load_plugins(registry, global);
  results::Store store(options.storage.db);
  const std::optional<results::RunRecord> record = store.find_run(options.run_id);
  if (!record) throw std::runtime_error(options.storage.db + " has no run " + std::to_string(options.run_id));
  const RunConfig config =
      ExperimentFile::parse(record->config_text, "config of run " + std::to_string(record->id)).resolve(registry).front();
  Workspace workspace = prepare_workspace(options.storage.db, options.storage, global, {});
  workspace.cores = options.threads;
  Runner runner(registry, store, std::move(workspace), std::cout);
  const RunReport report = runner.train_student(config, options.run_id, options.student);
  if (report.status == results::RunStatus::finished) return 0;
  return report.status == results::RunStatus::interrupted ? 3 : 1;
}

}  // namespace

Commands add_train_student_command(CLI::App& app, const GlobalOptions& global) {
  auto options = std::make_shared<TrainStudentOptions>();
  // Not for people, so not in --help.
  CLI::App* command = app.add_subcommand("train-student", "")->group("");
  ExperimentOptions& storage = options->storage;
  add_storage_options(command, storage.db, storage.cache, storage.device);
  command->get_option("--db")->required()->check(CLI::ExistingFile);
  command->get_option("--cache")->required();
  command->add_option("--run", options->run_id)->required()->check(whole_number(1, kMaxId));
  command->add_option("--student", options->student)->required()->check(whole_number(0, kMaxJobs));
  command->add_option("--threads", options->threads)->check(whole_number(0, kMaxJobs));
  return {{command, [options, &global] { return train_student(*options, global); }}};
}

}  // namespace msd::host::cli
