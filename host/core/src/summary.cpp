#include "msd/host/summary.h"

#include <map>
#include <utility>

#include "msd/results/format.h"

namespace msd::host {

namespace {

/// Quality metrics the summary shows, in this order, each only when some run has it (2-D data and
/// images are scored by different metrics).
const std::vector<std::pair<std::string, std::string>> kQualityColumns = {
    {"swd", "swd"},     {"mmd", "mmd"}, {"coverage", "coverage"}, {"near_mode", "near_mode"},
    {"fd", "fd"},       {"kid", "kid"}, {"precision", "precision"}, {"recall", "recall"},
    {"cond_accuracy", "cond_acc"}};

}  // namespace

std::string format_run_summary(const results::Store& store, const std::vector<std::int64_t>& run_ids) {
  struct Row {
    std::int64_t id;
    results::RunRecord run;
    std::map<std::string, double> whole;  // final metrics of the whole model (empty scope)
    std::string k = "-";
  };
  std::vector<Row> rows;
  for (std::int64_t id : run_ids) {
    const auto run = store.find_run(id);
    if (!run) continue;
    Row row{id, *run, {}};
    for (const auto& m : store.final_metrics(id)) {
      if (m.scope.empty()) row.whole[m.name] = m.value;
    }
    for (const auto& [key, value] : store.params(id)) {
      if (key == "partition.k") row.k = value;
    }
    if (row.whole.count("students") && row.whole["students"] == 0) row.k = "teacher";
    rows.push_back(std::move(row));
  }
  std::vector<std::pair<std::string, std::string>> quality;
  for (const auto& column : kQualityColumns) {
    for (const Row& row : rows) {
      if (row.whole.count(column.first) != 0) {
        quality.push_back(column);
        break;
      }
    }
  }
  std::vector<std::string> header{"run", "name", "status", "K", "NFE"};
  for (const auto& column : quality) header.push_back(column.second);
  for (const char* title : {"ms/sample", "params", "train_iters", "train_samples", "train_s"}) header.push_back(title);
  results::TextTable table(header);
  for (const Row& row : rows) {
    auto cell = [&](const std::string& name) {
      auto it = row.whole.find(name);
      return it == row.whole.end() ? std::string("-") : results::format_number(it->second);
    };
    std::vector<std::string> cells{std::to_string(row.id), row.run.name, results::to_string(row.run.status), row.k,
                                   cell("nfe")};
    for (const auto& column : quality) cells.push_back(cell(column.first));
    for (const char* name : {"latency_ms_per_sample", "params", "train.iterations", "train.samples", "train.seconds"}) {
      cells.push_back(cell(name));
    }
    table.add_row(cells);
  }
  return table.str();
}

}  // namespace msd::host
