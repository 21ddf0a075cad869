#include "helpers.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace msd_integration {

fs::path msd_binary() { return MSD_BINARY; }
fs::path experiments_dir() { return MSD_EXPERIMENTS_DIR; }

// ---- temporary folders ---------------------------------------------------------------------------

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "msd-integ-XXXXXX").string();
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) {
    throw std::runtime_error("mkdtemp(" + pattern + "): " + std::strerror(errno));
  }
  path_ = buffer.data();
}

TempDir::~TempDir() {
  if (std::getenv("MSD_KEEP_TEST_DIRS") != nullptr) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

// ---- subprocesses ------------------------------------------------------------------------------

namespace {

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

/// Forks and execs msd with stdout and stderr on `out_fd`. Only async-signal-safe calls after fork.
pid_t start_child(const std::vector<std::string>& args, const fs::path& cwd, int out_fd, int close_fd,
                  const std::vector<std::string>& wrapper = {}) {
  std::vector<std::string> storage = wrapper;
  storage.reserve(wrapper.size() + args.size() + 1);
  storage.push_back(msd_binary().string());
  for (const auto& a : args) storage.push_back(a);
  std::vector<char*> argv;
  for (auto& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  const std::string dir = cwd.string();

  // The environment of the child: ours without MSD_PLUGIN_PATH.
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "MSD_PLUGIN_PATH=", 16) != 0) env_storage.emplace_back(*e);
  }
  std::vector<char*> envp;
  for (auto& s : env_storage) envp.push_back(s.data());
  envp.push_back(nullptr);

  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    // Its own process group, so that a test can kill msd with every worker it started at once.
    setpgid(0, 0);
    if (close_fd >= 0) close(close_fd);
    dup2(out_fd, STDOUT_FILENO);
    dup2(out_fd, STDERR_FILENO);
    if (out_fd != STDOUT_FILENO && out_fd != STDERR_FILENO) close(out_fd);
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
      dup2(devnull, STDIN_FILENO);
      close(devnull);
    }
    if (!dir.empty() && chdir(dir.c_str()) != 0) {
      const char msg[] = "integration test: chdir failed\n";
      (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
      _exit(126);
    }
    execve(argv[0], argv.data(), envp.data());
    const char msg[] = "integration test: exec of msd failed\n";
    (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    _exit(127);
  }
  return pid;
}

}  // namespace

RunResult run_msd(const std::vector<std::string>& args, const fs::path& cwd, int timeout_seconds,
                  const std::vector<std::string>& wrapper) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  const pid_t pid = start_child(args, cwd, fds[1], fds[0], wrapper);
  close(fds[1]);

  RunResult result;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  char buffer[4096];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    const ssize_t n = read(fds[0], buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child (and anything it started) closed the pipe
    result.output.append(buffer, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = result.timed_out ? -1 : decode_status(status);
  if (result.timed_out) result.output += "\n[integration test: msd killed after " + std::to_string(timeout_seconds) + " s]\n";
  return result;
}

pid_t spawn_msd(const std::vector<std::string>& args, const fs::path& cwd, const fs::path& log_file) {
  const int fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + log_file.string() + ": " + std::strerror(errno));
  const pid_t pid = start_child(args, cwd, fd, -1);
  close(fd);
  return pid;
}

