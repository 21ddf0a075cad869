#pragma once
// Files that are written whole or not at all: checkpoints and cache entries that a run killed midway,
// or a disk that fills up, must never leave half-written behind, where the next run would load them.

#include <filesystem>
#include <string>

namespace msd {

/// Writes `bytes` to `file` (creating its folder): into a temporary file beside it, flushed to disk,
/// then renamed over `file`, so `file` holds the old content or the new one, never part of it. When a
/// write fails (a full disk, a read-only folder) the temporary file is removed and std::runtime_error
/// names `file` and the reason.
///
/// LibTorch writes the same way only from memory: its file writer aborts the process when a write
/// fails, so serialize to a std::ostringstream first (torch::save(net, stream), archive.save_to(stream)).
void write_file_atomically(const std::filesystem::path& file, const std::string& bytes);

}  // namespace msd
