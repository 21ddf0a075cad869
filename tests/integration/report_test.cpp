// `msd report` end to end: a sweep database made through the Store API (real rows, a real PNG
// artifact), the report written by the msd binary, rendered by headless Chromium, and the
// screenshot decoded to check that the page, its plot and its tables are really drawn.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "helpers.h"
#include "msd/results/pictures.h"
#include "msd/results/report.h"

namespace msd_integration {
namespace {

using msd::results::RgbImage;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kSweep = "c0ffee00c0ffee00";

std::optional<fs::path> find_on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::stringstream folders(path == nullptr ? "" : path);
  std::string folder;
  while (std::getline(folders, folder, ':')) {
    const fs::path candidate = fs::path(folder.empty() ? "." : folder) / program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

/// Pixels whose channels are all within `tolerance` of `hex` ("#rrggbb").
std::size_t count_near(const RgbImage& image, const std::string& hex, int tolerance) {
  const std::uint32_t target = static_cast<std::uint32_t>(std::stoul(hex.substr(1), nullptr, 16));
  std::size_t count = 0;
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      const std::uint32_t p = image.pixel(x, y);
      bool near = true;
      for (int shift : {0, 8, 16}) {
        near = near && std::abs(static_cast<int>((p >> shift) & 0xff) - static_cast<int>((target >> shift) & 0xff)) <=
                           tolerance;
      }
      count += near ? 1 : 0;
    }
  }
  return count;
}

/// partition.k in {1, 2, 4} x seeds {0, 1, 2}, finished with swd = 1 / k + seed / 50, one image
/// grid per k; and a failed run.
void make_sweep_database(const fs::path& db, const fs::path& pictures) {
  msd::results::Store store(db.string());
  fs::create_directories(pictures);
  std::int64_t index = 0;
  for (const char* k : {"1", "2", "4"}) {
    for (int seed = 0; seed < 3; ++seed) {
      msd::results::NewRun run;
      run.experiment = "report_demo";
      run.name = std::string("base[partition.k=") + k + ",seed=" + std::to_string(seed) + "]";
      run.config_text = "partition.k = " + std::string(k) + "\n";
      run.config_hash = run.name;
      run.seed = seed;
      run.host = "test";
      run.device = "cpu";
      run.sweep_id = kSweep;
      run.sweep_index = index++;
      run.params = {{"partition.k", k}, {"experiment.seed", std::to_string(seed)}};
      run.coords = run.params;
      const std::int64_t id = store.begin_run(run);
      store.log_metrics(id, {{"swd", 0, 1.0 / std::stod(k) + seed / 50.0, ""}, {"mmd", 0, 0.01 * seed, ""}});
      if (seed == 0) {
        // Two classes of 4x4 grey ramps: a real PNG to embed.
        std::vector<float> values;
        for (int i = 0; i < 4; ++i) {
          for (int p = 0; p < 16; ++p) values.push_back(-1.0f + p / 7.5f);
        }
        const std::vector<std::int64_t> labels = {0, 1, 0, 1};
        const fs::path grid = pictures / ("grid-k" + std::string(k) + ".png");
        msd::results::write_image_grid_png({values.data(), labels.data(), 4, 1, 4, 4}, grid);
        store.add_artifact(id, {"image_grid", grid.string()});
      }
      store.finish_run(id, msd::results::RunStatus::finished);
    }
  }
  msd::results::NewRun failed;
  failed.experiment = "report_demo";
  failed.name = "base[partition.k=8,seed=0]";
  failed.config_hash = failed.name;
  failed.host = "test";
  failed.device = "cpu";
  failed.sweep_id = kSweep;
  failed.sweep_index = index;
  failed.params = {{"partition.k", "8"}, {"experiment.seed", "0"}};
  failed.coords = failed.params;
  store.finish_run(store.begin_run(failed), msd::results::RunStatus::failed, "diverged <badly>");
}

TEST(Report, RendersInHeadlessChromiumWithPlotAndTables) {
  const std::optional<fs::path> chromium = find_on_path("chromium");
  if (!chromium) {
    const char* skip = std::getenv("MSD_SKIP_BROWSER_TESTS");
    if (skip != nullptr && std::string(skip) == "1") GTEST_SKIP() << "chromium not installed (MSD_SKIP_BROWSER_TESTS=1)";
    FAIL() << "chromium is not installed: `apt-get install chromium` (scripts/test.sh installs it through "
              "MSD_TEST_PACKAGES), or set MSD_SKIP_BROWSER_TESTS=1 to skip this test";
  }
  TempDir dir;
  const fs::path db = dir / "results.db";
  make_sweep_database(db, dir / "pictures");

  const fs::path html = dir / "report.html";
  const RunResult report = run_msd({"report", "c0ffee", "--db", db.string(), "--out", html.string(), "--metric", "swd"});
  ASSERT_EQ(report.exit_code, 0) << report.output;
  const std::string page = read_text(html);
  EXPECT_THAT(page, HasSubstr("9 finished, 1 failed"));
  EXPECT_THAT(page, HasSubstr("base[partition.k=8,seed=0]"));
  EXPECT_THAT(page, Not(HasSubstr("http")));

  const fs::path screenshot = dir / "screenshot.png";
  const std::string command = "timeout 180 '" + chromium->string() +
                              "' --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir='" +
                              (dir / "chromium-profile").string() + "' --screenshot='" + screenshot.string() +
                              "' --window-size=1200,2400 'file://" + html.string() + "' > '" +
                              (dir / "chromium.log").string() + "' 2>&1";
  const int status = std::system(command.c_str());
  ASSERT_TRUE(fs::exists(screenshot)) << "chromium exited with " << status << " and wrote no screenshot:\n"
                                      << read_text(dir / "chromium.log");

  const RgbImage image = msd::results::read_png_rgb(screenshot);
  ASSERT_EQ(image.width, 1200);
  ASSERT_EQ(image.height, 2400);
  const std::size_t white = count_near(image, "#ffffff", 0);
  EXPECT_LT(white, image.width * static_cast<std::size_t>(image.height) * 99 / 100) << "the page is blank";
  // The plot's only line is kPalette[0]; the tables' headers have kReportHeaderBackground.
  EXPECT_GT(count_near(image, msd::results::kPalette[0], 12), 500u) << "no plot line in the screenshot";
  EXPECT_GT(count_near(image, msd::results::kReportHeaderBackground, 4), 2000u) << "no table header in the screenshot";
}

}  // namespace
}  // namespace msd_integration
