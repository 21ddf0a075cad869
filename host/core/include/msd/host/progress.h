// Progress of long work. On a terminal, one line per task redrawn in place with a bar:
//   teacher  [#########-----------]  1800/4000  45%  850 it/s  ETA 3s  loss 0.0123
// Elsewhere (CI logs, files), plain lines throttled to one every few seconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace msd::host {

class ProgressReporter {
 public:
  /// `interactive`: redraw in place (a terminal); otherwise print throttled lines.
  /// `interval`: minimum seconds between two plain lines of the same task.
  ProgressReporter(std::ostream& out, bool interactive, double interval = 2.0);
  /// A task (`what`) reached `step` of `total`.
  void update(const std::string& what, std::int64_t step, std::int64_t total, double loss);
  /// Ends the current task's line (prints its final state if not printed yet).
  void finish();

  /// Whether standard output is a terminal (for `interactive`).
  static bool stdout_is_terminal();

 private:
  void print(std::int64_t step, std::int64_t total, double loss);

  std::ostream& out_;
  bool interactive_;
  double interval_;
  std::string task_;
  std::chrono::steady_clock::time_point task_start_{}, last_print_{};
  std::int64_t first_step_ = 0;  // the step of the task's first report (not 0 when resumed)
  std::int64_t last_step_ = 0, last_total_ = 0;
  double last_loss_ = 0.0;
  bool printed_last_ = true;
};

}  // namespace msd::host
