#include "msd/host/plugin_registry.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>
#include <system_error>
#include <utility>

#include <boost/dll/shared_library.hpp>

#include "library_file.h"
#include "msd/text.h"

namespace msd::host {

namespace fs = std::filesystem;

namespace {

/// For messages: the absolute spelling of a path the user gave, even when it does not exist.
std::string absolute_string(const fs::path& path) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(path, ec);
  return (ec ? path : absolute).string();
}

/// Params widens integers to reals (get_real, get_real_list), so an integer default of a real key
/// reads back correctly; every other mismatch would make the plugin's own getter throw.
bool default_fits(KeyType declared, const Value& value) {
  const KeyType actual = type_of(value);
  return actual == declared || (declared == KeyType::real && actual == KeyType::integer) ||
         (declared == KeyType::real_list && actual == KeyType::integer_list);
}

/// The numbers inside a value (one for a scalar, each element of a list); empty for other types.
std::vector<double> numbers_in(const Value& value) {
  if (const auto* i = std::get_if<std::int64_t>(&value)) return {static_cast<double>(*i)};
  if (const auto* d = std::get_if<double>(&value)) return {*d};
  if (const auto* v = std::get_if<std::vector<double>>(&value)) return *v;
  if (const auto* v = std::get_if<std::vector<std::int64_t>>(&value)) return {v->begin(), v->end()};
  return {};
}

/// Rejects metadata the config validator could not work with: a plugin without a name, a key
/// declared twice, or a default that its own key's type, range or choices would refuse. These are
/// bugs in the plugin, so they are reported when its library loads, not when a user hits them.
void check_info(const PluginInfo& info, const std::string& file) {
  if (info.name.empty()) {
    throw PluginError(file + " provides a " + to_string(info.kind) +
                      " plugin with an empty name; set PluginInfo::name in the plugin's info()");
  }
  const std::string plugin = "plugin '" + info.name + "' in " + file;
  std::set<std::string> seen;
  for (const KeySpec& key : info.keys) {
    if (key.name.empty()) {
      throw PluginError(plugin + " declares a key with an empty name; name it in the plugin's info()");
    }
    if (!seen.insert(key.name).second) {
      throw PluginError(plugin + " declares key '" + key.name +
                        "' twice; remove one declaration from the plugin's info()");
    }
    if (!key.default_value) continue;
    const Value& value = *key.default_value;
    const std::string what = plugin + ": the default of key '" + key.name + "' (" + to_toml(value) + ")";
    if (!default_fits(key.type, value)) {
      throw PluginError(what + " is a " + to_string(type_of(value)) + " but the key is declared as " +
                        to_string(key.type) + "; fix the key's type or default in the plugin's info()");
    }
    for (double number : numbers_in(value)) {
      if ((key.min && number < *key.min) || (key.max && number > *key.max)) {
        throw PluginError(what + " is outside the key's own range; fix the default or the range in the "
                          "plugin's info()");
      }
    }
    const auto* text = std::get_if<std::string>(&value);
    if (text && !key.choices.empty() &&
        std::find(key.choices.begin(), key.choices.end(), *text) == key.choices.end()) {
      throw PluginError(what + " is not one of the key's own choices (" + text::join(key.choices) +
                        "); fix the default or the choices in the plugin's info()");
    }
  }
}

}  // namespace

struct PluginRegistry::Impl {
  // Declared first so it is destroyed last: the factories in `plugins` are code from these libraries.
  // Rejected libraries stay here too: their static initialisers have run (and may have registered
  // themselves elsewhere, e.g. with LibTorch), so unmapping them could leave dangling pointers.
  std::vector<boost::dll::shared_library> libraries;
  std::set<fs::path> loaded;                    ///< canonical paths of accepted libraries
  std::map<std::string, LoadedPlugin> plugins;  ///< by name: names are unique across kinds
};

PluginRegistry::PluginRegistry() : impl_(std::make_unique<Impl>()) {}
PluginRegistry::~PluginRegistry() = default;

