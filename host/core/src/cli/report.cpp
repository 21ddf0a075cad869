// msd report SWEEP --out FILE.html: one self-contained page about a sweep (tables, plots, samples).
#include <iostream>

#include "cli.h"
#include "msd/results/report.h"

namespace msd::host::cli {

Commands add_report_command(CLI::App& app) {
  struct Options {
    results::ReportRequest request;
    std::string out;
    std::string db = kDefaultDatabase;
  };
  auto options = std::make_shared<Options>();
  CLI::App* command = app.add_subcommand("report", "one self-contained HTML page about a sweep: tables, plots, samples");
  command->add_option("sweep", options->request.selection, "sweep id (or a unique prefix of 4+ characters) or experiment name")
      ->required();
  command->add_option("--out", options->out, "output HTML file")->required();
  command->add_option("--metric", options->request.metrics, "metric to compare (repeatable; default: the shared final ones)");
  command->add_option("--db", options->db, "results database")->capture_default_str();
  return {{command, [options] {
             results::write_report(*open_existing(options->db), options->request, options->out);
             std::cout << "wrote " << options->out << "\n";
             return 0;
           }}};
}

}  // namespace msd::host::cli
