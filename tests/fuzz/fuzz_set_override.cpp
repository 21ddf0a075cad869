// Fuzz target: --set overrides, one per line of the input, applied to a valid experiment file.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "fuzz_catalog.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::istringstream lines(std::string(reinterpret_cast<const char*>(data), size));
  msd::host::ExperimentFile file = msd::host::ExperimentFile::parse(msd::fuzz::kBaseExperiment, "base.toml");
  try {
    for (std::string line; std::getline(lines, line);) file.set_override(line);
    file.plugin_paths();
    msd::fuzz::resolve(file);
  } catch (const msd::host::ConfigError&) {
  }
  return 0;
}
