#pragma once
// An exclusive lock on a cache entry, shared by processes: whoever needs an entry that is being made
// (a trained teacher, a feature classifier) waits for the process making it and then loads its file,
// so the entry is made once per cache and every run of a sweep uses the same one.

#include <filesystem>
#include <ostream>

namespace msd {

/// Holds an exclusive flock on `file` (created if missing) while alive. When another process holds
/// it, writes "waiting for another process to finish <stem>" to `waiting_note` (if given) and blocks.
/// Throws std::runtime_error naming the file when it cannot be opened or locked.
class CacheLock {
 public:
  explicit CacheLock(const std::filesystem::path& file, std::ostream* waiting_note = nullptr);
  ~CacheLock();  // closing the descriptor releases the lock
  CacheLock(const CacheLock&) = delete;
  CacheLock& operator=(const CacheLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace msd
