// Issue reporting and the small text utilities the validator shares with the rest of the host.
#include <algorithm>

#include "msd/host/config.h"
#include "msd/text.h"

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

std::optional<std::string> closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  return text::closest_match(word, candidates, std::max<std::size_t>(2, word.size() / 3));
}

}  // namespace msd::host
