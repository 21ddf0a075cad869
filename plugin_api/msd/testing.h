#pragma once
// Testing a plugin library as the host will load it, without the host: load the built .so with
// dlopen, check its API version, and construct its plugins from their declared defaults. Ships with
// the SDK (library msd_lab::msd_plugin_testing); msd-lab's own plugin tests use it too.
//
//   const msd::PluginLibrary& library = msd::testing::load_library(PLUGIN_FILE);
//   auto partition = msd::testing::make_plugin<msd::Partition>(library, "class_interleaved", {{"offset", 1}});

#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "msd/plugin.h"

namespace msd::testing {

/// The plugin library at `file`, loaded once and never unloaded (plugin objects must not outlive their
/// code). Throws std::runtime_error naming the file when it cannot be loaded, exports no entry point
/// or was built for another plugin API version.
const PluginLibrary& load_library(const std::filesystem::path& file);

/// The descriptor of plugin `plugin` in `library`; throws when the library has none.
const PluginDescriptor& find_plugin(const PluginLibrary& library, const std::string& plugin);

/// Params holding the default of every key `info` declares, then `overrides` on top, as the host's
/// validator would fill them. Throws std::logic_error for a required key or an undeclared override.
Params default_params(const PluginInfo& info, const std::map<std::string, Value>& overrides = {});

/// Constructs plugin `plugin` of `library` as interface T (msd::Partition, msd::Metric, ...).
template <typename T>
std::unique_ptr<T> make_plugin(const PluginLibrary& library, const std::string& plugin,
                               const std::map<std::string, Value>& overrides = {}) {
  const PluginDescriptor& descriptor = find_plugin(library, plugin);
  std::unique_ptr<Plugin> object = descriptor.create(default_params(descriptor.info, overrides));
  T* typed = dynamic_cast<T*>(object.get());
  if (typed == nullptr) throw std::logic_error(plugin + " does not implement the requested interface");
  object.release();
  return std::unique_ptr<T>(typed);
}

}  // namespace msd::testing
