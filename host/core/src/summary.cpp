#include "msd/host/summary.h"

#include <algorithm>
#include <map>
#include <utility>

#include "msd/results/format.h"

namespace msd::host {

std::vector<SummaryColumn> summary_columns(const PluginCatalog& catalog, const std::vector<RunConfig>& runs) {
  std::vector<SummaryColumn> columns;
  for (const RunConfig& run : runs) {
    for (const PluginSection& metric : run.evaluate.metrics) {
      const PluginInfo* info = catalog.find(PluginKind::metric, metric.plugin);
      if (info == nullptr) continue;
      for (const SummaryColumn& column : info->metric.summary) {
        const auto same = [&](const SummaryColumn& c) { return c.metric == column.metric; };
        if (std::none_of(columns.begin(), columns.end(), same)) columns.push_back(column);
      }
    }
  }
  return columns;
}

std::string format_run_summary(const results::Store& store, const std::vector<std::int64_t>& run_ids,
                               const std::vector<SummaryColumn>& columns) {
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
  // Each column only when some run has it (2-D data and images are scored by different metrics).
  std::vector<SummaryColumn> shown;
  for (const SummaryColumn& column : columns) {
    const auto has = [&](const Row& row) { return row.whole.count(column.metric) != 0; };
    if (std::any_of(rows.begin(), rows.end(), has)) shown.push_back(column);
  }
  std::vector<std::string> header{"run", "name", "status", "K"};
  for (const SummaryColumn& column : shown) header.push_back(column.title);
  for (const char* title : {"train_iters", "train_samples", "train_s"}) header.push_back(title);
  results::TextTable table(header);
  for (const Row& row : rows) {
    auto cell = [&](const std::string& name) {
      auto it = row.whole.find(name);
      return it == row.whole.end() ? std::string("-") : results::format_number(it->second);
    };
    std::vector<std::string> cells{std::to_string(row.id), row.run.name, results::to_string(row.run.status), row.k};
    for (const SummaryColumn& column : shown) cells.push_back(cell(column.metric));
    for (const char* name : {"train.iterations", "train.samples", "train.seconds"}) cells.push_back(cell(name));
    table.add_row(cells);
  }
  return table.str();
}

}  // namespace msd::host
