#include "load_plugin.h"

#include <dlfcn.h>

#include <stdexcept>

namespace msd::test {

const PluginLibrary& load_library(const std::string& name) {
  static std::map<std::string, const PluginLibrary*> loaded;
  auto it = loaded.find(name);
  if (it != loaded.end()) return *it->second;
  const std::string path = std::string(MSD_PLUGIN_DIR) + "/libmsd_" + name + ".so";
  // Never dlclose: plugin objects and their vtables must outlive every test.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) throw std::runtime_error("cannot load " + path + ": " + dlerror());
  using Entry = const msd_plugin_entry_v1* (*)();
  auto entry = reinterpret_cast<Entry>(dlsym(handle, MSD_PLUGIN_ENTRY_SYMBOL));
  if (entry == nullptr) throw std::runtime_error(path + " exports no " MSD_PLUGIN_ENTRY_SYMBOL);
  const msd_plugin_entry_v1* info = entry();
  if (info->api_version != MSD_PLUGIN_API_VERSION) {
    throw std::runtime_error(path + " has plugin API version " + std::to_string(info->api_version) +
                             ", this build " + std::to_string(MSD_PLUGIN_API_VERSION));
  }
  const PluginLibrary* library = info->library();
  if (library->name != name) throw std::runtime_error(path + " calls itself '" + library->name + "'");
  loaded[name] = library;
  return *library;
}

const PluginDescriptor& find_plugin(const std::string& library, const std::string& plugin) {
  for (const PluginDescriptor& d : load_library(library).plugins) {
    if (d.info.name == plugin) return d;
  }
  throw std::runtime_error("library " + library + " has no plugin '" + plugin + "'");
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

}  // namespace msd::test
