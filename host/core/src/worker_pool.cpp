#include "msd/host/worker_pool.h"

#include <chrono>
#include <signal.h>
#include <fstream>
#include <map>
#include <ostream>
#include <set>
#include <stdexcept>
#include <thread>

#include "msd/host/child_process.h"
#include "msd/host/progress.h"
#include "msd/host/runner.h"
#include "msd/results/store.h"

namespace msd::host {

namespace {

struct SweepCounts {
  std::size_t finished = 0, running = 0, failed = 0;
  bool operator!=(const SweepCounts& o) const {
    return finished != o.finished || running != o.running || failed != o.failed;
  }
};

/// How many of the sweep's configs have a finished (running, failed) run since `after_id`.
SweepCounts count_runs(const WorkerPoolOptions& options) {
  const results::Store store(options.database.string(), results::Store::Mode::read_only);
  using results::RunStatus;
  const std::set<std::string> wanted(options.config_hashes.begin(), options.config_hashes.end());
  std::map<std::string, std::set<RunStatus>> statuses;
  for (const auto& [hash, status] : store.sweep_statuses(options.sweep_id, options.after_id)) {
    if (wanted.count(hash) != 0) statuses[hash].insert(status);
  }
  SweepCounts counts;
  for (const auto& [hash, seen] : statuses) {
    if (seen.count(RunStatus::finished) != 0) ++counts.finished;
    else if (seen.count(RunStatus::running) != 0) ++counts.running;
    else if (seen.count(RunStatus::failed) != 0) ++counts.failed;
  }
  return counts;
}

}  // namespace

bool run_worker_pool(const WorkerPoolOptions& options, std::ostream& out) {
  std::filesystem::create_directories(options.log_folder);
  const std::size_t total = options.config_hashes.size();
  std::vector<pid_t> workers;
  std::vector<std::filesystem::path> logs;
  for (int w = 0; w < options.jobs; ++w) {
    std::vector<std::string> command = options.command;
    command.push_back("--worker");
    command.push_back(std::to_string(w));
    logs.push_back(options.log_folder / ("worker-" + std::to_string(w) + ".log"));
    std::ofstream(logs.back(), std::ios::app) << "== msd sweep worker " << w << " of " << options.jobs << "\n";
    workers.push_back(start_child(command, logs.back()));
  }
  out << "sweep " << options.sweep_id << ": " << total << " runs, " << options.jobs << " workers (logs: "
      << options.log_folder.string() << "/worker-*.log)\n";

  const bool interactive = ProgressReporter::stdout_is_terminal();
  std::vector<int> exit_status(workers.size(), -1);
  std::size_t alive = workers.size();
  bool stop_passed_on = false;
  SweepCounts shown{~std::size_t{0}, 0, 0};
  LiveBlock block(out);
  while (alive > 0) {
    for (std::size_t w = 0; w < workers.size(); ++w) {
      if (exit_status[w] == -1 && child_exited(workers[w], exit_status[w])) {
        --alive;
        if (!interactive) out << "worker " << w << " exited with status " << exit_status[w] << "\n";
      }
    }
    if (g_stop_requested && !stop_passed_on) {
      block.clear();
      out << "stopping the workers (each records its run as interrupted; run the same command to resume)\n";
      for (std::size_t w = 0; w < workers.size(); ++w) {
        if (exit_status[w] == -1) kill(workers[w], SIGTERM);
      }
      stop_passed_on = true;
    }
    const SweepCounts counts = count_runs(options);
    const std::string summary = "sweep " + options.sweep_id + ": " + std::to_string(counts.finished) + "/" +
                                std::to_string(total) + " runs finished, " + std::to_string(counts.running) +
                                " running" + (counts.failed > 0 ? ", " + std::to_string(counts.failed) + " failed" : "");
    if (interactive) {
      // The summary, then each worker's latest progress line.
      std::vector<std::string> lines{summary};
      for (std::size_t w = 0; w < workers.size(); ++w) {
        lines.push_back("  worker " + std::to_string(w) + ": " +
                        (exit_status[w] == -1 ? last_line(logs[w]) : "exited (" + std::to_string(exit_status[w]) + ")"));
      }
      block.draw(lines);
    } else if (counts != shown) {
      out << summary << "\n";
      out.flush();
    }
    shown = counts;
    if (alive > 0) std::this_thread::sleep_for(std::chrono::milliseconds(interactive ? 500 : 1000));
  }
  bool all_ok = true;
  for (std::size_t w = 0; w < workers.size(); ++w) {
    if (exit_status[w] != 0) {
      all_ok = false;
      out << "worker " << w << " exited with status " << exit_status[w] << "; see " << logs[w].string() << "\n";
    }
  }
  return all_ok;
}

}  // namespace msd::host
