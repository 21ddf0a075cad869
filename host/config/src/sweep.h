// The [sweep] section: which runs one experiment file makes. Grid and zipped axes will join
// variants here; until then any other key in [sweep] is an error.
#pragma once

#include <string>
#include <vector>

#include "config_tree.h"

namespace msd::host::config_detail {

/// One run of the sweep: its name and the overrides that make it from the file.
struct Variant {
  std::string name;
  std::vector<Override> overrides;  ///< flattened, in file order
};

/// Reads the [[sweep.variant]] tables of `sweep` in file order. Reports malformed entries (a missing or
/// duplicate name, an unknown key of [sweep]) and still returns every variant it could read, so that
/// their overrides are validated too. Empty when the file declares no variants.
std::vector<Variant> read_variants(const ConfigNode& sweep, std::vector<ConfigIssue>& issues);

}  // namespace msd::host::config_detail
