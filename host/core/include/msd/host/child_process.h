// Child processes of msd (sweep workers, student processes): started with their output in a log
// file, watched through that log's last line, and shown as a block of lines redrawn in place.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace msd::host {

/// Starts `command` (argv[0] is the program's path) with stdout and stderr appended to `log`. The
/// child stays in this process group (a Ctrl-C or a kill of the group reaches it) and gets SIGTERM
/// if this process dies. Returns its pid; throws when it cannot start.
pid_t start_child(const std::vector<std::string>& command, const std::filesystem::path& log);

/// Whether child `pid` has exited; if so `exit_code` receives its exit status (128 + signal when a
/// signal ended it). Does not block.
bool child_exited(pid_t pid, int& exit_code);

/// One child process to run: its command line (argv[0] is the program's path) and its log.
struct ChildJob {
  std::vector<std::string> command;
  std::filesystem::path log;
};

/// How a supervised child ended.
struct ChildExit {
  std::size_t job = 0;   ///< index into the jobs
  int status = 0;        ///< exit status; 128 + signal when a signal ended it
  double seconds = 0.0;  ///< how long it ran
};

/// What supervise_children() does besides starting and reaping.
struct Supervision {
  std::size_t parallel = 1;       ///< children at once
  bool stop_on_failure = false;   ///< a child exiting non-zero stops the others (SIGTERM) and starts no more
  std::chrono::milliseconds tick{500};  ///< how often on_tick runs while children run
  std::function<void(std::size_t job, pid_t pid)> on_start;   ///< a child started
  std::function<void(const ChildExit&)> on_exit;              ///< a child exited
  std::function<void()> on_stopping;                          ///< the running children are being stopped
  std::function<void(const std::vector<std::size_t>&)> on_tick;  ///< the jobs running now
};

/// Runs `jobs` as child processes in order, `parallel` at a time, until every started child has
/// exited; a stop request (SIGINT/SIGTERM to this process) or, with stop_on_failure, a failed child
/// passes SIGTERM on to the running ones and starts no more. The one supervisor of sweep workers and
/// of the student processes of --student-jobs. Returns every exit, in the order they happened.
std::vector<ChildExit> supervise_children(const std::vector<ChildJob>& jobs, const Supervision& supervision);

/// The last non-empty line of a log (a child's current progress line), cut to `width` characters.
std::string last_line(const std::filesystem::path& log, std::size_t width = 110);

/// Lines redrawn in place on a terminal: each draw() overwrites the previous block. Before printing
/// anything else, clear() it, or the next draw() overwrites that text.
class LiveBlock {
 public:
  explicit LiveBlock(std::ostream& out) : out_(out) {}
  void draw(const std::vector<std::string>& lines);
  /// Erases the block and leaves the cursor where it began.
  void clear();

 private:
  std::ostream& out_;
  std::size_t drawn_ = 0;
};

}  // namespace msd::host
