// The host's half of the experiment-file schema: which sections exist, which keys the host itself
// reads in each, with types, defaults and bounds. Plugin sections add the keys their plugin declares.
// The validator reads these tables, and `msd` prints them as the TOML reference, so the two never
// disagree.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "msd/plugin.h"

namespace msd::host {

/// When a section must be written.
enum class Presence {
  optional,            ///< defaults apply when absent
  required,            ///< always (for an array: at least one entry)
  required_to_distill  ///< when distill.enabled is true (the teacher-only baseline needs none)
};

/// One section of an experiment file.
struct SectionSchema {
  std::string name;                       ///< dotted TOML name: "experiment", "stage.loss", ...
  bool array = false;                     ///< written [[name]]: an array of tables
  Presence presence = Presence::optional;
  std::optional<PluginKind> plugin_kind;  ///< the section names a plugin of this kind and accepts its keys
  std::string doc;                        ///< what the section is for
  std::vector<KeySpec> keys;              ///< the keys the host reads (for plugin sections: `plugin` and extras)
};

/// Every section, in the order of the canonical config (sub-arrays right after their parent).
const std::vector<SectionSchema>& host_schema();

/// The section called `name` ("stage.loss"); nullptr when there is none.
const SectionSchema* find_section_schema(const std::string& name);

}  // namespace msd::host
