// A PluginCatalog over plugin metadata written in code: what the config tests and the fuzz targets
// validate experiment files against, without loading any library.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "msd/host/plugin_catalog.h"

namespace msd::testing {

class InfoCatalog : public host::PluginCatalog {
 public:
  void add(PluginInfo info) { plugins_.emplace(std::make_pair(info.kind, info.name), std::move(info)); }

  const PluginInfo* find(PluginKind kind, const std::string& name) const override {
    const auto found = plugins_.find({kind, name});
    return found == plugins_.end() ? nullptr : &found->second;
  }

  std::vector<std::string> names(PluginKind kind) const override {
    std::vector<std::string> out;  // map order: sorted
    for (const auto& [key, info] : plugins_) {
      if (key.first == kind) out.push_back(key.second);
    }
    return out;
  }

 private:
  std::map<std::pair<PluginKind, std::string>, PluginInfo> plugins_;
};

}  // namespace msd::testing
