#include "msd/cache_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <stdexcept>

namespace msd {

CacheLock::CacheLock(const std::filesystem::path& file, std::ostream* waiting_note) {
  std::filesystem::create_directories(file.parent_path());
  fd_ = ::open(file.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error("cannot open lock file " + file.string());
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    if (waiting_note != nullptr) *waiting_note << "waiting for another process to finish " << file.stem().string() << "\n";
    if (::flock(fd_, LOCK_EX) != 0) {
      ::close(fd_);
      throw std::runtime_error("cannot lock " + file.string());
    }
  }
}

CacheLock::~CacheLock() { ::close(fd_); }

}  // namespace msd
