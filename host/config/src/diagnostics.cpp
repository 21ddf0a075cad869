// Issue reporting and the small text utilities the validator shares with the rest of the host.
#include <algorithm>
#include <cstdint>
#include <cstdio>

#include "msd/host/config.h"
#include "msd/host/edit_distance.h"

namespace msd::host {

std::string SourceLocation::str() const {
  if (line <= 0) return file;
  std::string out = file + ":" + std::to_string(line);
  if (column > 0) out += ":" + std::to_string(column);
  return out;
}

std::string ConfigIssue::str() const {
  std::string out = where.str() + ": ";
  if (!key.empty()) out += key + ": ";
  return out + message;
}

namespace {
std::string join_issues(const std::vector<ConfigIssue>& issues) {
  std::string out;
  for (const ConfigIssue& issue : issues) {
    if (!out.empty()) out += '\n';
    out += issue.str();
  }
  return out;
}
}  // namespace

ConfigError::ConfigError(std::vector<ConfigIssue> issues)
    : std::runtime_error(join_issues(issues)), issues_(std::move(issues)) {}

std::string hash_text(const std::string& text) {
  std::uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return hex;
}

std::optional<std::string> closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  const std::size_t limit = std::max<std::size_t>(2, word.size() / 3);
  std::optional<std::string> best;
  std::size_t best_distance = limit + 1;
  for (const std::string& candidate : candidates) {
    const std::size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {  // strict: the earlier candidate wins ties
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

}  // namespace msd::host
