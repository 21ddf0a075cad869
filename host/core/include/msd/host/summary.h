// The side-by-side table `msd run` prints when an experiment's runs end.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "msd/results/store.h"

namespace msd::host {

/// One row per run: name, model, K, NFE, quality metrics, latency, parameters and training compute.
std::string format_run_summary(const results::Store& store, const std::vector<std::int64_t>& run_ids);

}  // namespace msd::host