std::optional<int> wait_for_exit(pid_t pid, double timeout_seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return decode_status(status);
    if (r < 0 && errno != EINTR) return -1;  // not our child (already reaped)
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// ---- files ---------------------------------------------------------------------------------------

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

bool same_file_contents(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  if (!fs::is_regular_file(a, ec) || !fs::is_regular_file(b, ec)) return false;
  return read_text(a) == read_text(b);
}

// ---- tiny experiments ------------------------------------------------------------------------------

std::string tiny_head(const TinyOptions& o) {
  std::ostringstream s;
  s << "[experiment]\n"
    << "name = \"" << o.name << "\"\n"
    << "seed = " << o.seed << "\n"
    << "threads = 1\n"
    << "device = \"cpu\"\n"
    << "\n"
    << "[dataset]\n"
    << "plugin = \"gaussian_grid\"\n"
    << "\n"
    << "[teacher]\n"
    << "plugin = \"edm_mlp\"\n"
    << "steps = 150\n"
    << "hidden = 32\n"
    << "blocks = 1\n"
    << "batch_size = 128\n"
    << "sampler_steps = 4\n"
    << "\n";
  return s.str();
}

std::string tiny_evaluate() {
  return "[evaluate]\n"
         "samples = 400\n"
         "\n"
         "[[evaluate.metric]]\n"
         "plugin = \"swd\"\n"
         "\n"
         "[[evaluate.metric]]\n"
         "plugin = \"mmd\"\n"
         "\n"
         "[[evaluate.metric]]\n"
         "plugin = \"mode_coverage\"\n"
         "\n"
         "[[evaluate.metric]]\n"
         "plugin = \"cost\"\n"
         "batch = 100\n"
         "repeats = 1\n"
         "\n";
}

std::string tiny_msd_config(const TinyOptions& o) {
  std::ostringstream s;
  s << tiny_head(o)
    << "[student]\n"
    << "plugin = \"one_step_generator\"\n"
    << "\n"
    << "[partition]\n"
    << "plugin = \"class_consecutive\"\n"
    << "k = 2\n"
    << "\n"
    << "[distill]\n"
    << "pairs = 256\n"
    << "\n"
    << "[budget]\n"
    << "scope = \"per_student\"\n"
    << "batch_size = 128\n"
    << "\n"
    << "[[stage]]\n"
    << "name = \"dm\"\n"
    << "steps = " << o.stage_steps << "\n"
    << "update_every = 2\n"
    << "\n"
    << "[[stage.loss]]\n"
    << "plugin = \"dm\"\n"
    << "\n"
    << "[[stage.loss]]\n"
    << "plugin = \"regression\"\n"
    << "weight = 0.25\n"
    << "\n"
    << tiny_evaluate();
  return s.str();
}

// ---- reading results -----------------------------------------------------------------------------

std::optional<double> RunView::metric(const std::string& name, const std::string& scope) const {
  for (const auto& m : final_metrics) {
    if (m.name == name && m.scope == scope) return m.value;
  }
  return std::nullopt;
}

std::optional<std::string> RunView::param(const std::string& key) const {
  for (const auto& [k, v] : params) {
    if (k == key) return v;
  }
  return std::nullopt;
}

std::optional<std::string> RunView::tag(const std::string& key) const {
  for (const auto& [k, v] : tags) {
    if (k == key) return v;
  }
  return std::nullopt;
}

std::vector<fs::path> RunView::artifact_paths(const std::string& kind) const {
  std::vector<fs::path> out;
  for (const auto& a : artifacts) {
    if (a.kind != kind) continue;
    fs::path p = a.path;
    out.push_back(p.is_absolute() ? p : db_dir / p);
  }
  return out;
}

std::vector<RunView> read_runs(const fs::path& db) {
  msd::results::Store store(db.string(), msd::results::Store::Mode::read_only);
  std::vector<RunView> out;
  for (const auto& record : store.list_runs()) {
    RunView v;
    v.db_dir = db.parent_path();
    v.record = record;
    v.final_metrics = store.final_metrics(record.id);
    v.all_metrics = store.metrics(record.id);
    v.params = store.params(record.id);
    v.tags = store.tags(record.id);
    v.artifacts = store.artifacts(record.id);
    out.push_back(std::move(v));
  }
  std::sort(out.begin(), out.end(), [](const RunView& a, const RunView& b) { return a.record.id < b.record.id; });
  return out;
}

const RunView& named(const std::vector<RunView>& runs, const std::string& name) {
  for (const RunView& run : runs) {
    if (run.record.name == name) return run;
  }
  throw std::runtime_error("no run named " + name);
}

}  // namespace msd_integration
