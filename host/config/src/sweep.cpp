#include "sweep.h"

#include <algorithm>
#include <map>
#include <set>

#include "msd/host/schema.h"
#include "validator.h"

namespace msd::host::config_detail {
namespace {

const std::vector<std::string> kSweepKeys = {"variant", "grid", "zip", "seeds"};

std::vector<Variant> read_variants(const ConfigNode& sweep, std::vector<ConfigIssue>& issues) {
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

/// A list of the values one key takes; reports (and returns nullptr for) anything else.
const ConfigNode* value_list(const ConfigNode& node, const std::string& key, const std::string& where_name,
                             std::vector<ConfigIssue>& issues, bool unique = true) {
  if (!node.is_array()) {
    issues.push_back({node.where, key, where_name + " gives each key a list of values, e.g. [1, 2, 4]; got " +
                                           node.type_name() + " " + node.text()});
    return nullptr;
  }
  if (node.items.empty()) {
    issues.push_back({node.where, key, where_name + " lists no values; give at least one"});
    return nullptr;
  }
  std::set<std::string> seen;
  for (const ConfigNode& item : node.items) {
    if (!unique) break;
    if (!seen.insert(item.text()).second) {
      issues.push_back({item.where, key, where_name + " lists " + item.text() +
                                             " twice; each value makes runs, so it must appear once"});
      return nullptr;
    }
  }
  return &node;
}

/// The keys of a [sweep.grid] or [sweep.zip] table with their lists, in file order. A quoted dotted
/// key ("partition.k") and nested tables (partition = { k = [...] }) name the same key.
void collect_lists(const ConfigNode& table, const std::string& prefix, const std::string& section,
                   std::vector<std::pair<std::string, const ConfigNode*>>& out, std::vector<ConfigIssue>& issues,
                   bool unique) {
  for (const ConfigEntry& entry : table.entries) {
    const std::string key = prefix.empty() ? entry.key : prefix + "." + entry.key;
    if (entry.value.is_table()) {
      collect_lists(entry.value, key, section, out, issues, unique);
    } else if (const ConfigNode* list = value_list(entry.value, key, section, issues, unique)) {
      out.emplace_back(key, list);
    }
  }
}

const ConfigNode* sub_table(const ConfigNode& sweep, const std::string& name, std::vector<ConfigIssue>& issues) {
  const ConfigNode* node = sweep.find(name);
  if (node == nullptr) return nullptr;
  if (!node->is_table()) {
    issues.push_back({node->where, "sweep." + name,
                      "[sweep." + name + "] must be a table of dotted key -> list of values, got " + node->type_name() +
                          " " + node->text()});
    return nullptr;
  }
  return node;
}

std::string first_segment(const std::string& path) { return path.substr(0, path.find('.')); }

bool check_key(const std::string& key, const ConfigNode& list, const std::string& section,
               std::vector<ConfigIssue>& issues) {
  if (first_segment(key) == "sweep") {
    issues.push_back({list.where, key, section + " cannot vary [sweep] itself"});
    return false;
  }
  return true;
}

}  // namespace

SweepPlan read_sweep(const ConfigNode& sweep, std::vector<ConfigIssue>& issues) {
  SweepPlan plan;
  if (!sweep.is_table()) {
    issues.push_back({sweep.where, "sweep", "[sweep] must be a table, got " + sweep.type_name() + " " + sweep.text()});
    return plan;
  }
  for (const ConfigEntry& entry : sweep.entries) {
    if (std::find(kSweepKeys.begin(), kSweepKeys.end(), entry.key) != kSweepKeys.end()) continue;
    std::string message = "unknown key '" + entry.key + "' in [sweep]";
    if (auto close = closest_match(entry.key, kSweepKeys)) {
      message += "; did you mean '" + *close + "'?";
    } else {
      message += "; [sweep] holds [[sweep.variant]], [sweep.grid], [sweep.zip] and seeds";
    }
    issues.push_back({entry.value.where, "sweep." + entry.key, message});
  }
  plan.variants = read_variants(sweep, issues);

  if (const ConfigNode* grid = sub_table(sweep, "grid", issues)) {
    std::vector<std::pair<std::string, const ConfigNode*>> lists;
    collect_lists(*grid, "", "[sweep.grid]", lists, issues, true);
    for (const auto& [key, list] : lists) {
      if (!check_key(key, *list, "[sweep.grid]", issues)) continue;
      Axis axis;
      for (const ConfigNode& item : list->items) {
        AxisPoint point;
        flatten(key, item, point.overrides);
        point.labels.emplace_back(key, key);
        axis.push_back(std::move(point));
      }
      plan.axes.push_back(std::move(axis));
    }
  }

  if (const ConfigNode* zip = sub_table(sweep, "zip", issues)) {
    std::vector<std::pair<std::string, const ConfigNode*>> lists;
    collect_lists(*zip, "", "[sweep.zip]", lists, issues, false);
    bool ok = true;
    for (const auto& [key, list] : lists) ok = check_key(key, *list, "[sweep.zip]", issues) && ok;
    const bool equal = std::all_of(lists.begin(), lists.end(), [&](const auto& entry) {
      return entry.second->items.size() == lists.front().second->items.size();
    });
    if (!equal) {
      std::string lengths;
      for (const auto& [key, list] : lists) {
        lengths += (lengths.empty() ? "" : ", ") + key + " has " + std::to_string(list->items.size());
      }
      issues.push_back({zip->where, "sweep.zip",
                        "the lists of [sweep.zip] vary together, so they must have equal lengths: " + lengths});
      ok = false;
    }
    if (ok && !lists.empty()) {
      Axis axis(lists.front().second->items.size());
      for (const auto& [key, list] : lists) {
        for (std::size_t i = 0; i < axis.size(); ++i) {
          flatten(key, list->items[i], axis[i].overrides);
          axis[i].labels.emplace_back(key, key);
        }
      }
      plan.axes.push_back(std::move(axis));
    }
  }

  if (const ConfigNode* seeds = sweep.find("seeds")) {
    if (const ConfigNode* list = value_list(*seeds, "sweep.seeds", "seeds", issues)) {
      Axis axis;
      for (const ConfigNode& item : list->items) {
        AxisPoint point;
        flatten("experiment.seed", item, point.overrides);
        point.labels.emplace_back("seed", "experiment.seed");
        axis.push_back(std::move(point));
      }
      plan.axes.push_back(std::move(axis));
    }
  }
  return plan;
}

}  // namespace msd::host::config_detail
