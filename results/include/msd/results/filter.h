// `msd results query`: a small filter language over the runs of a results database, e.g.
//
//   metrics.swd < 0.05 and params.partition.k = 4
//   status != failed and (coords.seed in (0, 1) or not tags.note = "bad gpu")
//
// The platform parses the filter itself (recursive descent) and translates it to SQL in which every
// value, key and metric name from the user is a bound parameter; no filter text is ever pasted into
// SQL. The grammar, the fields and how values compare are in docs/RESULTS.md, "Filter language".
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "msd/results/store.h"

namespace msd::results {

/// A filter that does not parse, names an unknown field, or compares a field with a value it cannot
/// take. what() is the whole message for people:
///
///   filter:1:15: expected a value after '<'
///     metrics.swd < and params.partition.k = 4
///                   ^
class FilterError : public std::runtime_error {
 public:
  /// `offset` is the byte offset in `filter` where the problem is (filter.size() for its end).
  FilterError(const std::string& filter, std::size_t offset, const std::string& problem);

  int line() const { return line_; }            ///< 1-based line of the problem in the filter
  int column() const { return column_; }        ///< 1-based column, in characters
  const std::string& problem() const { return problem_; }  ///< what was wrong or expected

 private:
  int line_ = 1;
  int column_ = 1;
  std::string problem_;
};

/// A filter translated to SQL.
struct CompiledFilter {
  /// A boolean SQL expression over `runs r JOIN experiments e ON e.id = r.experiment_id`.
  std::string where;
  /// The values of ?1, ?2, ... in `where`, bound as text.
  std::vector<std::string> params;
};

/// Parses `filter` and translates it to SQL. Throws FilterError.
CompiledFilter compile_filter(const std::string& filter);

/// What `msd results query` asks for.
struct RunQuery {
  /// The filter, in the filter language.
  std::string filter;
  /// Metrics to show as extra columns, each the run's final value (highest step) at the whole-model
  /// scope, or at SCOPE when written NAME@SCOPE (as in the filter's metrics.NAME@SCOPE).
  std::vector<std::string> metrics;
};

/// The runs matching `query.filter`, ordered by id, with the columns id, experiment, name, status,
/// sweep_index (NULL outside sweeps), coords ("key=value, ..." in key order, NULL when none) and
/// one per `query.metrics`, named as written there (NULL when the run has no such metric, the text
/// "nan" for NaN, ±9e999 for ±inf). Throws FilterError for a bad filter, std::invalid_argument
/// for a bad metric (an empty name or scope).
QueryResult query_runs(const Store& store, const RunQuery& query);

}  // namespace msd::results
