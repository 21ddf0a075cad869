#include "msd/results/pictures.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "msd/results/plot.h"
#include "temp_dir.h"

namespace msd::results {
namespace {

using testing::TempDir;

std::uint32_t rgb(const char* hex) { return static_cast<std::uint32_t>(std::stoul(hex + 1, nullptr, 16)); }

std::size_t count_pixels(const RgbImage& image, std::uint32_t colour) {
  std::size_t count = 0;
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) count += image.pixel(x, y) == colour ? 1 : 0;
  }
  return count;
}

/// Sets PATH to an empty folder while alive, so that no gnuplot can be found.
class NoGnuplotOnPath {
 public:
  explicit NoGnuplotOnPath(const std::string& empty_folder) : saved_(std::getenv("PATH")) {
    setenv("PATH", empty_folder.c_str(), 1);
  }
  ~NoGnuplotOnPath() { setenv("PATH", saved_.c_str(), 1); }

 private:
  std::string saved_;
};

TEST(ImageGrid, OneRowPerClassWithKnownPixels) {
  TempDir dir;
  // 6 grey 2x3 images, labels 0 1 2 0 1 2; image i is filled with value v_i, except pixel (row 1,
  // column 2) of image 0, which is 1 (white).
  const std::vector<float> fill = {-1.0f, 0.0f, 0.5f, 1.0f, -0.5f, 0.25f};
  std::vector<float> values;
  for (float v : fill) values.insert(values.end(), 6, v);
  values[5] = 1.0f;
  const std::vector<std::int64_t> labels = {0, 1, 2, 0, 1, 2};
  ImageGridOptions options;
  options.per_class = 3;
  options.padding = 1;
  options.scale = 1;
  options.background = 200;
  const std::string out = dir.file("grid.png");
  write_image_grid_png({values.data(), labels.data(), 6, 1, 2, 3}, out, options);

  const RgbImage image = read_png_rgb(out);
  EXPECT_EQ(image.width, 3 * (3 + 1) + 1);
  EXPECT_EQ(image.height, 3 * (2 + 1) + 1);
  const auto grey = [](std::uint32_t level) { return level << 16 | level << 8 | level; };
  EXPECT_EQ(image.pixel(0, 0), grey(200));              // padding
  EXPECT_EQ(image.pixel(1, 1), grey(0));                // class 0, first image: -1
  EXPECT_EQ(image.pixel(3, 2), grey(255));              // its pixel (1, 2): 1
  EXPECT_EQ(image.pixel(5, 1), grey(255));              // class 0, second image (sample 3): 1
  EXPECT_EQ(image.pixel(1, 4), grey(128));              // class 1 (row 2), sample 1: 0
  EXPECT_EQ(image.pixel(5, 4), grey(64));               // class 1, sample 4: -0.5 -> 63.75
  EXPECT_EQ(image.pixel(1, 7), grey(191));              // class 2, sample 2: 0.5 -> 191.25
  EXPECT_EQ(image.pixel(9, 1), grey(200));              // class 0 has only 2 images: empty cell
}

TEST(ImageGrid, RgbChannelsAndScale) {
  TempDir dir;
  // One 1x1 RGB image of class 0: red -1 -> 0, green 1 -> 255, blue 0 -> 128; drawn 3x3.
  const std::vector<float> values = {-1.0f, 1.0f, 0.0f};
  const std::vector<std::int64_t> labels = {0};
  ImageGridOptions options;
  options.per_class = 1;
  options.padding = 0;
  options.scale = 3;
  const std::string out = dir.file("rgb.png");
  write_image_grid_png({values.data(), labels.data(), 1, 3, 1, 1}, out, options);
  const RgbImage image = read_png_rgb(out);
  ASSERT_EQ(image.width, 3);
  ASSERT_EQ(image.height, 3);
  EXPECT_EQ(image.pixel(2, 2), 0x00ff80u);
}

TEST(ImageGrid, RejectsBadShapesAndLabels) {
  TempDir dir;
  const std::vector<float> values(2 * 4, 0.0f);
  const std::vector<std::int64_t> labels = {0, -1};
  EXPECT_THROW(write_image_grid_png({values.data(), labels.data(), 1, 2, 2, 1}, dir.file("a.png")),
               std::invalid_argument);
  try {
    write_image_grid_png({values.data(), labels.data(), 2, 1, 2, 2}, dir.file("b.png"));
    FAIL() << "a negative label was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("sample 1 has label -1"), std::string::npos) << e.what();
  }
}

TEST(Scatter, WritesPngOfRequestedSizeInClassColours) {
  TempDir dir;
  std::vector<float> points;
  std::vector<std::int64_t> labels;
  for (int i = 0; i < 300; ++i) {
    points.push_back(static_cast<float>(i % 3) * 2.0f + 0.01f * static_cast<float>(i % 10));
    points.push_back(static_cast<float>(i % 7));
    labels.push_back(i % 3);
  }
  ScatterOptions options;
  options.width = 400;
  options.height = 300;
  options.point_size = 1.0;
  const std::string out = dir.file("scatter.png");
  write_scatter_png(points.data(), labels.data(), 300, out, options);
  const RgbImage image = read_png_rgb(out);
  EXPECT_EQ(image.width, 400);
  EXPECT_EQ(image.height, 300);
  EXPECT_GT(count_pixels(image, rgb(kPalette[0])), 20u);
  EXPECT_GT(count_pixels(image, rgb(kPalette[2])), 20u);
}

