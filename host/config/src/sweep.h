// The [sweep] section: which runs one experiment file makes. Variants ([[sweep.variant]]) are the
// outermost axis; [sweep.grid] keys, the [sweep.zip] lists and `seeds` multiply them.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "config_tree.h"

namespace msd::host::config_detail {

/// One run of the sweep: its name and the overrides that make it from the file.
struct Variant {
  std::string name;
  std::vector<Override> overrides;  ///< flattened, in file order
};

/// One value of an axis: the overrides it makes, and the keys that name it in run names (the dotted
/// key, or "seed" for `seeds`) with the override path each one reads its value from.
struct AxisPoint {
  std::vector<Override> overrides;
  std::vector<std::pair<std::string, std::string>> labels;  ///< name in the run name -> override path
};

/// One axis: a [sweep.grid] key, the [sweep.zip] lists together, or `seeds`.
using Axis = std::vector<AxisPoint>;

/// What [sweep] declares.
struct SweepPlan {
  std::vector<Variant> variants;  ///< empty when the file declares none
  std::vector<Axis> axes;         ///< grid keys in file order, then zip, then seeds (innermost)
};

/// Reads [sweep]. Reports malformed entries (a missing or duplicate variant name, an unknown key of
/// [sweep], a grid key without a list, zip lists of different lengths) and still returns everything it
/// could read, so that the overrides are validated too.
SweepPlan read_sweep(const ConfigNode& sweep, std::vector<ConfigIssue>& issues);

}  // namespace msd::host::config_detail
