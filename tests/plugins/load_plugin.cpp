#include "load_plugin.h"

#include <stdexcept>

namespace msd::test {

const PluginLibrary& load_library(const std::string& name) {
  const PluginLibrary& library = testing::load_library(std::string(MSD_PLUGIN_DIR) + "/libmsd_" + name + ".so");
  if (library.name != name) throw std::runtime_error("libmsd_" + name + ".so calls itself '" + library.name + "'");
  return library;
}

}  // namespace msd::test
