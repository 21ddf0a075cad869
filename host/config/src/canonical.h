// The canonical form of a resolved run: every section and every key with defaults filled, in a fixed
// order, so that equal configs give equal text whatever the file looked like. Its hash identifies the
// run; the text is stored with it.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "msd/host/config.h"

namespace msd::host::config_detail {

/// One table of the resolved config with all of its keys.
struct CanonicalSection {
  std::string name;                     ///< schema name: "experiment", "stage.loss", ...
  bool array = false;                   ///< written [[name]]
  std::string path;                     ///< dotted prefix of its keys in params: "stage.0.loss.1"
  std::map<std::string, Value> values;  ///< every key, sorted
  std::set<std::string> sampling_only;  ///< keys left out of the teacher hash (KeySpec::sampling_only)
};

/// Fills run.canonical_toml, run.hash, run.teacher_hash, run.pairs_hash and run.params from the sections, which come
/// in canonical order (experiment, dataset, teacher, student, partition, distill, budget, each stage
/// followed by its losses, evaluate, its metrics).
void write_canonical(const std::vector<CanonicalSection>& sections, RunConfig& run);

}  // namespace msd::host::config_detail
