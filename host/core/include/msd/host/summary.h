// The side-by-side table `msd run` prints when an experiment's runs end.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "msd/host/config.h"
#include "msd/host/plugin_catalog.h"
#include "msd/results/store.h"

namespace msd::host {

/// The metric columns of the summary: those the runs' metric plugins declare (PluginInfo::metric), in
/// the order the runs name the plugins, each once. A new metric plugin shows up by declaring its own.
std::vector<SummaryColumn> summary_columns(const PluginCatalog& catalog, const std::vector<RunConfig>& runs);

/// One row per run: id, name, status, K, then each of `columns` that some run has (its final
/// whole-model value), then the training compute.
std::string format_run_summary(const results::Store& store, const std::vector<std::int64_t>& run_ids,
                               const std::vector<SummaryColumn>& columns);

}  // namespace msd::host
