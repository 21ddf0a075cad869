// `msd results compare`: final metrics of a sweep's (or an experiment's) finished runs, grouped by
// parameter values, as mean, sample standard deviation and count per group; and the output
// formats shared with `msd results sql`.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "msd/results/store.h"

namespace msd::results {

/// The --by key that groups runs by their variant: the run's name without its coordinates in brackets
/// ("k4_s1200[seed=2]" is variant "k4_s1200"), so that a variant's seeds form one row.
inline constexpr const char* kVariantKey = "variant";

/// `run_name` without its bracketed coordinates.
std::string variant_of(const std::string& run_name);

struct CompareRequest {
  /// A sweep id, a unique prefix of one (at least 4 characters), or an experiment name.
  std::string selection;
  std::vector<std::string> by;       ///< dotted param keys to group by ("partition.k"), or kVariantKey
  std::vector<std::string> metrics;  ///< metric names
  std::string scope;                 ///< "" = whole model
  /// Empty, or one value per `by`: the baseline group. Then each run's metric becomes its difference
  /// from the baseline group's run of the same seed (in the image studies each seed trains its own
  /// teacher, so a run and its partner share one); runs whose seed the baseline lacks are left out.
  std::vector<std::string> against;
};

/// Statistics of one metric over one group's runs (each run's value at its highest step).
struct MetricSummary {
  std::size_t n = 0;           ///< finite values, the ones mean and std are over
  std::size_t non_finite = 0;  ///< NaN and infinite values, left out of mean and std
  double mean = 0.0;           ///< NaN when n = 0
  double std = 0.0;            ///< sample standard deviation (n - 1); NaN when n < 2
};

struct ComparisonRow {
  std::vector<std::string> by;          ///< one value per CompareRequest::by; "-" when absent
  std::size_t runs = 0;                 ///< finished runs in the group
  std::vector<MetricSummary> metrics;   ///< one per CompareRequest::metrics
};

struct ComparisonTable {
  std::string description;             ///< "sweep 3f2a9c01..." or "experiment mnist"
  std::vector<std::string> by;
  std::vector<std::string> metrics;
  std::string scope;
  std::vector<std::string> against;    ///< CompareRequest::against: the metrics are paired differences
  std::vector<ComparisonRow> rows;     ///< ordered by the by values (numbers numerically)
};

/// Throws std::runtime_error when the selection is unknown or an ambiguous prefix (listing the
/// candidates), when by or metrics is empty, or when `against` names no group (listing the groups),
/// has not one value per `by`, or names a group with two runs of one seed.
ComparisonTable compare_runs(const Store& store, const CompareRequest& request);

/// What a SWEEP argument of compare, plot and report names.
struct SweepSelection {
  std::string kind;   ///< "sweep" or "experiment"
  std::string value;  ///< the full sweep id, or the experiment name
};
/// Resolves a sweep id, a unique prefix of 4+ characters of one, or an experiment name. Throws a
/// message that lists the sweeps and experiments the database has when nothing matches; `command`
/// names the command in the message for an empty selection.
SweepSelection resolve_sweep(const Store& store, const std::string& selection, const std::string& command);

/// Orders two by-values: numerically when both parse as numbers, else as text in natural order (runs
/// of digits by value: "k2_s600" before "k2_s1200"); numbers first.
bool by_value_less(const std::string& a, const std::string& b);

enum class OutputFormat { table, csv, json, markdown };
/// "table", "csv", "json" or "markdown"; throws std::invalid_argument otherwise.
OutputFormat output_format_from_string(const std::string& text);

/// table: "mean ± std (n)" per metric, plus a note when non-finite values were left out.
/// csv: by keys, then name_mean,name_std,name_n,name_non_finite per metric.
/// With `against`, a metric's column is "name - baseline" (csv and json: name_minus_baseline).
/// json: an array of objects. markdown: a pipe table.
std::string format_comparison(const ComparisonTable& table, OutputFormat format);

/// A query result; table formats numbers with format_number, csv and json keep full precision.
/// Markdown is accepted too.
std::string format_query_result(const QueryResult& result, OutputFormat format);

/// Quoting helpers, exposed for tests.
std::string csv_field(const std::string& text);
std::string json_string(const std::string& text);

}  // namespace msd::results
