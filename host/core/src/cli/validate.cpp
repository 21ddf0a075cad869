// msd validate FILE: every run of an experiment file checked, nothing run or written.
#include <iostream>

#include "cli.h"
#include "msd/results/format.h"

namespace msd::host::cli {

Commands add_validate_command(CLI::App& app, const GlobalOptions& global) {
  struct Options {
    std::string file;
    std::vector<std::string> sets;
  };
  auto options = std::make_shared<Options>();
  CLI::App* command = app.add_subcommand("validate", "check an experiment file without running it");
  command->add_option("file", options->file, "experiment TOML file")->required()->check(CLI::ExistingFile);
  command->add_option("--set", options->sets, "override a key (repeatable)");
  return {{command, [options, &global] {
             PluginRegistry registry;
             const Experiment experiment = load_experiment(options->file, options->sets, global, registry);
             const std::size_t n = experiment.runs.size();
             std::cout << options->file << ": OK, " << n << (n == 1 ? " run" : " runs") << "\n";
             results::TextTable table({"name", "config hash", "teacher hash", "overrides"});
             for (const RunConfig& run : experiment.runs) {
               table.add_row({run.name, run.hash, run.teacher_hash, coordinates_text(run)});
             }
             std::cout << table.str();
             return 0;
           }}};
}

}  // namespace msd::host::cli
