// `msd sample RUN`: draws samples from what a finished run produced (its student ensemble or its
// teacher) or from its dataset, and writes them as NumPy files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "msd/host/plugin_registry.h"
#include "msd/results/store.h"

namespace msd::host {

/// The most samples one `msd sample` draws: larger sets are drawn in parts (other --seed values).
constexpr std::int64_t kMaxSampleCount = std::int64_t{1} << 24;

struct SampleRequest {
  std::int64_t run_id = 0;
  std::int64_t n = 1000;                ///< number of samples; labels cycle through the classes
  std::filesystem::path out;            ///< samples .npy; labels go to <stem>_labels.npy beside it
  std::string from = "students";        ///< "students", "teacher" or "data"
  std::int64_t seed = 0;
  std::string device = "cpu";
};

/// Writes the files and returns a one-line description of what was written. Throws std::runtime_error
/// saying what is missing (no such run, run not finished, checkpoint gone, run has no students).
std::string sample_run(const SampleRequest& request, const PluginRegistry& registry, const results::Store& store);

/// Path of the labels file that goes with a samples file: "x.npy" -> "x_labels.npy".
std::filesystem::path labels_path_for(const std::filesystem::path& samples);

}  // namespace msd::host
