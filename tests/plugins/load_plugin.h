// Test helper: loads a built plugin library from the build's plugin folder with dlopen, the way the
// host does, and constructs its plugins with every declared key at its default. It deliberately
// avoids the host's loader so that these tests check the libraries alone.
#pragma once

#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "msd/plugin.h"

namespace msd::test {

/// The library libmsd_<name>.so from MSD_PLUGIN_DIR; loaded once and never unloaded. Fails the
/// calling test (throws) when it cannot be opened or its api_version differs from this build's.
const PluginLibrary& load_library(const std::string& name);

/// The descriptor of plugin `plugin` in library `library`; throws when absent.
const PluginDescriptor& find_plugin(const std::string& library, const std::string& plugin);

/// Params holding the default of every key `info` declares, then `overrides` on top.
Params default_params(const PluginInfo& info, const std::map<std::string, Value>& overrides = {});

/// Constructs plugin `plugin` of `library` as interface T (msd::Partition, msd::Metric, ...).
template <typename T>
std::unique_ptr<T> make_plugin(const std::string& library, const std::string& plugin,
                               const std::map<std::string, Value>& overrides = {}) {
  const PluginDescriptor& descriptor = find_plugin(library, plugin);
  std::unique_ptr<Plugin> object = descriptor.create(default_params(descriptor.info, overrides));
  T* typed = dynamic_cast<T*>(object.get());
  if (typed == nullptr) throw std::logic_error(plugin + " does not implement the requested interface");
  object.release();
  return std::unique_ptr<T>(typed);
}

}  // namespace msd::test
