#include "msd/host/slurm_launcher.h"

#include <sys/wait.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "msd/host/runner.h"

namespace msd::host {

namespace {

namespace fs = std::filesystem;

/// A path as the value of an #SBATCH line. sbatch expands %A, %a, ... in file names, so a literal %
/// is doubled; it splits the line at blanks unless the value is in double quotes.
std::string sbatch_path(const fs::path& path, const std::string& pattern) {
  std::string text;
  for (char c : path.string()) {
    if (c == '"' || c == '\n') {
      throw std::invalid_argument("the path " + path.string() + " cannot be written in an #SBATCH line");
    }
    text += c == '%' ? std::string("%%") : std::string(1, c);
  }
  text += "/" + pattern;
  return text.find_first_of(" \t") == std::string::npos ? text : "\"" + text + "\"";
}

/// "msd-<experiment>", with anything but letters, digits, '.', '_' and '-' replaced: squeue shows it.
std::string job_name(const std::string& experiment) {
  std::string name = "msd-";
  for (char c : experiment) name += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ? c : '_';
  return name;
}

std::string sbatch_line(const std::string& option) {
  if (option.empty() || option[0] != '-' || option.find('\n') != std::string::npos) {
    throw std::invalid_argument("--slurm-option '" + option +
                                "': give one sbatch option, starting with '-' (e.g. --slurm-option=--partition=gpu)");
  }
  return "#SBATCH " + option + "\n";
}

fs::path running_executable() {
  std::error_code error;
  const fs::path self = fs::read_symlink("/proc/self/exe", error);
  if (error) throw std::runtime_error("cannot find the msd binary through /proc/self/exe: " + error.message());
  return self;
}

/// Runs `command` through the shell; returns its exit status and what it wrote to stdout and stderr.
std::pair<int, std::string> run_shell(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
  char buffer[256];
  while (fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  const int status = pclose(pipe);
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r')) output.pop_back();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), output};
}

/// Submits `script`; returns the job id.
std::string submit(const fs::path& script) {
  const auto [status, output] = run_shell("sbatch --parsable " + shell_quote(script.string()));
  if (status == 127) {
    throw std::runtime_error("sbatch not found: this is not a Slurm submit host (on this machine, as root: "
                             "scripts/slurm_local.sh start), or submit " + script.string() + " from one");
  }
  if (status != 0) {
    throw std::runtime_error("sbatch " + script.string() + " failed (exit " + std::to_string(status) + "): " + output);
  }
  // --parsable prints "JOBID" or "JOBID;CLUSTER", possibly after warnings.
  const std::string last_line = output.substr(output.find_last_of('\n') + 1);
  return last_line.substr(0, last_line.find(';'));
}

}  // namespace

SlurmLayout::SlurmLayout(const fs::path& database, const std::string& sweep_id)
    : folder(database_folder(database, "shards") / sweep_id),
      script(folder / "sweep.sbatch"),
      logs(folder / "logs") {}

fs::path SlurmLayout::shard(std::size_t index) const {
  return folder / ("shard-" + std::to_string(index)) / "results.db";
}

std::string SlurmLayout::shard_glob() const { return shell_quote(folder.string()) + "/shard-*/results.db"; }

std::string shell_quote(const std::string& word) {
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::string sbatch_script(const std::vector<RunConfig>& runs, const SlurmSweep& sweep, const SlurmOptions& options,
                          const fs::path& msd_binary) {
  if (runs.empty()) throw std::invalid_argument(sweep.experiment_file.string() + ": the sweep has no runs");
  if (options.max_parallel < 0) {
    throw std::invalid_argument("--slurm-max-parallel " + std::to_string(options.max_parallel) + ": give 0 (no limit) or more");
  }
  const RunConfig& first = runs.front();
  const SlurmLayout layout(sweep.database, first.sweep_id);
  const fs::path database = fs::absolute(sweep.database);
  const fs::path cache = fs::absolute(sweep.cache.empty() ? database.parent_path() / "cache" : sweep.cache);

  std::ostringstream text;
  text << "#!/bin/bash\n"
       << "# msd sweep " << fs::absolute(sweep.experiment_file).string() << " as a Slurm job array: task i runs\n"
       << "# sweep index i of " << first.experiment << " (sweep " << first.sweep_id << ", " << runs.size()
       << (runs.size() == 1 ? " run" : " runs") << ") into its own database,\n"
       << "#   " << layout.folder.string() << "/shard-<i>/results.db\n"
       << "# because SQLite must not be shared over NFS. Written by `msd sweep --launcher slurm`. After the job:\n"
       << "#   " << msd_binary.string() << " results merge " << database.string() << " " << layout.shard_glob() << "\n"
       << "#SBATCH --job-name=" << job_name(first.experiment) << "\n"
       << "#SBATCH --array=0-" << runs.size() - 1;
  if (options.max_parallel > 0) text << "%" << options.max_parallel;
  text << "\n"
       << "#SBATCH --output=" << sbatch_path(layout.logs, "%A_%a.out") << "\n"
       << "#SBATCH --error=" << sbatch_path(layout.logs, "%A_%a.err") << "\n";
  for (const std::string& option : options.sbatch_options) text << sbatch_line(option);

  text << "set -euo pipefail\n"
       << "exec " << shell_quote(msd_binary.string());
  for (const std::string& folder : sweep.plugin_folders) text << " --plugin-path " << shell_quote(folder);
  text << " sweep " << shell_quote(fs::absolute(sweep.experiment_file).string())
       << " --index \"$SLURM_ARRAY_TASK_ID\""
       << " --db " << shell_quote(layout.folder.string()) << "/shard-\"$SLURM_ARRAY_TASK_ID\"/results.db"
       << " --cache " << shell_quote(cache.string());
  if (!sweep.device.empty()) text << " --device " << shell_quote(sweep.device);
  if (sweep.force) text << " --force";
  if (sweep.student_jobs > 1) text << " --student-jobs " << sweep.student_jobs;
  for (const std::string& set : sweep.sets) text << " --set " << shell_quote(set);
  text << "\n";
  return text.str();
}

int launch_sweep_on_slurm(const std::vector<RunConfig>& runs, const SlurmSweep& sweep, const SlurmOptions& options,
                          std::ostream& out) {
  const fs::path msd_binary = running_executable();
  const std::string script_text = sbatch_script(runs, sweep, options, msd_binary);
  const SlurmLayout layout(sweep.database, runs.front().sweep_id);
  // sbatch does not create the folder of --output; a task whose log cannot be opened fails at once.
  fs::create_directories(layout.logs);
  {
    std::ofstream file(layout.script);
    file << script_text;
    if (!file.flush()) throw std::runtime_error("cannot write " + layout.script.string());
  }
  fs::permissions(layout.script, fs::perms::owner_exec, fs::perm_options::add);

  const std::string merge = shell_quote(msd_binary.string()) + " results merge " +
                            shell_quote(fs::absolute(sweep.database).string()) + " " + layout.shard_glob();
  out << runs.front().experiment << " (sweep " << runs.front().sweep_id << "): wrote " << layout.script.string()
      << ", a job array of " << runs.size() << (runs.size() == 1 ? " task" : " tasks") << "\n";
  if (!options.submit) {
    out << "submit it with:\n  sbatch " << shell_quote(layout.script.string()) << "\n"
        << "then, when its tasks have run (again at any time: merging is idempotent):\n  " << merge << "\n";
    return 0;
  }
  const std::string job = submit(layout.script);
  out << "submitted job " << job << "; follow it with: squeue -j " << job << "\n"
      << "task logs: " << layout.logs.string() << "/" << job << "_<task>.out\n"
      << "when its tasks have run (again at any time: merging is idempotent):\n  " << merge << "\n";
  return 0;
}

}  // namespace msd::host