std::vector<fs::path> PluginRegistry::default_search_path() {
  std::vector<fs::path> folders;
  std::error_code ec;
  // An installed msd (<prefix>/bin/msd) loads its own <prefix>/lib/msd/plugins and never the build
  // tree it came from, whose plugins would take the same names; msd in its build tree loads the
  // build's folder. Folders the user names in MSD_PLUGIN_PATH are kept even when missing, so that a
  // typo there is reported by load_folder.
  const fs::path installed = fs::read_symlink("/proc/self/exe", ec).parent_path().parent_path() / MSD_INSTALL_PLUGIN_DIR;
  if (!ec && fs::is_directory(installed, ec)) {
    folders.push_back(installed);
  } else if (fs::is_directory(MSD_BUILD_PLUGIN_DIR, ec)) {
    folders.emplace_back(MSD_BUILD_PLUGIN_DIR);
  }
  if (const char* env = std::getenv("MSD_PLUGIN_PATH")) {
    const std::string path = env;
    size_t begin = 0;
    while (begin <= path.size()) {
      size_t end = path.find(':', begin);
      if (end == std::string::npos) end = path.size();
      if (end > begin) folders.emplace_back(path.substr(begin, end - begin));
      begin = end + 1;
    }
  }
  return folders;
}

void PluginRegistry::load_folder(const fs::path& folder) {
  const std::string where = absolute_string(folder);
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) {
    throw PluginError("plugin folder " + where +
                      (fs::exists(folder, ec) ? " is not a folder" : " does not exist") +
                      "; check --plugin-path, MSD_PLUGIN_PATH and the experiment file's experiment.plugin_paths "
                      "(relative to the experiment file's folder)");
  }
  std::vector<fs::path> files;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (it->path().extension() == ".so" && it->is_regular_file(type_ec)) files.push_back(it->path());
  }
  if (ec) {
    throw PluginError("cannot read plugin folder " + where + ": " + ec.message() + "; check its permissions");
  }
  // Directory order is arbitrary; sorting makes "which library claimed a name first" reproducible.
  std::sort(files.begin(), files.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
  for (const fs::path& file : files) load_library(file);
}

void PluginRegistry::load_library(const fs::path& file) {
  std::error_code ec;
  const fs::path path = fs::canonical(file, ec);
  if (ec) {
    throw PluginError("cannot load plugin library " + absolute_string(file) + ": " + ec.message() +
                      "; check the path");
  }
  if (impl_->loaded.count(path) != 0) return;
  const std::string where = path.string();

  check_library_file(path);
  boost::dll::shared_library library;
  try {
    // Local symbols keep two plugins' internals apart; binding now reports missing symbols here,
    // naming the file, instead of crashing in the middle of a run.
    library.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    throw PluginError("cannot load plugin library " + where + ": " + e.what() +
                      "; check that it is a shared library built for this machine and that the "
                      "libraries it needs are found (ldd " + where + ")");
  }
  impl_->libraries.push_back(std::move(library));
  const boost::dll::shared_library& loaded = impl_->libraries.back();

  if (!loaded.has(MSD_PLUGIN_ENTRY_SYMBOL)) {
    throw PluginError(where + " is not an msd-lab plugin library (no " MSD_PLUGIN_ENTRY_SYMBOL
                      " symbol); plugin libraries are built with MSD_PLUGIN_LIBRARY from "
                      "plugin_api/msd/plugin.h");
  }
  const msd_plugin_entry_v1* entry = loaded.get<const msd_plugin_entry_v1*()>(MSD_PLUGIN_ENTRY_SYMBOL)();
  if (entry == nullptr) {
    throw PluginError(where + ": " MSD_PLUGIN_ENTRY_SYMBOL "() returned null; rebuild it with "
                      "MSD_PLUGIN_LIBRARY from plugin_api/msd/plugin.h");
  }
  // Only api_version may be read before this check: the rest of the struct's layout, and everything
  // C++ behind it, belongs to that version of the API.
  if (entry->api_version != MSD_PLUGIN_API_VERSION) {
    throw PluginError(where + " was built for plugin API version " + std::to_string(entry->api_version) +
                      ", this msd expects " + std::to_string(MSD_PLUGIN_API_VERSION) +
                      "; rebuild it against this plugin_api");
  }
  const PluginLibrary* contents = nullptr;
  if (entry->library != nullptr) {
    try {
      contents = entry->library();
    } catch (const std::exception& e) {
      throw PluginError(where + ": building its plugin list failed: " + e.what() + "; fix the library");
    }
  }
  if (contents == nullptr) {
    throw PluginError(where + " returned no plugin list (" MSD_PLUGIN_ENTRY_SYMBOL
                      "()->library is null or returned null); rebuild it with MSD_PLUGIN_LIBRARY from "
                      "plugin_api/msd/plugin.h");
  }

  check_plugins(*contents, where);
  for (const PluginDescriptor& descriptor : contents->plugins) {
    impl_->plugins.emplace(descriptor.info.name,
                           LoadedPlugin{descriptor.info, where, contents->name, descriptor.create});
  }
  impl_->loaded.insert(path);
}

