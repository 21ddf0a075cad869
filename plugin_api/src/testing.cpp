#include "msd/testing.h"

#include <dlfcn.h>

namespace msd::testing {

const PluginLibrary& load_library(const std::filesystem::path& file) {
  static std::map<std::filesystem::path, const PluginLibrary*> loaded;
  const auto found = loaded.find(file);
  if (found != loaded.end()) return *found->second;
  // Never dlclose: plugin objects and their vtables must outlive every test.
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) throw std::runtime_error("cannot load " + file.string() + ": " + dlerror());
  using Entry = const msd_plugin_entry_v1* (*)();
  const auto entry = reinterpret_cast<Entry>(dlsym(handle, MSD_PLUGIN_ENTRY_SYMBOL));
  if (entry == nullptr) throw std::runtime_error(file.string() + " exports no " MSD_PLUGIN_ENTRY_SYMBOL);
  const msd_plugin_entry_v1* info = entry();
  if (info->api_version != MSD_PLUGIN_API_VERSION) {
    throw std::runtime_error(file.string() + " has plugin API version " + std::to_string(info->api_version) +
                             ", these headers " + std::to_string(MSD_PLUGIN_API_VERSION) + "; rebuild it");
  }
  const PluginLibrary* library = info->library();
  loaded[file] = library;
  return *library;
}

const PluginDescriptor& find_plugin(const PluginLibrary& library, const std::string& plugin) {
  for (const PluginDescriptor& descriptor : library.plugins) {
    if (descriptor.info.name == plugin) return descriptor;
  }
  throw std::runtime_error("library " + library.name + " has no plugin '" + plugin + "'");
}

Params default_params(const PluginInfo& info, const std::map<std::string, Value>& overrides) {
  Params params;
  for (const KeySpec& key : info.keys) {
    if (!key.default_value) throw std::logic_error(info.name + ": key '" + key.name + "' has no default");
    params.set(key.name, *key.default_value);
  }
  for (const auto& [key, value] : overrides) {
    if (!params.has(key)) throw std::logic_error(info.name + " declares no key '" + key + "'");
    params.set(key, value);
  }
  return params;
}

}  // namespace msd::testing