TEST(Scatter, SaysHowToInstallGnuplotWhenItIsMissing) {
  TempDir dir;
  std::filesystem::create_directories(dir.file("empty"));
  const std::vector<float> points = {0.0f, 0.0f};
  const std::vector<std::int64_t> labels = {0};
  NoGnuplotOnPath no_gnuplot(dir.file("empty"));
  try {
    write_scatter_png(points.data(), labels.data(), 1, dir.file("s.png"));
    FAIL() << "no error without gnuplot";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("apt-get install gnuplot-nox"), std::string::npos) << e.what();
  }
}

TEST(SamplePictures, PicksThePictureByShape) {
  TempDir dir;
  const std::vector<float> values(4 * 2 * 4, 0.25f);
  const std::vector<std::int64_t> labels = {0, 1, 0, 1};
  const auto scatter = draw_sample_pictures({values.data(), labels.data(), {4, 2}}, dir.file(""));
  ASSERT_EQ(scatter.size(), 1u);
  EXPECT_EQ(scatter[0].kind, "scatter");
  EXPECT_EQ(std::filesystem::path(scatter[0].path).filename(), "samples_scatter.png");
  EXPECT_TRUE(std::filesystem::path(scatter[0].path).is_absolute());
  EXPECT_GT(read_png_rgb(scatter[0].path).width, 0);

  const auto grid = draw_sample_pictures({values.data(), labels.data(), {4, 1, 2, 4}}, dir.file(""));
  ASSERT_EQ(grid.size(), 1u);
  EXPECT_EQ(grid[0].kind, "image_grid");
  EXPECT_EQ(read_png_rgb(grid[0].path).pixel(3, 3), 0x9f9f9fu);  // 0.25 -> 159.375 -> 159

  EXPECT_TRUE(draw_sample_pictures({values.data(), labels.data(), {4, 8}}, dir.file("")).empty());
}

// --- sweep plots ---------------------------------------------------------------------------------

constexpr const char* kSweep = "5eed5eed5eed";

/// partition.k in {1, 2, 4} x seeds {0, 1, 2}, with partition.plugin "a" or "b" by seed parity;
/// swd = 1 / k + seed / 100.
class PlotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Store store(path);
    for (const char* k : {"1", "2", "4"}) {
      for (int seed = 0; seed < 3; ++seed) {
        NewRun run;
        run.experiment = "kplot";
        run.name = std::string("k") + k + "-s" + std::to_string(seed);
        run.config_hash = run.name;
        run.seed = seed;
        run.host = "test";
        run.device = "cpu";
        run.sweep_id = kSweep;
        run.params = {{"partition.k", k}, {"partition.plugin", seed % 2 ? "\"a\"" : "\"b\""}};
        const std::int64_t id = store.begin_run(run);
        store.log_metrics(id, {{"swd", 0, 1.0 / std::stod(k) + seed / 100.0, ""}});
        store.finish_run(id, RunStatus::finished);
      }
    }
  }

  std::string plot_error(PlotRequest request) {
    Store store(path, Store::Mode::read_only);
    try {
      plot_sweep(store, request, dir.file("error.png"));
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "(no error)";
  }

  TempDir dir;
  std::string path = dir.file("results.db");
};

TEST_F(PlotTest, NumericAxisGivesPngOfRequestedSizeWithTheFirstLineColour) {
  Store store(path, Store::Mode::read_only);
  PlotRequest request{"5eed", "partition.k", "swd"};
  request.width = 640;
  request.height = 400;
  plot_sweep(store, request, dir.file("k.png"));
  const RgbImage image = read_png_rgb(dir.file("k.png"));
  EXPECT_EQ(image.width, 640);
  EXPECT_EQ(image.height, 400);
  EXPECT_GT(count_pixels(image, rgb(kPalette[0])), 300u);
  EXPECT_EQ(count_pixels(image, rgb(kPalette[1])), 0u);  // one line only
}

TEST_F(PlotTest, ByKeyGivesOneLinePerValueAndCategoricalXWorks) {
  Store store(path, Store::Mode::read_only);
  PlotRequest lines{kSweep, "partition.k", "swd", "", {"partition.plugin"}};
  plot_sweep(store, lines, dir.file("lines.png"));
  const RgbImage two = read_png_rgb(dir.file("lines.png"));
  EXPECT_GT(count_pixels(two, rgb(kPalette[0])), 100u);
  EXPECT_GT(count_pixels(two, rgb(kPalette[1])), 100u);

  PlotRequest categories{kSweep, "partition.plugin", "swd"};
  plot_sweep(store, categories, dir.file("categories.png"));
  EXPECT_GT(count_pixels(read_png_rgb(dir.file("categories.png")), rgb(kPalette[0])), 20u);
}

TEST_F(PlotTest, ErrorsSayWhatIsWrong) {
  EXPECT_NE(plot_error({"nosuchsweep", "partition.k", "swd"}).find("no sweep id or experiment name matches"),
            std::string::npos);
  const std::string no_metric = plot_error({kSweep, "partition.k", "fid"});
  EXPECT_NE(no_metric.find("has metric 'fid'"), std::string::npos) << no_metric;
  EXPECT_NE(no_metric.find("they have swd"), std::string::npos) << no_metric;
  const std::string no_param = plot_error({kSweep, "partition.kk", "swd"});
  EXPECT_NE(no_param.find("has param 'partition.kk' (did you mean 'partition.k'?)"), std::string::npos) << no_param;
  const std::string wrong_scope = plot_error({kSweep, "partition.k", "swd", "student:0"});
  EXPECT_NE(wrong_scope.find("has scope 'student:0'"), std::string::npos) << wrong_scope;
}

}  // namespace
}  // namespace msd::results
