// Child processes of msd (sweep workers, student processes): started with their output in a log
// file, watched through that log's last line, and shown as a block of lines redrawn in place.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
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
