#include "msd/host/summary.h"

#include <map>

#include "msd/results/format.h"

namespace msd::host {

std::string format_run_summary(const results::Store& store, const std::vector<std::int64_t>& run_ids) {
  results::TextTable table({"run", "name", "status", "K", "NFE", "swd", "mmd", "coverage", "near_mode",
                            "ms/sample", "params", "train_iters", "train_samples", "train_s"});
  for (std::int64_t id : run_ids) {
    const auto run = store.find_run(id);
    if (!run) continue;
    std::map<std::string, double> whole;  // final metrics of the whole model (empty scope)
    for (const auto& m : store.final_metrics(id)) {
      if (m.scope.empty()) whole[m.name] = m.value;
    }
    auto cell = [&](const std::string& name) {
      auto it = whole.find(name);
      return it == whole.end() ? std::string("-") : results::format_number(it->second);
    };
    std::string k = "-";
    for (const auto& [key, value] : store.params(id)) {
      if (key == "partition.k") k = value;
    }
    if (whole.count("students") && whole["students"] == 0) k = "teacher";
    table.add_row({std::to_string(id), run->name, results::to_string(run->status), k, cell("nfe"), cell("swd"),
                   cell("mmd"), cell("coverage"), cell("near_mode"), cell("latency_ms_per_sample"), cell("params"),
                   cell("train.iterations"), cell("train.samples"), cell("train.seconds")});
  }
  return table.str();
}

}  // namespace msd::host
