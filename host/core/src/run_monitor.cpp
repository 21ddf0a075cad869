#include "msd/host/run_monitor.h"

#include <cmath>
#include <sstream>

#include "msd/host/stop.h"

namespace msd::host {

std::string number_text(double value) {
  if (std::isnan(value)) return "nan";
  std::ostringstream text;
  text << value;
  return text.str();
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

RunMonitor::RunMonitor(results::Store& store, std::int64_t run_id, ProgressReporter& progress)
    : store_(store), run_id_(run_id), progress_(progress) {}

void RunMonitor::progress(const std::string& what, std::int64_t step, std::int64_t total, double loss) {
  if (!std::isfinite(loss)) {
    throw std::runtime_error(what + ", step " + std::to_string(step) + " of " + std::to_string(total) +
                             ": the training loss is " + number_text(loss) +
                             ", so the weights are lost to it; lower the learning rate of this phase");
  }
  progress_.update(what, step, total, loss);
  check_stop();
  if (seconds_since(last_heartbeat_) > 30.0) {
    store_.heartbeat(run_id_);
    last_heartbeat_ = std::chrono::steady_clock::now();
  }
}

void RunMonitor::metric(const std::string& name, std::int64_t step, double value, const std::string& scope) {
  pending_.push_back({name, step, value, scope});
  if (pending_.size() >= 256) flush();
}

void RunMonitor::flush() {
  if (!pending_.empty()) store_.log_metrics(run_id_, pending_);
  pending_.clear();
}

}  // namespace msd::host
