// Reader for the gzip-compressed IDX files of (Fashion-)MNIST, as shipped by the Debian package
// dataset-fashion-mnist. Free of LibTorch so that its tests compile fast. Every check names the file
// and what is wrong with it, and says how to (re)install the package.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace msd::fmnist {

/// Where the Debian package dataset-fashion-mnist installs its files.
inline const char* const kDefaultFolder = "/usr/share/datasets/fashion-mnist";
/// Magic numbers of the IDX format: unsigned bytes, 3 dimensions (images) or 1 (labels).
constexpr std::uint32_t kImagesMagic = 0x00000803;
constexpr std::uint32_t kLabelsMagic = 0x00000801;

/// What a split's files must hold.
struct SplitSpec {
  std::string prefix;         ///< file name prefix: "train" or "t10k"
  std::int64_t count = 0;     ///< images (and labels) in the split
  std::int64_t rows = 28;     ///< image height
  std::int64_t cols = 28;     ///< image width
  std::int64_t classes = 10;  ///< labels lie in 0..classes-1
};

/// The training split of Fashion-MNIST: 60000 images of 28x28 in 10 classes.
SplitSpec train_split();
/// The test split: 10000 images.
SplitSpec test_split();

/// One split, checked against its SplitSpec.
struct SplitData {
  std::int64_t count = 0;             ///< number of images
  std::int64_t rows = 0;              ///< image height
  std::int64_t cols = 0;              ///< image width
  std::vector<std::uint8_t> pixels;   ///< count * rows * cols grey levels, row-major, 0 = background
  std::vector<std::uint8_t> labels;   ///< count class labels
};

/// The whole decompressed content of a gzip file. Throws std::runtime_error naming the file when it
/// is missing (with the apt command that installs it) or not valid gzip.
std::vector<std::uint8_t> read_gzip(const std::filesystem::path& file);

/// Reads and checks <folder>/<prefix>-images-idx3-ubyte.gz and <prefix>-labels-idx1-ubyte.gz:
/// magic numbers, dimensions and counts as in `spec`, file length equal to what the header implies,
/// labels in range. Throws std::runtime_error naming the file and the first problem found.
SplitData read_split(const std::filesystem::path& folder, const SplitSpec& spec);

}  // namespace msd::fmnist
