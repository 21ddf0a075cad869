// msd plugins list | show NAME: what is loaded, from which file, and a plugin's keys.
#include <iostream>

#include "cli.h"
#include "msd/text.h"

namespace msd::host::cli {

Commands add_plugins_commands(CLI::App& app, const GlobalOptions& global) {
  CLI::App* plugins = app.add_subcommand("plugins", "list loaded plugins or show one's keys");
  plugins->require_subcommand(1);
  CLI::App* list = plugins->add_subcommand("list", "kind, name, version and file of every plugin");
  auto name = std::make_shared<std::string>();
  CLI::App* show = plugins->add_subcommand("show", "a plugin's description and config keys");
  show->add_option("name", *name, "plugin name")->required();
  return {{list,
           [&global] {
             PluginRegistry registry;
             load_plugins(registry, global);
             std::cout << format_plugin_list(registry);
             return 0;
           }},
          {show, [name, &global] {
             PluginRegistry registry;
             load_plugins(registry, global);
             const LoadedPlugin* plugin = registry.find_any(*name);
             if (plugin == nullptr) {
               std::vector<std::string> known;
               for (const LoadedPlugin* p : registry.all()) known.push_back(p->info.name);
               throw PluginError("no plugin named '" + *name + "'; loaded plugins: " + text::join(known));
             }
             std::cout << format_plugin_details(*plugin);
             return 0;
           }}};
}

}  // namespace msd::host::cli
