// msd sample RUN --n N --out FILE.npy [--from students|teacher|data]: samples of a run's models.
#include <iostream>

#include "cli.h"
#include "msd/host/sample_command.h"

namespace msd::host::cli {

Commands add_sample_command(CLI::App& app, const GlobalOptions& global) {
  struct Options {
    SampleRequest request;
    std::string db = kDefaultDatabase;
  };
  auto options = std::make_shared<Options>();
  SampleRequest& request = options->request;
  CLI::App* command = app.add_subcommand("sample", "write samples of a run's models (or its dataset) as .npy");
  command->add_option("run", request.run_id, "run id")->required()->check(whole_number(1, kMaxId));
  command->add_option("--n", request.n, "number of samples")->capture_default_str()->check(whole_number(1, kMaxSampleCount));
  command->add_option("--out", request.out, "output .npy file (labels: <stem>_labels.npy)")->required();
  command->add_option("--from", request.from, "students, teacher or data")
      ->check(CLI::IsMember({"students", "teacher", "data"}))
      ->capture_default_str();
  command->add_option("--seed", request.seed, "random seed")->capture_default_str()->check(whole_number(0, kMaxId));
  command->add_option("--device", request.device, "cpu, cuda or auto")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  command->add_option("--db", options->db, "results database")->capture_default_str();
  return {{command, [options, &global] {
             PluginRegistry registry;
             load_plugins(registry, global);
             std::cout << sample_run(options->request, registry, *open_existing(options->db)) << "\n";
             return 0;
           }}};
}

}  // namespace msd::host::cli
