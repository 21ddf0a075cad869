// msd results list | show | compare | sql | query | plot | merge: reading a results database.
#include <iostream>

#include "cli.h"
#include "msd/results/compare.h"
#include "msd/results/filter.h"
#include "msd/results/format.h"
#include "msd/results/merge.h"
#include "msd/results/plot.h"

namespace msd::host::cli {

namespace {

/// Every results subcommand reads --db, written before or after the subcommand's name.
struct ResultsOptions {
  std::string db = kDefaultDatabase;
  std::string experiment;  ///< list
  std::int64_t run = 0;    ///< show
  results::CompareRequest compare;
  std::string sql;
  results::QueryLimits sql_limits;
  results::RunQuery query;
  results::PlotRequest plot;
  std::string plot_out;
  std::string merge_out;
  std::vector<std::string> merge_shards;
  std::string format = "table";
};

CLI::App* subcommand(CLI::App* results, const char* name, const char* help) {
  CLI::App* command = results->add_subcommand(name, help);
  command->fallthrough();  // `msd results list --db X` as well as `msd results --db X list`
  return command;
}

void add_format_option(CLI::App* command, std::string& format) {
  command->add_option("--format", format, "table, csv, json or markdown")
      ->check(CLI::IsMember({"table", "csv", "json", "markdown"}))
      ->capture_default_str();
}

Command add_list(CLI::App* results, const std::shared_ptr<ResultsOptions>& o) {
  CLI::App* list = subcommand(results, "list", "one line per run");
  list->add_option("--experiment", o->experiment, "only runs of this experiment");
  return {list, [o] {
            std::cout << results::format_run_list(open_existing(o->db)->list_runs(o->experiment));
            return 0;
          }};
}

Command add_show(CLI::App* results, const std::shared_ptr<ResultsOptions>& o) {
  CLI::App* show = subcommand(results, "show", "config, status, plugins, final metrics and artifacts of a run");
  show->add_option("run", o->run, "run id")->required()->check(whole_number(1, kMaxId));
  return {show, [o] {
            std::cout << results::format_run_details(*open_existing(o->db), o->run);
            return 0;
          }};
}

Command add_compare(CLI::App* results, const std::shared_ptr<ResultsOptions>& o) {
  CLI::App* compare = subcommand(results, "compare",
                                 "mean, std and count of final metrics of a sweep's finished runs, grouped by params");
  compare->add_option("sweep", o->compare.selection, "sweep id (or a unique prefix of 4+ characters) or experiment name")
      ->required();
  compare->add_option("--by", o->compare.by,
                      "param key to group by, e.g. partition.k, or variant: the run name without its [coordinates] "
                      "(repeatable)")
      ->required();
  compare->add_option("--metric", o->compare.metrics, "metric name, e.g. swd (repeatable)")->required();
  compare->add_option("--scope", o->compare.scope, "metric scope (default: whole model)");
  compare->add_option("--against", o->compare.against,
                      "the baseline group's value of each --by key, in order (repeatable): show each metric as "
                      "its difference from the baseline's run of the same seed");
  add_format_option(compare, o->format);
  return {compare, [o] {
            const results::ComparisonTable table = results::compare_runs(*open_existing(o->db), o->compare);
            std::cout << results::format_comparison(table, results::output_format_from_string(o->format));
            return 0;
          }};
}

Command add_sql(CLI::App* results, const std::shared_ptr<ResultsOptions>& o) {
  CLI::App* sql = subcommand(results, "sql", "run one SQL query on the database, opened read-only");
  sql->add_option("query", o->sql, "SQL statement, e.g. \"SELECT * FROM metric_values\"")->required();
  o->sql_limits.max_rows = 10000;
  o->sql_limits.max_seconds = 300;
  sql->add_option("--max-rows", o->sql_limits.max_rows, "print at most this many rows; 0: all")
      ->capture_default_str()->check(whole_number(0, kMaxId));
  sql->add_option("--timeout", o->sql_limits.max_seconds, "stop a query that runs longer, in seconds")
      ->capture_default_str()->check(CLI::Range(0.001, 1e6));
  add_format_option(sql, o->format);
  return {sql, [o] {
            const results::Store store(o->db, results::Store::Mode::read_only);
            const results::QueryResult rows = store.query(o->sql, {}, o->sql_limits);
            std::cout << results::format_query_result(rows, results::output_format_from_string(o->format));
            if (rows.truncated) {
              std::cerr << "msd: stopped after " << rows.rows.size()
                        << " rows; the query has more (--max-rows N shows more, 0 all; or add a LIMIT)\n";
            }
            return 0;
          }};
}

Command add_query(CLI::App* results, const std::shared_ptr<ResultsOptions>& o) {
  CLI::App* query = subcommand(results, "query",
                               "runs matching a filter, e.g. 'metrics.swd < 0.05 and params.partition.k = 4' (docs/RESULTS.md)");
  query->add_option("filter", o->query.filter, "filter over metrics., params., coords., tags. and run fields")->required();
  query->add_option("--metric", o->query.metrics, "metric to show, NAME or NAME@SCOPE (repeatable)");
  add_format_option(query, o->format);
  return {query, [o] {
            const results::Store store(o->db, results::Store::Mode::read_only);
            const results::QueryResult runs = results::query_runs(store, o->query);
            const results::OutputFormat format = results::output_format_from_string(o->format);
            // An empty table says nothing; csv and json stay machine-readable (a header, []).
            if (runs.rows.empty() && format == results::OutputFormat::table) {
              std::cerr << "no runs match\n";
              return 0;
            }
            std::cout << results::format_query_result(runs, format);
            return 0;
          }};
}

Command add_plot(CLI::App* results, const std::shared_ptr<ResultsOptions>& o) {
  CLI::App* plot = subcommand(results, "plot",
                              "PNG line plot of a metric's mean ± std over a sweep's finished runs against one param");
  plot->add_option("sweep", o->plot.selection, "sweep id (or a unique prefix of 4+ characters) or experiment name")->required();
  plot->add_option("--x", o->plot.x, "param key on the x axis, e.g. partition.k")->required();
  plot->add_option("--y", o->plot.y, "metric name on the y axis, e.g. swd")->required();
  plot->add_option("--scope", o->plot.scope, "metric scope (default: whole model)");
  plot->add_option("--by", o->plot.by, "one line per value of this param key (repeatable)");
  plot->add_option("--out", o->plot_out, "output PNG file")->required();
  return {plot, [o] {
            results::plot_sweep(*open_existing(o->db), o->plot, o->plot_out);
            std::cout << "wrote " << o->plot_out << "\n";
            return 0;
          }};
}

Command add_merge(CLI::App* results, const std::shared_ptr<ResultsOptions>& o) {
  CLI::App* merge = results->add_subcommand(
      "merge", "copy the runs of shard databases (e.g. of a Slurm job array) into OUT; merging again changes nothing");
  merge->add_option("out", o->merge_out, "database to merge into (created if absent)")->required();
  merge->add_option("shards", o->merge_shards, "shard databases")->required();
  return {merge, [o] {
            const std::vector<results::ShardMerge> merges = results::merge_shards(o->merge_out, o->merge_shards);
            std::cout << results::format_merge_report(o->merge_out, merges);
            for (const results::ShardMerge& m : merges) {
              if (!m.error.empty()) return 1;
            }
            return 0;
          }};
}

}  // namespace

Commands add_results_commands(CLI::App& app) {
  auto options = std::make_shared<ResultsOptions>();
  CLI::App* results = app.add_subcommand("results", "query the results database");
  results->require_subcommand(1);
  results->add_option("--db", options->db, "results database")->capture_default_str();
  return {add_list(results, options), add_show(results, options), add_compare(results, options), add_sql(results, options),
          add_query(results, options), add_plot(results, options), add_merge(results, options)};
}

}  // namespace msd::host::cli
