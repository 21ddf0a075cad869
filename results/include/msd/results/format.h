// Plain-text views of the results store for the command line, and the aligned table they share.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "msd/results/store.h"

namespace msd::results {

/// A number for people: about 4 significant digits, whole numbers below 1e9 written out in full,
/// and "nan", "inf", "-inf" for non-finite values.
std::string format_number(double value);

/// A duration as "42s", "12m05s", "3h04m" or "2d03h".
std::string format_duration(std::int64_t seconds);

/// A text table with a header row and a rule under it. Columns are as wide as their widest cell
/// (in UTF-8 characters) and two spaces apart; a column whose non-empty cells are all numbers
/// (including nan/inf) is right-aligned. Rows may have fewer cells than others.
class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header);

  void add_row(std::vector<std::string> row);
  /// Number of rows below the header.
  std::size_t size() const { return rows_.size(); }
  /// The table, one line per row, each ending in '\n', without trailing spaces.
  std::string str() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

/// One line per run: id, experiment, name, status, seed, start, duration (so far, while running)
/// and the first 8 characters of the config hash.
std::string format_run_list(const std::vector<RunRecord>& runs);

/// Everything known about one run: status, times, host and device, git, config hash, error, sweep
/// coordinates, tags, the resolved config, final metrics grouped by scope, and artifacts.
/// Throws std::runtime_error "no run with id N in FILE" when there is no such run.
std::string format_run_details(const Store& store, std::int64_t run_id);

}  // namespace msd::results
