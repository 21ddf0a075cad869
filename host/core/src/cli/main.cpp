// msd: the command line of msd-lab. Each command lives in a file of its own beside this one:
//   msd run FILE.toml [--set key=value]... [--only VARIANT]... [--db PATH] [--device auto|cpu|cuda] [--student-jobs N]
//   msd sweep FILE.toml [...] [--dry-run] [--force] [--jobs N] [--index I] [--launcher slurm [--submit]]
//   msd validate FILE.toml [--set key=value]...
//   msd plugins list | show NAME
//   msd results list | show RUN | compare SWEEP | sql "SELECT ..." | query FILTER | plot SWEEP | merge OUT SHARD...
//   msd report SWEEP --out FILE.html
//   msd sample RUN --n N --out FILE.npy [--from students|teacher|data]
#include <iostream>

#include "cli.h"

int main(int argc, char** argv) {
  using namespace msd::host;
  cli::GlobalOptions global;
  global.command_line.assign(argv, argv + argc);
  CLI::App app{"msd-lab: multi-student diffusion distillation experiments"};
  app.require_subcommand(1);
  app.add_option("--plugin-path", global.plugin_folders, "extra folder of plugin libraries (repeatable)");
  cli::Commands commands;
  for (cli::Commands more : {cli::add_run_command(app, global), cli::add_sweep_command(app, global),
                             cli::add_train_student_command(app, global), cli::add_validate_command(app, global),
                             cli::add_plugins_commands(app, global), cli::add_results_commands(app),
                             cli::add_report_command(app), cli::add_sample_command(app, global)}) {
    commands.insert(commands.end(), more.begin(), more.end());
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // --help and --version exit 0; every mistake on the command line exits 2, as a bad experiment file does.
    return app.exit(error) == 0 ? 0 : 2;
  }
  try {
    for (const cli::Command& command : commands) {
      if (command.app->parsed()) return command.run();
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
