#include "sweep.h"

#include <algorithm>
#include <map>

#include "msd/host/schema.h"
#include "validator.h"

namespace msd::host::config_detail {

std::vector<Variant> read_variants(const ConfigNode& sweep, std::vector<ConfigIssue>& issues) {
  if (!sweep.is_table()) {
    issues.push_back({sweep.where, "sweep", "[sweep] must be a table, got " + sweep.type_name() + " " + sweep.text()});
    return {};
  }
  for (const ConfigEntry& entry : sweep.entries) {
    if (entry.key == "variant") continue;
    std::string message = "unknown key '" + entry.key + "' in [sweep]";
    message += closest_match(entry.key, {"variant"}) ? "; did you mean 'variant'?"
                                                      : "; [sweep] holds only [[sweep.variant]] tables";
    issues.push_back({entry.value.where, "sweep." + entry.key, message});
  }
  const ConfigNode* array = sweep.find("variant");
  if (array == nullptr) return {};
  if (!array->is_array()) {
    issues.push_back({array->where, "sweep.variant",
                      "[[sweep.variant]] is an array of tables: write each variant under its own "
                      "[[sweep.variant]] header (got " + array->type_name() + " " + array->text() + ")"});
    return {};
  }

  const KeySpec& name_spec = find_section_schema("sweep.variant")->keys.front();
  std::map<std::string, int> first_line;  // variant name -> line of its first use
  std::vector<Variant> variants;
  for (std::size_t i = 0; i < array->items.size(); ++i) {
    const ConfigNode& item = array->items[i];
    const std::string path = "sweep.variant." + std::to_string(i);
    if (!item.is_table()) {
      issues.push_back({item.where, path, "each [[sweep.variant]] entry must be a table, got " + item.type_name() +
                                              " " + item.text()});
      continue;
    }
    Variant variant;
    if (const ConfigNode* name = item.find("name"); name == nullptr) {
      issues.push_back({item.where, path + ".name",
                        "missing required key 'name' in [[sweep.variant]] (string: " + name_spec.doc + ")"});
    } else if (auto value = check_value(name_spec, *name, path + ".name", issues)) {
      variant.name = std::get<std::string>(*value);
      auto [seen, fresh] = first_line.emplace(variant.name, name->where.line);
      if (!fresh) {
        issues.push_back({name->where, path + ".name",
                          "duplicate variant name '" + variant.name + "' (first used at line " +
                              std::to_string(seen->second) + "); variant names must be unique"});
      }
    }
    for (const ConfigEntry& entry : item.entries) {
      if (entry.key != "name") flatten(entry.key, entry.value, variant.overrides);
    }
    variants.push_back(std::move(variant));
  }
  return variants;
}

}  // namespace msd::host::config_detail
