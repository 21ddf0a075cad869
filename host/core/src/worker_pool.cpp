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
  std::vector<ChildJob> workers;
  for (int w = 0; w < options.jobs; ++w) {
    std::vector<std::string> command = options.command;
    command.push_back("--worker");
    command.push_back(std::to_string(w));
    workers.push_back({command, options.log_folder / ("worker-" + std::to_string(w) + ".log")});
    std::ofstream(workers.back().log, std::ios::app) << "== msd sweep worker " << w << " of " << options.jobs << "\n";
  }
  out << "sweep " << options.sweep_id << ": " << total << " runs, " << options.jobs << " workers (logs: "
      << options.log_folder.string() << "/worker-*.log)\n";

  const bool interactive = ProgressReporter::stdout_is_terminal();
  LiveBlock block(out);
  SweepCounts shown{~std::size_t{0}, 0, 0};
  Supervision supervision;
  supervision.parallel = workers.size();
  supervision.tick = std::chrono::milliseconds(interactive ? 500 : 1000);
  supervision.on_exit = [&](const ChildExit& exit) {
    if (!interactive) out << "worker " << exit.job << " exited with status " << exit.status << "\n";
  };
  supervision.on_stopping = [&] {
    block.clear();
    out << "stopping the workers (each records its run as interrupted; run the same command to resume)\n";
  };
  supervision.on_tick = [&](const std::vector<std::size_t>& running) {
    const SweepCounts counts = count_runs(options);
    const std::string summary = "sweep " + options.sweep_id + ": " + std::to_string(counts.finished) + "/" +
                                std::to_string(total) + " runs finished, " + std::to_string(counts.running) +
                                " running" + (counts.failed > 0 ? ", " + std::to_string(counts.failed) + " failed" : "");
    if (interactive) {
      // The summary, then each running worker's latest progress line.
      std::vector<std::string> lines{summary};
      for (const std::size_t w : running) lines.push_back("  worker " + std::to_string(w) + ": " + last_line(workers[w].log));
      block.draw(lines);
    } else if (counts != shown) {
      out << summary << "\n";
      out.flush();
    }
    shown = counts;
  };
  bool all_ok = true;
  for (const ChildExit& exit : supervise_children(workers, supervision)) {
    if (exit.status == 0) continue;
    all_ok = false;
    out << "worker " << exit.job << " exited with status " << exit.status << "; see " << workers[exit.job].log.string() << "\n";
  }
  return all_ok;
}

}  // namespace msd::host
