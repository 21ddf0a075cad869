// Progress of long work as plain lines: "teacher  1200/4000  30%  850 it/s  ETA 3s  loss 0.0123".
// Throttled so that a log (CI, a terminal, a file) gets a line every few seconds, not every step.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace msd::host {

class ProgressReporter {
 public:
  /// `interval`: minimum seconds between two lines of the same task.
  explicit ProgressReporter(std::ostream& out, double interval = 2.0);
  /// A task (`what`) reached `step` of `total`; prints when the interval has passed or the task ended.
  void update(const std::string& what, std::int64_t step, std::int64_t total, double loss);
  /// Ends the current task's line (prints its final state if not printed yet).
  void finish();

 private:
  void print(std::int64_t step, std::int64_t total, double loss);

  std::ostream& out_;
  double interval_;
  std::string task_;
  std::chrono::steady_clock::time_point task_start_{}, last_print_{};
  std::int64_t last_step_ = 0, last_total_ = 0;
  double last_loss_ = 0.0;
  bool printed_last_ = true;
};

}  // namespace msd::host
