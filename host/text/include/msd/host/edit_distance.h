#pragma once
// The edit distance behind every "did you mean" suggestion: the config validator's, the plugin
// loader's and the results filter's. Each keeps its own rule for how close is close enough.

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace msd::host {

/// Levenshtein distance: the insertions, deletions and substitutions that turn `a` into `b`. One
/// row of the table at a time; the words compared are short names, so this is plenty fast.
inline std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace msd::host
