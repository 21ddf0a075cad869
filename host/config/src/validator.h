// Strict validation of one effective config (the file with a variant's and the command line's
// overrides merged in) against the host schema and the plugins' declared keys.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config_tree.h"
#include "msd/host/config.h"
#include "msd/host/plugin_catalog.h"

namespace msd::host::config_detail {

/// Checks one value against its spec and returns it with the spec's type (integers widen to reals).
/// Appends an issue naming `key` and returns nullopt when it does not fit.
std::optional<Value> check_value(const KeySpec& spec, const ConfigNode& node, const std::string& key,
                                 std::vector<ConfigIssue>& issues);

/// Turns an effective config into a RunConfig: every key checked, defaults filled, canonical text,
/// hashes and params computed. The caller sets the run's name and coordinates.
class RunResolver {
 public:
  /// `file` locates problems that have no line, such as a missing section.
  RunResolver(const PluginCatalog& catalog, std::string file);

  /// nullopt when anything is wrong; every problem found is appended to `issues`.
  std::optional<RunConfig> resolve(const ConfigNode& root, std::vector<ConfigIssue>& issues) const;

 private:
  const PluginCatalog& catalog_;
  std::string file_;
};

}  // namespace msd::host::config_detail
