// Fuzz target: an experiment file, parsed and validated (msd validate without plugins loaded).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_catalog.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    msd::fuzz::resolve(msd::host::ExperimentFile::parse(text, "fuzz.toml"));
  } catch (const msd::host::ConfigError&) {
  }
  return 0;
}
