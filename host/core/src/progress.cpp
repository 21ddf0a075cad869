#include "msd/host/progress.h"

#include <cmath>
#include <cstdio>
#include <ostream>

namespace msd::host {

ProgressReporter::ProgressReporter(std::ostream& out, double interval) : out_(out), interval_(interval) {}

void ProgressReporter::update(const std::string& what, std::int64_t step, std::int64_t total, double loss) {
  const auto now = std::chrono::steady_clock::now();
  if (what != task_) {
    finish();
    task_ = what;
    task_start_ = now;
    last_print_ = now;
  }
  last_step_ = step;
  last_total_ = total;
  last_loss_ = loss;
  printed_last_ = false;
  if (std::chrono::duration<double>(now - last_print_).count() >= interval_ || step == total) {
    print(step, total, loss);
    last_print_ = now;
  }
}

void ProgressReporter::finish() {
  if (!task_.empty() && !printed_last_) print(last_step_, last_total_, last_loss_);
  task_.clear();
}

void ProgressReporter::print(std::int64_t step, std::int64_t total, double loss) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - task_start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(step) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total - step) / rate : 0.0;
  char line[256];
  std::snprintf(line, sizeof(line), "  %-28s %7lld/%-7lld %3d%%  %7.0f it/s  ETA %4.0fs  loss %.5g", task_.c_str(),
                static_cast<long long>(step), static_cast<long long>(total),
                total > 0 ? static_cast<int>(100 * step / total) : 100, rate, eta, loss);
  out_ << line << std::endl;
  printed_last_ = true;
}

}  // namespace msd::host
