// Internal to msd_results: running gnuplot on a script in a scratch folder, and the bits of
// gnuplot syntax the pictures share.
#pragma once

#include <filesystem>
#include <string>

namespace msd::results::detail {

/// A fresh folder under the system temporary folder, removed with its contents on destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

/// `text` as a gnuplot single-quoted string: no escapes are interpreted there, '' stands for one
/// quote, and line breaks (which would end the command) become spaces.
std::string gnuplot_string(const std::string& text);

/// Gnuplot commands selecting a PNG terminal of `width` x `height` pixels writing to `out`:
/// pngcairo when this gnuplot has it (anti-aliased), else the libgd png terminal. Text is not
/// "enhanced", so the underscores of metric names stay underscores.
std::string png_terminal(int width, int height, const std::filesystem::path& out);

/// Runs `gnuplot SCRIPT` (found on PATH, without a shell) and checks that it wrote `out`. Throws
/// std::runtime_error saying to install gnuplot-nox when there is no gnuplot, and with gnuplot's
/// own messages when it fails.
void run_gnuplot(const std::filesystem::path& script, const std::filesystem::path& out);

}  // namespace msd::results::detail
