// Fuzz target: the [sweep] part of an experiment file (variants, grid, zip, seeds), appended to a
// valid file and expanded into runs.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_catalog.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string sweep(reinterpret_cast<const char*>(data), size);
  try {
    msd::fuzz::resolve(msd::host::ExperimentFile::parse(std::string(msd::fuzz::kBaseExperiment) + "\n" + sweep,
                                                        "sweep.toml"));
  } catch (const msd::host::ConfigError&) {
  }
  return 0;
}
