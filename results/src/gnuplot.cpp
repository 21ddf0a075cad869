#include "gnuplot.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace msd::results::detail {

ScratchDir::ScratchDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "msd_pictures_XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("cannot make a temporary folder " + pattern + ": " + std::strerror(errno));
  }
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string gnuplot_string(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "''";
    } else if (c == '\n' || c == '\r') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string png_terminal(int width, int height, const std::filesystem::path& out) {
  const std::string size = std::to_string(width) + "," + std::to_string(height);
  return "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
         "  set terminal pngcairo noenhanced size " + size + " font 'DejaVu Sans,11'\n"
         "} else {\n"
         "  set terminal png noenhanced size " + size + "\n"
         "}\n"
         "set output " + gnuplot_string(out.string()) + "\n";
}

void run_gnuplot(const std::filesystem::path& script, const std::filesystem::path& out) {
  std::error_code error;
  std::filesystem::remove(out, error);  // so that an old picture cannot pass for a new one
  const std::string log = script.string() + ".log";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::string program = "gnuplot";
  std::string script_arg = script.string();
  char* argv[] = {program.data(), script_arg.data(), nullptr};
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, "gnuplot", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned == ENOENT) {
    throw std::runtime_error("gnuplot is not installed (no gnuplot on PATH); install it with "
                             "`apt-get install gnuplot-nox`");
  }
  if (spawned != 0) throw std::runtime_error(std::string("cannot start gnuplot: ") + std::strerror(spawned));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error(std::string("waiting for gnuplot: ") + std::strerror(errno));
  }
  std::ifstream messages(log);
  std::stringstream text;
  text << messages.rdbuf();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const std::string how = WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                              : "was killed by signal " + std::to_string(WTERMSIG(status));
    throw std::runtime_error("gnuplot " + how + " drawing " + out.string() + ": " + text.str());
  }
  if (std::filesystem::file_size(out, error) == 0 || error) {
    throw std::runtime_error("gnuplot wrote no picture at " + out.string() + ": " + text.str());
  }
}

}  // namespace msd::results::detail
