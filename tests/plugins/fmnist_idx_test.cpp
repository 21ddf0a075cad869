// The Fashion-MNIST IDX reader (plugins/fmnist/idx.cpp, compiled into this binary) on small gzip files
// written here: a good split, then one defect at a time. Every error must name the file at fault and
// say how to get a good copy.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "idx.h"

namespace {

namespace fs = std::filesystem;
using msd::fmnist::SplitSpec;

std::vector<std::uint8_t> header(std::uint32_t magic, const std::vector<std::uint32_t>& dims) {
  std::vector<std::uint32_t> words{magic};
  words.insert(words.end(), dims.begin(), dims.end());
  std::vector<std::uint8_t> bytes;
  for (std::uint32_t v : words) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<std::uint8_t>(v >> shift));
  }
  return bytes;
}

void write_gzip(const fs::path& file, const std::vector<std::uint8_t>& bytes) {
  gzFile out = gzopen(file.c_str(), "wb");
  ASSERT_NE(out, nullptr);
  if (!bytes.empty()) ASSERT_EQ(gzwrite(out, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(out), Z_OK);
}

class IdxReader : public ::testing::Test {
 protected:
  // A split of 3 images of 2x2 with labels 0, 9, 4.
  void SetUp() override {
    folder_ = fs::temp_directory_path() / ("msd_fmnist_idx_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
                                           "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(folder_);
    fs::create_directories(folder_);
    write_images(header(0x803, {3, 2, 2}), 12);
    write_labels(header(0x801, {3}), {0, 9, 4});
  }
  void TearDown() override { fs::remove_all(folder_); }

  void write_images(std::vector<std::uint8_t> bytes, int pixels) {
    for (int i = 0; i < pixels; ++i) bytes.push_back(static_cast<std::uint8_t>(20 * i));
    write_gzip(images(), bytes);
  }
  void write_labels(std::vector<std::uint8_t> bytes, const std::vector<std::uint8_t>& labels) {
    bytes.insert(bytes.end(), labels.begin(), labels.end());
    write_gzip(labels_file(), bytes);
  }
  fs::path images() const { return folder_ / "tiny-images-idx3-ubyte.gz"; }
  fs::path labels_file() const { return folder_ / "tiny-labels-idx1-ubyte.gz"; }
  SplitSpec spec() const { return {"tiny", 3, 2, 2, 10}; }

  // The message of the error read_split throws; fails the test when it does not throw.
  std::string error() const {
    try {
      msd::fmnist::read_split(folder_, spec());
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    ADD_FAILURE() << "read_split accepted a defective split";
    return "";
  }

  fs::path folder_;
};

TEST_F(IdxReader, ReadsAGoodSplit) {
  const msd::fmnist::SplitData split = msd::fmnist::read_split(folder_, spec());
  EXPECT_EQ(split.count, 3);
  EXPECT_EQ(split.rows, 2);
  EXPECT_EQ(split.cols, 2);
  ASSERT_EQ(split.pixels.size(), 12u);
  EXPECT_EQ(split.pixels[0], 0);
  EXPECT_EQ(split.pixels[11], 220);
  EXPECT_EQ(split.labels, (std::vector<std::uint8_t>{0, 9, 4}));
}

TEST_F(IdxReader, MissingFileNamesItAndTheAptCommand) {
  fs::remove(labels_file());
  const std::string message = error();
  EXPECT_NE(message.find(labels_file().string()), std::string::npos) << message;
  EXPECT_NE(message.find("apt-get install dataset-fashion-mnist"), std::string::npos) << message;
}

TEST_F(IdxReader, RejectsABadMagicNumber) {
  write_images(header(0x801, {3, 2, 2}), 12);
  const std::string message = error();
  EXPECT_NE(message.find(images().string()), std::string::npos) << message;
  EXPECT_NE(message.find("magic number 0x00000801, expected 0x00000803"), std::string::npos) << message;
  EXPECT_NE(message.find("apt-get install --reinstall dataset-fashion-mnist"), std::string::npos) << message;
}

TEST_F(IdxReader, RejectsWrongDimensions) {
  write_images(header(0x803, {3, 2, 3}), 18);
  const std::string message = error();
  EXPECT_NE(message.find("columns = 3, expected 2"), std::string::npos) << message;
}

TEST_F(IdxReader, RejectsAPayloadShorterThanTheHeaderSays) {
  write_images(header(0x803, {3, 2, 2}), 11);
  const std::string message = error();
  EXPECT_NE(message.find(images().string()), std::string::npos) << message;
  EXPECT_NE(message.find("27 bytes but its header implies 28 (truncated)"), std::string::npos) << message;
}

TEST_F(IdxReader, RejectsAPayloadLongerThanTheHeaderSays) {
  write_images(header(0x803, {3, 2, 2}), 13);
  EXPECT_NE(error().find("29 bytes but its header implies 28"), std::string::npos);
}

TEST_F(IdxReader, RejectsACutGzipStream) {
  // Write a long payload so that cutting the compressed file leaves a valid header but no gzip trailer.
  write_images(header(0x803, {3, 2, 2}), 12);
  std::ifstream in(images(), std::ios::binary);
  std::vector<char> compressed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  std::ofstream(images(), std::ios::binary | std::ios::trunc).write(compressed.data(), static_cast<std::streamsize>(compressed.size() - 6));
  const std::string message = error();
  EXPECT_NE(message.find(images().string()), std::string::npos) << message;
  EXPECT_NE(message.find("is corrupt"), std::string::npos) << message;
}

TEST_F(IdxReader, RejectsAFileThatIsNotGzip) {
  std::vector<std::uint8_t> raw = header(0x801, {3});
  raw.insert(raw.end(), {0, 1, 2});
  std::ofstream(labels_file(), std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(raw.data()), 15);
  EXPECT_NE(error().find("not gzip-compressed"), std::string::npos);
}

TEST_F(IdxReader, RejectsALabelCountThatDiffersFromTheImageCount) {
  write_labels(header(0x801, {2}), {0, 1});
  const std::string message = error();
  EXPECT_NE(message.find(labels_file().string()), std::string::npos) << message;
  EXPECT_NE(message.find("count = 2, expected 3"), std::string::npos) << message;
}

TEST_F(IdxReader, RejectsALabelOutOfRange) {
  write_labels(header(0x801, {3}), {0, 10, 4});
  const std::string message = error();
  EXPECT_NE(message.find(labels_file().string()), std::string::npos) << message;
  EXPECT_NE(message.find("label 10 of item 1 is outside 0..9"), std::string::npos) << message;
}

// The installed package itself, when present (it is in MSD_PACKAGES): both splits pass every check
// and the training split is balanced, 6000 images per class.
TEST(FashionMnistFiles, InstalledSplitsAreValid) {
  const fs::path folder = msd::fmnist::kDefaultFolder;
  if (!fs::exists(folder / "train-images-idx3-ubyte.gz")) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const msd::fmnist::SplitData train = msd::fmnist::read_split(folder, msd::fmnist::train_split());
  const msd::fmnist::SplitData test = msd::fmnist::read_split(folder, msd::fmnist::test_split());
  EXPECT_EQ(train.pixels.size(), 60000u * 28 * 28);
  EXPECT_EQ(test.labels.size(), 10000u);
  std::vector<int> per_class(10, 0);
  for (std::uint8_t label : train.labels) ++per_class[label];
  EXPECT_EQ(per_class, std::vector<int>(10, 6000));
}

}  // namespace
