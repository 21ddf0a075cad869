// The plugin metadata the config validator reads. The loader's registry implements it, and so do the
// tests' catalogs, so that config and loader need not know each other.
#pragma once

#include <string>
#include <vector>

#include "msd/plugin.h"

namespace msd::host {

class PluginCatalog {
 public:
  virtual ~PluginCatalog() = default;
  /// nullptr when no loaded library provides a plugin of that kind and name.
  virtual const PluginInfo* find(PluginKind kind, const std::string& name) const = 0;
  /// Names of every plugin of a kind, sorted, for "did you mean" messages.
  virtual std::vector<std::string> names(PluginKind kind) const = 0;
};

}  // namespace msd::host
