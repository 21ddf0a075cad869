// Stopping a run cleanly. The command line installs SIGINT/SIGTERM handlers once (src/cli); they
// set g_stop_requested, and the run's loops check it at their next iteration or network evaluation.
#pragma once

#include <atomic>
#include <stdexcept>

namespace msd::host {

/// Set by the SIGINT/SIGTERM handlers: training loops stop at the next iteration and the run is
/// recorded as interrupted.
extern std::atomic<bool> g_stop_requested;

/// What check_stop() throws: the run is recorded as interrupted, not failed.
struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted by a signal") {}
};

/// Throws Interrupted when a stop was requested.
inline void check_stop() {
  if (g_stop_requested.load()) throw Interrupted();
}

}  // namespace msd::host
