// How a run's plugins and training loops report back: progress lines on the console, curve points
// and heartbeats into the results store. Free of LibTorch.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "msd/host/progress.h"
#include "msd/monitor.h"
#include "msd/results/store.h"

namespace msd::host {

/// The Monitor a run hands to its plugins. Curve points are buffered and written in batches; a
/// progress report also checks for a stop request and keeps the run's heartbeat.
class RunMonitor final : public Monitor {
 public:
  RunMonitor(results::Store& store, std::int64_t run_id, ProgressReporter& progress);
  /// Throws when `loss` is not finite (the weights it trains are lost) and Interrupted on a stop request.
  void progress(const std::string& what, std::int64_t step, std::int64_t total, double loss) override;
  void metric(const std::string& name, std::int64_t step, double value, const std::string& scope) override;
  /// Writes the buffered curve points to the store.
  void flush();
  /// Ends the current progress line.
  void finish_line() { progress_.finish(); }

 private:
  results::Store& store_;
  std::int64_t run_id_;
  ProgressReporter& progress_;
  std::vector<results::MetricRow> pending_;
  std::chrono::steady_clock::time_point last_heartbeat_ = std::chrono::steady_clock::now();
};

/// `value` as streams print it, but "nan" whatever its sign bit (streams print "-nan").
std::string number_text(double value);

/// Seconds since `start` on the steady clock.
double seconds_since(std::chrono::steady_clock::time_point start);

}  // namespace msd::host
