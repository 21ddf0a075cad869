// `msd sweep --jobs N`: N worker processes work through one sweep against one results database.
// Each worker walks the sweep's runs in order and claims each in the store (Store::claim_run) before
// running it, so a run is done once however many workers there are, and a later `msd sweep` (after a
// crash, a kill -9, a Ctrl-C) resumes what they left. The supervisor only starts them and watches.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

namespace msd::host {

struct WorkerPoolOptions {
  std::vector<std::string> command;       ///< a worker's command line; "--worker W" is appended
  int jobs = 2;                           ///< worker processes
  std::filesystem::path database;         ///< the results database the workers share
  std::filesystem::path log_folder;       ///< worker W writes worker-W.log here
  std::string sweep_id;                   ///< the sweep being run
  std::vector<std::string> config_hashes; ///< its runs, to count the finished ones
  std::int64_t after_id = 0;              ///< runs with ids up to this one do not count (--force)
};

/// Starts the workers and shows the sweep's progress (runs finished of total and each worker's latest
/// line) until every worker has exited. SIGINT/SIGTERM to the supervisor are passed on to the workers;
/// workers stop by themselves (SIGTERM) if the supervisor dies. Returns true if every worker exited 0.
bool run_worker_pool(const WorkerPoolOptions& options, std::ostream& out);

}  // namespace msd::host
