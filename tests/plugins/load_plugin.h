// Test helper: the built plugin libraries of this tree, by name, through the SDK's plugin test helper
// (msd/testing.h), which loads them with dlopen the way the host does, without the host's loader.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "msd/testing.h"

namespace msd::test {

/// The library libmsd_<name>.so from MSD_PLUGIN_DIR; fails the calling test (throws) when it cannot be
/// opened, was built for another plugin API version, or calls itself otherwise.
const PluginLibrary& load_library(const std::string& name);

/// The descriptor of plugin `plugin` in library `library`; throws when absent.
inline const PluginDescriptor& find_plugin(const std::string& library, const std::string& plugin) {
  return testing::find_plugin(load_library(library), plugin);
}

using testing::default_params;

/// Constructs plugin `plugin` of `library` as interface T (msd::Partition, msd::Metric, ...).
template <typename T>
std::unique_ptr<T> make_plugin(const std::string& library, const std::string& plugin,
                               const std::map<std::string, Value>& overrides = {}) {
  return testing::make_plugin<T>(load_library(library), plugin, overrides);
}

}  // namespace msd::test