void PluginRegistry::check_plugins(const PluginLibrary& contents, const std::string& where) const {
  // Every plugin is checked before any is registered, so a rejected library leaves the registry unchanged.
  std::set<std::string> names;
  for (const PluginDescriptor& descriptor : contents.plugins) {
    const PluginInfo& info = descriptor.info;
    check_info(info, where);
    if (!names.insert(info.name).second) {
      throw PluginError(where + " provides two plugins named '" + info.name +
                        "'; plugin names must be unique, rename one");
    }
    if (const LoadedPlugin* other = find_any(info.name)) {
      throw PluginError("plugin name '" + info.name + "' is taken twice: " + to_string(other->info.kind) +
                        " plugin in " + other->library_path + " and " + to_string(info.kind) +
                        " plugin in " + where +
                        "; names are unique across kinds, so rename one or drop one library from the "
                        "plugin folders");
    }
    if (!descriptor.create) {
      throw PluginError("plugin '" + info.name + "' in " + where +
                        " has no factory; declare it with msd::describe<T>()");
    }
  }
}

const PluginInfo* PluginRegistry::find(PluginKind kind, const std::string& name) const {
  const LoadedPlugin* plugin = find_any(name);
  return plugin != nullptr && plugin->info.kind == kind ? &plugin->info : nullptr;
}

std::vector<std::string> PluginRegistry::names(PluginKind kind) const {
  std::vector<std::string> out;  // map order: already sorted
  for (const auto& [name, plugin] : impl_->plugins) {
    if (plugin.info.kind == kind) out.push_back(name);
  }
  return out;
}

std::vector<const LoadedPlugin*> PluginRegistry::all() const {
  std::vector<const LoadedPlugin*> out;
  for (const auto& entry : impl_->plugins) out.push_back(&entry.second);
  std::stable_sort(out.begin(), out.end(), [](const LoadedPlugin* a, const LoadedPlugin* b) {
    return a->info.kind < b->info.kind;
  });
  return out;
}

const LoadedPlugin* PluginRegistry::find_any(const std::string& name) const {
  auto it = impl_->plugins.find(name);
  return it == impl_->plugins.end() ? nullptr : &it->second;
}

std::unique_ptr<Plugin> PluginRegistry::construct(PluginKind kind, const std::string& name,
                                                  const Params& params) const {
  const std::vector<std::string> known = names(kind);
  const std::string kind_name = to_string(kind);
  const std::string known_list =
      "known " + kind_name + " plugins: " + (known.empty() ? "none" : text::join(known));
  const LoadedPlugin* plugin = find_any(name);
  if (plugin == nullptr) {
    std::string message = "no " + kind_name + " plugin named '" + name + "'; " + known_list;
    // Within two edits: plugin names are short, and a wrong kind's name is no typo.
    if (const auto suggestion = text::closest_match(name, known, 2)) message += "; did you mean '" + *suggestion + "'?";
    throw PluginError(message);
  }
  if (plugin->info.kind != kind) {
    throw PluginError("'" + name + "' is a " + to_string(plugin->info.kind) + " plugin, not a " + kind_name +
                      " plugin (" + plugin->library_path + "); " + known_list);
  }
  const std::string origin = "plugin '" + name + "' (" + plugin->library_path + ")";
  std::unique_ptr<Plugin> object;
  try {
    object = plugin->create(params);
  } catch (const std::exception& e) {
    throw PluginError(origin + ": " + e.what());
  }
  if (object == nullptr) {
    throw PluginError(origin + ": its factory returned nothing; fix the plugin's describe<>()");
  }
  return object;
}

}  // namespace msd::host
