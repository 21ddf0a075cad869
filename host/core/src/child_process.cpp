#include "msd/host/child_process.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <iterator>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "msd/host/runner.h"

namespace msd::host {

pid_t start_child(const std::vector<std::string>& command, const std::filesystem::path& log) {
  std::vector<char*> argv;
  for (const std::string& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("cannot start " + command.front() + ": fork failed");
  if (pid == 0) {
    // A child left running after its parent died would hold work nobody watches: stop with it.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

bool child_exited(pid_t pid, int& exit_code) {
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) != pid) return false;
  exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return true;
}

std::vector<ChildExit> supervise_children(const std::vector<ChildJob>& jobs, const Supervision& supervision) {
  using Clock = std::chrono::steady_clock;
  struct Running {
    std::size_t job;
    pid_t pid;
    Clock::time_point start;
  };
  std::vector<Running> running;
  std::vector<ChildExit> exits;
  std::size_t next = 0;
  bool stopping = false;
  while (!running.empty() || (next < jobs.size() && !stopping)) {
    while (!stopping && next < jobs.size() && running.size() < supervision.parallel) {
      running.push_back({next, start_child(jobs[next].command, jobs[next].log), Clock::now()});
      if (supervision.on_start) supervision.on_start(next, running.back().pid);
      ++next;
    }
    bool failed = false;
    for (auto child = running.begin(); child != running.end();) {
      int status = 0;
      if (!child_exited(child->pid, status)) {
        ++child;
        continue;
      }
      exits.push_back({child->job, status, std::chrono::duration<double>(Clock::now() - child->start).count()});
      if (supervision.on_exit) supervision.on_exit(exits.back());
      failed = failed || status != 0;
      child = running.erase(child);
    }
    if (!stopping && (g_stop_requested.load() || (failed && supervision.stop_on_failure))) {
      stopping = true;
      if (supervision.on_stopping) supervision.on_stopping();
      for (const Running& child : running) kill(child.pid, SIGTERM);
    }
    if (running.empty()) continue;
    std::vector<std::size_t> now;
    for (const Running& child : running) now.push_back(child.job);
    if (supervision.on_tick) supervision.on_tick(now);
    std::this_thread::sleep_for(supervision.tick);
  }
  return exits;
}

std::string last_line(const std::filesystem::path& log, std::size_t width) {
  std::ifstream in(log, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  const std::streamoff from = size > 4096 ? size - 4096 : 0;
  in.seekg(from);
  std::string tail((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string line, last;
  std::istringstream lines(tail);
  while (std::getline(lines, line)) {
    if (const std::size_t cr = line.find_last_of('\r'); cr != std::string::npos) line = line.substr(cr + 1);
    if (!line.empty()) last = line;
  }
  return last.size() > width && width > 3 ? last.substr(0, width - 3) + "..." : last;
}

void LiveBlock::draw(const std::vector<std::string>& lines) {
  if (drawn_ > 0) out_ << "\033[" << drawn_ << "A";
  for (const std::string& line : lines) out_ << "\r\033[K" << line << "\n";
  // A shorter block than the last leaves its old bottom lines: erase them.
  if (lines.size() < drawn_) out_ << "\033[J";
  drawn_ = lines.size();
  out_.flush();
}

void LiveBlock::clear() {
  if (drawn_ > 0) out_ << "\033[" << drawn_ << "A\r\033[J";
  drawn_ = 0;
  out_.flush();
}

}  // namespace msd::host
