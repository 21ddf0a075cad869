#include "msd/results/format.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "temp_dir.h"

namespace msd::results {
namespace {

using testing::TempDir;

TEST(FormatNumber, IsReadable) {
  EXPECT_EQ(format_number(std::numeric_limits<double>::quiet_NaN()), "nan");
  EXPECT_EQ(format_number(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(format_number(-std::numeric_limits<double>::infinity()), "-inf");
  EXPECT_EQ(format_number(0.0), "0");
  EXPECT_EQ(format_number(-0.0), "0");
  EXPECT_EQ(format_number(42), "42");
  EXPECT_EQ(format_number(-3), "-3");
  EXPECT_EQ(format_number(60000), "60000");
  EXPECT_EQ(format_number(0.123456), "0.1235");
  EXPECT_EQ(format_number(123.456), "123.5");
  EXPECT_EQ(format_number(12345.67), "12346");
  EXPECT_EQ(format_number(1.5e-7), "1.5e-07");
  EXPECT_EQ(format_number(2.5e12), "2.5e+12");
}

TEST(FormatDuration, PicksTwoUnits) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(42), "42s");
  EXPECT_EQ(format_duration(725), "12m05s");
  EXPECT_EQ(format_duration(3 * 3600 + 4 * 60 + 59), "3h04m");
  EXPECT_EQ(format_duration(2 * 86400 + 3 * 3600), "2d03h");
  EXPECT_EQ(format_duration(-5), "0s");
}

TEST(TextTable, AlignsTextLeftAndNumbersRight) {
  TextTable table({"name", "value"});
  table.add_row({"loss", "0.5"});
  table.add_row({"accuracy", "12"});
  EXPECT_EQ(table.size(), 2u);
  EXPECT_EQ(table.str(),
            "name      value\n"
            "--------  -----\n"
            "loss        0.5\n"
            "accuracy     12\n");
}

TEST(TextTable, TreatsNonFiniteAsNumbersAndToleratesRaggedRows) {
  TextTable table({"metric", "value", "note"});
  table.add_row({"fid", "inf", "diverged"});
  table.add_row({"kid", "nan"});
  table.add_row({"is", "", ""});
  table.add_row({"prec", "0.25"});
  EXPECT_EQ(table.str(),
            "metric  value  note\n"
            "------  -----  --------\n"
            "fid       inf  diverged\n"
            "kid       nan\n"
            "is\n"
            "prec     0.25\n");
}

TEST(TextTable, MeasuresUtf8InCharacters) {
  TextTable table({"k", "v"});
  table.add_row({"\xCE\xB1\xCE\xB2", "x"});  // "αβ": 2 characters, 4 bytes
  table.add_row({"abc", "y"});
  EXPECT_EQ(table.str(),
            "k    v\n"
            "---  -\n"
            "\xCE\xB1\xCE\xB2   x\n"
            "abc  y\n");
}

TEST(TextTable, HeaderOnly) {
  TextTable table({"id", "name"});
  EXPECT_EQ(table.str(), "id  name\n--  ----\n");
}

class FormatRuns : public ::testing::Test {
 protected:
  FormatRuns() : store_(dir_.file("results.db")) {
    NewRun run;
    run.experiment = "mnist";
    run.name = "wide";
    run.config_text = "[model]\nwidth = 256\n";
    run.config_hash = "abcdef0123456789";
    run.seed = 7;
    run.git_commit = "1234567";
    run.device = "cuda:0";
    run.sweep_id = "lr-sweep";
    run.sweep_index = 2;
    run.coords = {{"optim.lr", "0.01"}};
    id_ = store_.begin_run(run);
    store_.log_metrics(id_, {{"loss", 1, 0.9, ""},
                             {"loss", 2, 0.4321987, ""},
                             {"fid", 2, std::numeric_limits<double>::infinity(), "student:1"}});
    store_.add_artifact(id_, {"checkpoint", "ckpt/last.pt"});
    store_.set_tag(id_, "note", "promising");
    store_.finish_run(id_, RunStatus::failed, "CUDA out of memory");
  }

  TempDir dir_;
  Store store_;
  std::int64_t id_ = 0;
};

TEST_F(FormatRuns, ListShowsOneLinePerRun) {
  const std::string text = format_run_list(store_.list_runs());
  EXPECT_NE(text.find("mnist"), std::string::npos) << text;
  EXPECT_NE(text.find("wide"), std::string::npos) << text;
  EXPECT_NE(text.find("failed"), std::string::npos) << text;
  EXPECT_NE(text.find("abcdef01"), std::string::npos) << text;
  EXPECT_EQ(text.find("abcdef012"), std::string::npos) << text;  // hash cut to 8 characters
  EXPECT_EQ(text.find("id  experiment"), 0u) << text;
}

TEST_F(FormatRuns, DetailsShowEverything) {
  const std::string text = format_run_details(store_, id_);
  for (const char* expected :
       {"failed", "CUDA out of memory", "cuda:0", "1234567", "abcdef0123456789", "lr-sweep #2",
        "optim.lr=0.01", "note=promising", "  width = 256", "(all)", "0.4322", "student:1", "inf",
        "ckpt/last.pt"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << "missing '" << expected << "' in\n"
                                                      << text;
  }
  EXPECT_EQ(text.find("0.9"), std::string::npos) << "only the last step is final:\n" << text;
}

TEST_F(FormatRuns, DetailsOfAMissingRunNameTheFile) {
  try {
    format_run_details(store_, 999);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& error) {
    EXPECT_EQ(std::string(error.what()), "no run with id 999 in " + store_.path());
  }
}

}  // namespace
}  // namespace msd::results
