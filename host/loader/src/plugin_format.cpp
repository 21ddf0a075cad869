// Text for `msd plugins list` and `msd plugins show`.
#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "msd/host/plugin_registry.h"

namespace msd::host {

namespace {

using Row = std::vector<std::string>;

/// Left-aligned columns two spaces apart; the last column is not padded so lines carry no trailing
/// blanks (it holds the long, free-form text: a file path or a doc line).
std::string format_table(const std::vector<Row>& rows, const std::string& indent) {
  std::vector<size_t> widths;
  for (const Row& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out;
  for (const Row& row : rows) {
    std::string line = indent;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(widths[c] - row[c].size() + 2, ' ');
    }
    out += line.substr(0, line.find_last_not_of(' ') + 1) + "\n";
  }
  return out;
}

std::string number(double value) {
  std::ostringstream os;
  os << value;
  return os.str();
}

/// What a key accepts beyond its type: "[0, 1]", ">= 1", `one of "a", "b"`; empty when anything goes.
std::string allowed_values(const KeySpec& key) {
  std::string out;
  if (key.min && key.max) {
    out = "[" + number(*key.min) + ", " + number(*key.max) + "]";
  } else if (key.min) {
    out = ">= " + number(*key.min);
  } else if (key.max) {
    out = "<= " + number(*key.max);
  }
  if (!key.choices.empty()) {
    if (!out.empty()) out += "; ";
    out += "one of ";
    for (size_t i = 0; i < key.choices.size(); ++i) out += (i ? ", " : "") + to_toml(Value{key.choices[i]});
  }
  return out;
}

}  // namespace

std::string format_plugin_list(const PluginRegistry& registry) {
  const std::vector<const LoadedPlugin*> plugins = registry.all();
  if (plugins.empty()) {
    return "no plugins loaded; build them, or add the folder that holds them to MSD_PLUGIN_PATH\n";
  }
  std::vector<Row> rows{{"KIND", "NAME", "VERSION", "FILE"}};
  for (const LoadedPlugin* plugin : plugins) {
    const PluginInfo& info = plugin->info;
    rows.push_back({to_string(info.kind), info.name, info.version, plugin->library_path});
  }
  return format_table(rows, "");
}

std::string format_plugin_details(const LoadedPlugin& plugin) {
  const PluginInfo& info = plugin.info;
  std::string out = format_table({{"name:", info.name},
                                  {"kind:", to_string(info.kind)},
                                  {"version:", info.version},
                                  {"file:", plugin.library_path},
                                  {"library:", plugin.library_name},
                                  {"description:", info.description}},
                                 "");
  if (info.keys.empty()) return out + "keys: none\n";
  std::vector<Row> rows{{"NAME", "TYPE", "DEFAULT", "ALLOWED", "DOC"}};
  for (const KeySpec& key : info.keys) {
    const std::string default_text = key.default_value ? to_toml(*key.default_value) : "required";
    rows.push_back({key.name, to_string(key.type), default_text, allowed_values(key), key.sampling_only ? key.doc + " (sampling only: not part of the teacher hash)" : key.doc});
  }
  return out + "keys:\n" + format_table(rows, "  ");
}

}  // namespace msd::host
