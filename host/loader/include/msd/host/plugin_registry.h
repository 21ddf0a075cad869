// Finds, loads and keeps plugin libraries (Boost.DLL), and makes plugin objects by kind and name.
// Libraries stay loaded for the life of the registry, which the host keeps for the life of the process,
// so objects made from them never outlive their code.
#pragma once

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "msd/host/plugin_catalog.h"
#include "msd/plugin.h"

namespace msd::host {

/// A loading or lookup failure. The message names the file (or plugin) and says what to do.
class PluginError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A plugin the registry knows, with the library it came from.
struct LoadedPlugin {
  PluginInfo info;
  std::string library_path;   ///< absolute path of the .so
  std::string library_name;   ///< PluginLibrary::name
  PluginFactory create;
};

class PluginRegistry : public PluginCatalog {
 public:
  PluginRegistry();
  ~PluginRegistry() override;

  /// The folders searched by default: the build's plugin folder (compiled in), then every folder
  /// of the MSD_PLUGIN_PATH environment variable (':'-separated).
  static std::vector<std::filesystem::path> default_search_path();

  /// Loads every `*.so` in `folder` (not recursive). A missing folder is an error naming it.
  void load_folder(const std::filesystem::path& folder);
  /// Loads one library. Throws PluginError, naming the file, when it is not a plugin library (no
  /// `msd_plugin_entry`), was built for another API version (both versions and "rebuild it against
  /// this plugin_api" in the message), or provides a plugin whose name is already taken (both files).
  /// Loading the same file twice is a no-op.
  void load_library(const std::filesystem::path& file);

  const PluginInfo* find(PluginKind kind, const std::string& name) const override;
  std::vector<std::string> names(PluginKind kind) const override;
  /// Every plugin, sorted by kind then name.
  std::vector<const LoadedPlugin*> all() const;
  /// Any kind; nullptr if unknown.
  const LoadedPlugin* find_any(const std::string& name) const;

  /// Constructs plugin `name` of `kind` from validated params. Throws PluginError when no library
  /// provides it (the message lists the known names of that kind), and when the object the factory
  /// returns is not of the declared kind.
  template <typename Interface>
  std::unique_ptr<Interface> make(PluginKind kind, const std::string& name, const Params& params) const {
    std::unique_ptr<Plugin> object = construct(kind, name, params);
    auto* typed = dynamic_cast<Interface*>(object.get());
    if (typed == nullptr) {
      throw PluginError("plugin '" + name + "' declared kind " + to_string(kind) +
                        " but its factory made an object of another kind; fix the plugin's describe<>()");
    }
    object.release();
    return std::unique_ptr<Interface>(typed);
  }

 private:
  std::unique_ptr<Plugin> construct(PluginKind kind, const std::string& name, const Params& params) const;
  /// Throws PluginError when a plugin of `contents` (from file `where`) is inconsistent or its name taken.
  void check_plugins(const PluginLibrary& contents, const std::string& where) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// `msd plugins list`: one line per plugin: kind, name, version, file.
std::string format_plugin_list(const PluginRegistry& registry);
/// `msd plugins show NAME`: description, file, and each key with type, default and doc.
std::string format_plugin_details(const LoadedPlugin& plugin);

}  // namespace msd::host
