// msd::CacheLock: a second holder waits until the first lets go, and says that it waits.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include "msd/cache_lock.h"

namespace {

namespace fs = std::filesystem;

TEST(CacheLock, SecondHolderWaitsForTheFirstAndSaysSo) {
  const fs::path folder = fs::temp_directory_path() / ("msd-cache-lock-" + std::to_string(::getpid()));
  const fs::path file = folder / "sub" / "entry.pt.lock";  // missing folders are created
  std::atomic<bool> first_released{false};
  std::atomic<bool> second_acquired_while_held{false};
  std::ostringstream note;
  {
    auto first = std::make_unique<msd::CacheLock>(file);
    std::thread second([&] {
      const msd::CacheLock lock(file, &note);  // flock: another open file, so it conflicts in-process too
      second_acquired_while_held = !first_released.load();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    first_released = true;
    first.reset();
    second.join();
  }
  EXPECT_FALSE(second_acquired_while_held.load());
  EXPECT_EQ(note.str(), "waiting for another process to finish entry.pt\n");
  fs::remove_all(folder);
}

TEST(CacheLock, UnopenableFileIsAnErrorNamingIt) {
  try {
    const msd::CacheLock lock("/proc/msd-no-such-folder/entry.lock");
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("/proc/msd-no-such-folder"), std::string::npos) << e.what();
  }
}

}  // namespace
