// msd::write_file_atomically: a file holds its old content or the new, never part of it, and a write
// that fails (here past RLIMIT_FSIZE, as on a full disk) leaves no temporary file behind.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "msd/atomic_file.h"

namespace {

namespace fs = std::filesystem;

std::string contents(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

fs::path fresh_folder() {
  std::string pattern = (fs::temp_directory_path() / "msd_atomic_XXXXXX").string();
  return mkdtemp(pattern.data());
}

TEST(AtomicFile, WritesAFileAndItsFolderAndReplacesIt) {
  const fs::path folder = fresh_folder();
  const fs::path file = folder / "sub" / "checkpoint.pt";
  msd::write_file_atomically(file, "first");
  EXPECT_EQ(contents(file), "first");
  msd::write_file_atomically(file, std::string(100000, 'x'));
  EXPECT_EQ(contents(file), std::string(100000, 'x'));
  EXPECT_EQ(std::distance(fs::directory_iterator(folder / "sub"), fs::directory_iterator()), 1);
  fs::remove_all(folder);
}

TEST(AtomicFile, AFailedWriteKeepsTheOldFileAndLeavesNoTemporary) {
  const fs::path folder = fresh_folder();
  const fs::path file = folder / "checkpoint.pt";
  msd::write_file_atomically(file, "old");
  // In a child, whose file-size limit then stands for a full disk.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{4096, 4096};
    setrlimit(RLIMIT_FSIZE, &limit);
    try {
      msd::write_file_atomically(file, std::string(100000, 'n'));
    } catch (const std::runtime_error& error) {
      const std::string message = error.what();
      _exit(message.find(file.string()) != std::string::npos && message.find("nothing was written") != std::string::npos
                ? 0 : 2);
    }
    _exit(1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_EQ(contents(file), "old");
  EXPECT_EQ(std::distance(fs::directory_iterator(folder), fs::directory_iterator()), 1);
  fs::remove_all(folder);
}

TEST(AtomicFile, AFolderThatCannotBeMadeIsAnError) {
  EXPECT_THROW(msd::write_file_atomically("/proc/msd/x.pt", "x"), std::runtime_error);
  EXPECT_THROW(msd::write_file_atomically("/dev/null/x.pt", "x"), std::runtime_error);
}

}  // namespace
