#include "msd/host/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <ostream>

namespace msd::host {

namespace {
constexpr double kRedrawSeconds = 0.1;  // terminal redraws: smooth, yet cheap next to a training step
constexpr int kBarWidth = 20;
}  // namespace

ProgressReporter::ProgressReporter(std::ostream& out, bool interactive, double interval)
    : out_(out), interactive_(interactive), interval_(interval) {}

bool ProgressReporter::stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }

void ProgressReporter::update(const std::string& what, std::int64_t step, std::int64_t total, double loss) {
  const auto now = std::chrono::steady_clock::now();
  if (what != task_) {
    finish();
    task_ = what;
    task_start_ = now;
    last_print_ = now;
    first_step_ = step;
  }
  last_step_ = step;
  last_total_ = total;
  last_loss_ = loss;
  printed_last_ = false;
  const double wait = interactive_ ? kRedrawSeconds : interval_;
  if (std::chrono::duration<double>(now - last_print_).count() >= wait || step == total) {
    print(step, total, loss);
    last_print_ = now;
  }
}

void ProgressReporter::finish() {
  if (!task_.empty() && !printed_last_) print(last_step_, last_total_, last_loss_);
  if (!task_.empty() && interactive_) out_ << std::endl;  // keep the finished bar, start a new line
  task_.clear();
}

void ProgressReporter::print(std::int64_t step, std::int64_t total, double loss) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - task_start_).count();
  // Counted from the task's first report, so that a resumed stage shows its own speed.
  const double rate = elapsed > 0 ? static_cast<double>(step - first_step_) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total - step) / rate : 0.0;
  const int percent = total > 0 ? static_cast<int>(100 * step / total) : 100;
  std::string bar;
  if (interactive_) {
    const int filled = total > 0 ? static_cast<int>(kBarWidth * step / total) : kBarWidth;
    bar = "[" + std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(kBarWidth - filled), '-') + "] ";
  }
  // Slow steps (a large network on a CPU) read better as seconds per iteration than as "0 it/s".
  char speed[32];
  if (rate >= 10.0 || rate <= 0.0) std::snprintf(speed, sizeof(speed), "%7.0f it/s", rate);
  else if (rate >= 1.0) std::snprintf(speed, sizeof(speed), "%7.1f it/s", rate);
  else std::snprintf(speed, sizeof(speed), "%7.1f s/it", 1.0 / rate);
  char line[320];
  std::snprintf(line, sizeof(line), "  %-28s %s%7lld/%-7lld %3d%%  %s  ETA %4.0fs  loss %.5g", task_.c_str(),
                bar.c_str(), static_cast<long long>(step), static_cast<long long>(total), percent, speed, eta, loss);
  if (interactive_) {
    out_ << "\r" << line << "\033[K" << std::flush;  // \033[K clears what a longer earlier line left
  } else {
    out_ << line << std::endl;
  }
  printed_last_ = true;
}

}  // namespace msd::host
