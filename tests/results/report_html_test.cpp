#include "msd/results/report.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "msd/results/pictures.h"
#include "temp_dir.h"

namespace msd::results {
namespace {

using testing::TempDir;

TEST(HtmlEscape, ReplacesEveryMarkupCharacter) {
  EXPECT_EQ(html_escape("<a href=\"x\">Tom & Jerry's</a>"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
  EXPECT_EQ(html_escape("plain ± text"), "plain ± text");
  EXPECT_EQ(html_escape(""), "");
}

TEST(Base64, MatchesRfc4648Vectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode(std::string("\xff\x00\x80", 3)), "/wCA");
}

/// A sweep over partition.k (1, 2) x seeds (0, 1) whose run names and param values hold markup.
class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Store store(path);
    int index = 0;
    for (const char* k : {"1", "2"}) {
      for (int seed = 0; seed < 2; ++seed) {
        NewRun run;
        run.experiment = "exp<b>";
        run.name = "<script>alert(1)</script>k" + std::string(k);
        run.config_hash = run.name + std::to_string(seed);
        run.seed = seed;
        run.host = "test";
        run.device = "cpu";
        run.sweep_id = "feedfacecafe";
        run.sweep_index = index++;
        run.params = {{"partition.k", k}, {"experiment.seed", std::to_string(seed)}, {"experiment.name", "\"exp<b>\""}};
        run.coords = {{"partition.k", k}, {"experiment.seed", std::to_string(seed)}};
        const std::int64_t id = store.begin_run(run);
        store.log_metrics(id, {{"swd", 0, 1.0 / std::stod(k) + seed, ""},
                               {"mmd", 0, 0.5, ""},
                               {"loss", 10, 3.0, ""},             // a curve, not a final metric
                               {"swd", 0, 9.0, "student:0"}});
        if (index == 4) {
          store.finish_run(id, RunStatus::failed, "boom & bust");
        } else {
          store.finish_run(id, RunStatus::finished);
        }
      }
    }
  }

  TempDir dir;
  std::string path = dir.file("results.db");
};

TEST_F(ReportTest, EscapesTextAndGroupsBySweepAxes) {
  Store store(path, Store::Mode::read_only);
  const std::string html = render_report(store, {"feed"});
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;k1"), std::string::npos);
  EXPECT_NE(html.find("msd-lab report: exp&lt;b&gt;"), std::string::npos);
  EXPECT_NE(html.find("3 finished, 1 failed"), std::string::npos);
  EXPECT_NE(html.find("<td>partition.k</td>"), std::string::npos);  // the axes row
  EXPECT_NE(html.find("<th>variant</th>"), std::string::npos);       // two variants: a column of their own
  // Default metrics: the final whole-model ones, in name order; the curve is left out.
  EXPECT_NE(html.find("<h2>mmd</h2>"), std::string::npos);
  EXPECT_LT(html.find("<h2>mmd</h2>"), html.find("<h2>swd</h2>"));
  EXPECT_EQ(html.find("<h2>loss</h2>"), std::string::npos);
  // k = 1: seeds 0 and 1 give swd 1 and 2; k = 2 has one finished run.
  EXPECT_NE(html.find("1.5 ± 0.7071"), std::string::npos) << html;
  // Self-contained: no links out, the plot inline.
  EXPECT_EQ(html.find("http"), std::string::npos);
  EXPECT_NE(html.find("src=\"data:image/png;base64,"), std::string::npos);
}

TEST_F(ReportTest, NamedMetricsOnlyAndUnknownSweep) {
  Store store(path, Store::Mode::read_only);
  ReportRequest request{"feedfacecafe", {"swd"}};
  const std::string html = render_report(store, request);
  EXPECT_NE(html.find("<h2>swd</h2>"), std::string::npos);
  EXPECT_EQ(html.find("<h2>mmd</h2>"), std::string::npos);
  EXPECT_THROW(render_report(store, {"nope"}), std::runtime_error);
}

// A database moved without its run folders: the variant's first run has lost its picture, its second
// run still has one. The second stands in, and the page says what is missing instead of failing.
TEST_F(ReportTest, RunsWithPicturesHereStandInForThoseWithout) {
  const std::string here = dir.file("grid.png");
  const std::vector<float> values(16, 0.5f);
  const std::vector<std::int64_t> labels{0};
  write_image_grid_png({values.data(), labels.data(), 1, 1, 4, 4}, here);
  {
    Store store(path);
    store.add_artifact(1, {"image_grid", dir.file("gone/samples_grid.png")});
    store.add_artifact(2, {"image_grid", here});
  }
  Store store(path, Store::Mode::read_only);
  const std::string html = render_report(store, {"feed"});
  EXPECT_NE(html.find("image_grid of run 2"), std::string::npos) << html;
  EXPECT_EQ(html.find("image_grid of run 1"), std::string::npos);
  EXPECT_NE(html.find("1 recorded picture(s) of 1 run(s) are not on this machine"), std::string::npos);
  EXPECT_NE(html.find("the first of them run 1 ("), std::string::npos);
}

}  // namespace
}  // namespace msd::results
