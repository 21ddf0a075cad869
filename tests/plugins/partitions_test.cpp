// Partition plugins, loaded from the built libmsd_partitions.so.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "load_plugin.h"
#include "msd/edm.h"
#include "msd/partition.h"

namespace {

using msd::Cell;
using msd::Partition;
using msd::PartitionContext;
using msd::RoutingKey;

constexpr double kInf = std::numeric_limits<double>::infinity();

std::unique_ptr<Partition> make(const std::string& name, const std::map<std::string, msd::Value>& overrides = {}) {
  return msd::test::make_plugin<Partition>("partitions", name, overrides);
}

const msd::PartitionTraits& traits(const std::string& name) {
  return msd::test::find_plugin("partitions", name).info.partition;
}

PartitionContext classes_ctx(std::int64_t num_classes, std::int64_t k, std::uint64_t seed = 0) {
  PartitionContext ctx;
  ctx.num_classes = num_classes;
  ctx.k = k;
  ctx.seed = seed;
  return ctx;
}

PartitionContext noise_ctx(std::int64_t k, double sigma_min = 0.002, double sigma_max = 80.0) {
  PartitionContext ctx;
  ctx.k = k;
  ctx.sigma_min = sigma_min;
  ctx.sigma_max = sigma_max;
  return ctx;
}

std::vector<std::vector<std::int64_t>> classes_of(const std::vector<Cell>& cells) {
  std::vector<std::vector<std::int64_t>> out;
  for (const Cell& cell : cells) out.push_back(cell.classes);
  return out;
}

// Inner boundaries sigma_hi of every cell but the last.
std::vector<double> inner_edges(const std::vector<Cell>& cells) {
  std::vector<double> edges;
  for (size_t i = 0; i + 1 < cells.size(); ++i) edges.push_back(cells[i].sigma_hi);
  return edges;
}

const std::vector<std::pair<std::int64_t, std::int64_t>> kClassCombos{
    {1, 1}, {2, 2}, {7, 2}, {10, 1}, {10, 3}, {10, 4}, {10, 10}, {100, 8}, {1000, 7}};

TEST(Partitions, LibraryDeclaresNinePartitionPluginsWithDocumentedKeys) {
  const msd::PluginLibrary& library = msd::test::load_library("partitions");
  std::vector<std::string> names;
  for (const msd::PluginDescriptor& d : library.plugins) {
    names.push_back(d.info.name);
    EXPECT_EQ(d.info.kind, msd::PluginKind::partition) << d.info.name;
    EXPECT_FALSE(d.info.description.empty()) << d.info.name;
    for (const msd::KeySpec& key : d.info.keys) {
      EXPECT_FALSE(key.doc.empty()) << d.info.name << "." << key.name;
      EXPECT_TRUE(key.default_value.has_value()) << d.info.name << "." << key.name;
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"class_consecutive", "class_random", "class_kmeans", "noise_uniform",
                                             "noise_nonuniform", "noise_timestep_uniform", "noise_equal_nfe",
                                             "noise_difficulty", "class_x_noise"}));
}

// Only k-means asks for the dataset's class features (a pass over its training split to compute), and
// only noise_difficulty for the host's probe (a short training after the teacher's).
TEST(Partitions, OnlyKMeansUsesClassFeaturesAndOnlyDifficultyAProbe) {
  for (const char* name : {"class_consecutive", "class_random", "noise_uniform", "noise_nonuniform",
                           "noise_timestep_uniform", "noise_equal_nfe", "class_x_noise"}) {
    EXPECT_FALSE(traits(name).uses_class_features) << name;
    EXPECT_FALSE(traits(name).uses_probe) << name;
  }
  EXPECT_TRUE(traits("class_kmeans").uses_class_features);
  EXPECT_FALSE(traits("class_kmeans").uses_probe);
  EXPECT_TRUE(traits("noise_difficulty").uses_probe);
  EXPECT_FALSE(traits("noise_difficulty").uses_class_features);
  EXPECT_EQ(traits("noise_difficulty").key, RoutingKey::noise_level);
}

TEST(Partitions, ClassSplitsAreValidAndBalanced) {
  for (const char* name : {"class_consecutive", "class_random"}) {
    const auto partition = make(name);
    EXPECT_EQ(traits(name).key, RoutingKey::condition);
    for (const auto& [num_classes, k] : kClassCombos) {
      SCOPED_TRACE(std::string(name) + " num_classes=" + std::to_string(num_classes) + " k=" + std::to_string(k));
      const std::vector<Cell> cells = partition->split(classes_ctx(num_classes, k, 7));
      ASSERT_EQ(static_cast<std::int64_t>(cells.size()), k);
      EXPECT_NO_THROW(msd::check_partition(cells, RoutingKey::condition, num_classes));
      // The first num_classes % k cells hold one class more.
      for (std::int64_t i = 0; i < k; ++i) {
        const std::int64_t want = num_classes / k + (i < num_classes % k ? 1 : 0);
        EXPECT_EQ(static_cast<std::int64_t>(cells[static_cast<size_t>(i)].classes.size()), want) << "cell " << i;
        EXPECT_FALSE(cells[static_cast<size_t>(i)].label.empty());
      }
    }
  }
}

TEST(Partitions, ConsecutiveCellsHoldRunsOfClasses) {
  const std::vector<Cell> cells = make("class_consecutive")->split(classes_ctx(10, 4));
  EXPECT_EQ(classes_of(cells),
            (std::vector<std::vector<std::int64_t>>{{0, 1, 2}, {3, 4, 5}, {6, 7}, {8, 9}}));
  EXPECT_EQ(cells[0].label, "classes 0-2");
  EXPECT_EQ(make("class_consecutive")->split(classes_ctx(3, 3))[1].label, "class 1");
}

TEST(Partitions, ClassSplitsRejectMoreCellsThanClasses) {
  for (const char* name : {"class_consecutive", "class_random"}) {
    try {
      make(name)->split(classes_ctx(3, 4));
      ADD_FAILURE() << name << " accepted k > num_classes";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
    EXPECT_THROW(make(name)->split(classes_ctx(3, 0)), std::invalid_argument) << name;
  }
}

TEST(Partitions, RandomSplitIsReproducibleAndDependsOnSeed) {
  const auto partition = make("class_random");
  const auto a = classes_of(partition->split(classes_ctx(10, 4, 1)));
  EXPECT_EQ(a, classes_of(partition->split(classes_ctx(10, 4, 1))));
  EXPECT_NE(a, classes_of(partition->split(classes_ctx(10, 4, 2))));
  // Some seed must give a split other than the consecutive one.
  const auto consecutive = classes_of(make("class_consecutive")->split(classes_ctx(10, 4)));
  EXPECT_NE(a, consecutive);
}

TEST(Partitions, ShuffleSeedOverridesRunSeed) {
  const auto fixed = make("class_random", {{"shuffle_seed", std::int64_t{5}}});
  const auto a = classes_of(fixed->split(classes_ctx(10, 4, 1)));
  EXPECT_EQ(a, classes_of(fixed->split(classes_ctx(10, 4, 2))));
  EXPECT_EQ(a, classes_of(make("class_random")->split(classes_ctx(10, 4, 5))));
}

// Pinned: mt19937_64 and the hand-written shuffle are portable, so a run's random split must stay
// the same on every platform and in every later version, or old results cannot be reproduced.
TEST(Partitions, RandomSplitIsPinned) {
  const auto cells = make("class_random")->split(classes_ctx(10, 3, 42));
  EXPECT_EQ(classes_of(cells), (std::vector<std::vector<std::int64_t>>{{0, 1, 7, 9}, {3, 4, 8}, {2, 5, 6}}));
}

TEST(Partitions, NoiseSplitsTileZeroToInfinity) {
  for (const char* name : {"noise_uniform", "noise_nonuniform"}) {
    const auto partition = make(name);
    EXPECT_EQ(traits(name).key, RoutingKey::noise_level);
    for (std::int64_t k : {1, 2, 3, 5, 8, 16}) {
      SCOPED_TRACE(std::string(name) + " k=" + std::to_string(k));
      const std::vector<Cell> cells = partition->split(noise_ctx(k));
      ASSERT_EQ(static_cast<std::int64_t>(cells.size()), k);
      EXPECT_NO_THROW(msd::check_partition(cells, RoutingKey::noise_level, 0));
      EXPECT_EQ(cells.front().sigma_lo, 0.0);
      EXPECT_EQ(cells.back().sigma_hi, kInf);
      for (size_t i = 0; i < cells.size(); ++i) {
        EXPECT_LT(cells[i].sigma_lo, cells[i].sigma_hi);
        if (i + 1 < cells.size()) {
          EXPECT_EQ(cells[i].sigma_hi, cells[i + 1].sigma_lo);
          EXPECT_GT(cells[i].sigma_hi, 0.002);
          EXPECT_LT(cells[i].sigma_hi, 80.0);
        }
        EXPECT_TRUE(cells[i].classes.empty());
      }
      // Every sigma, inside the sampler's range or not, has exactly one student.
      for (double sigma : {0.0, 1e-9, 0.002, 0.5, 80.0, 1e6}) {
        int owners = 0;
        for (const Cell& cell : cells) owners += cell.contains_sigma(sigma) ? 1 : 0;
        EXPECT_EQ(owners, 1) << "sigma " << sigma;
      }
      EXPECT_EQ(cells.front().label.rfind("sigma [0, ", 0), 0u) << cells.front().label;
      EXPECT_EQ(cells.back().label.substr(cells.back().label.size() - 6), ", inf)") << cells.back().label;
    }
  }
}

TEST(Partitions, UniformNoiseEdgesAreEvenInLogSigma) {
  const std::vector<double> edges = inner_edges(make("noise_uniform")->split(noise_ctx(4, 0.01, 100.0)));
  ASSERT_EQ(edges.size(), 3u);
  // log10 spans -2..2 in four equal steps.
  EXPECT_NEAR(edges[0], 0.1, 1e-12);
  EXPECT_NEAR(edges[1], 1.0, 1e-12);
  EXPECT_NEAR(edges[2], 10.0, 1e-10);
  EXPECT_EQ(make("noise_uniform")->split(noise_ctx(4, 0.01, 100.0))[1].label, "sigma [0.1, 1)");
}

TEST(Partitions, NonuniformNoiseCellsAreNarrowerAtLowSigma) {
  const std::vector<double> uniform = inner_edges(make("noise_uniform")->split(noise_ctx(6)));
  const std::vector<double> warped = inner_edges(make("noise_nonuniform")->split(noise_ctx(6)));
  ASSERT_EQ(warped.size(), 5u);
  for (size_t i = 0; i < warped.size(); ++i) EXPECT_LT(warped[i], uniform[i]) << "edge " << i;
  // Widths in log sigma of the cells between inner edges grow with sigma.
  for (size_t i = 0; i + 2 < warped.size(); ++i) {
    EXPECT_LT(std::log(warped[i + 1] / warped[i]), std::log(warped[i + 2] / warped[i + 1])) << "cell " << i + 1;
  }
  // gamma = 1 is the uniform split.
  const auto gamma_one = make("noise_nonuniform", {{"gamma", 1.0}})->split(noise_ctx(6));
  EXPECT_EQ(inner_edges(gamma_one), uniform);
}

TEST(Partitions, NoiseSplitsRejectBadRanges) {
  for (const char* name :
       {"noise_uniform", "noise_nonuniform", "noise_timestep_uniform", "noise_equal_nfe", "noise_difficulty"}) {
    const auto partition = make(name);
    EXPECT_THROW(partition->split(noise_ctx(0)), std::invalid_argument) << name;
    EXPECT_THROW(partition->split(noise_ctx(4, 0.0, 80.0)), std::invalid_argument) << name;
    EXPECT_THROW(partition->split(noise_ctx(4, 10.0, 1.0)), std::invalid_argument) << name;
  }
}

// DDPM with T = 4 and beta = 0.1, 0.2, 0.3, 0.4: abar = 0.9, 0.72, 0.504 after timesteps 1, 2, 3, and
// sigma_t = sqrt(1 / abar_t - 1). Four students take one timestep each; two take timesteps 1-2 and 3-4.
TEST(Partitions, TimestepUniformEdgesAreDdpmsNoiseLevelsAtEqualTimesteps) {
  const auto partition = make("noise_timestep_uniform", {{"timesteps", std::int64_t{4}}, {"beta_start", 0.1},
                                                          {"beta_end", 0.4}});
  EXPECT_EQ(traits("noise_timestep_uniform").key, RoutingKey::noise_level);
  const std::vector<double> four = inner_edges(partition->split(noise_ctx(4)));
  ASSERT_EQ(four.size(), 3u);
  EXPECT_NEAR(four[0], std::sqrt(1 / 0.9 - 1), 1e-12);
  EXPECT_NEAR(four[1], std::sqrt(1 / 0.72 - 1), 1e-12);
  EXPECT_NEAR(four[2], std::sqrt(1 / 0.504 - 1), 1e-12);
  EXPECT_EQ(inner_edges(partition->split(noise_ctx(2))), std::vector<double>{four[1]});
  EXPECT_THROW(partition->split(noise_ctx(5)), std::invalid_argument);  // more students than timesteps
  // O2MKD's CIFAR-10 schedule (the defaults) puts the middle of 1000 timesteps near sigma 3.4, far above
  // the middle of the sampler's range in log sigma (0.4).
  const std::vector<double> ddpm = inner_edges(make("noise_timestep_uniform")->split(noise_ctx(2)));
  ASSERT_EQ(ddpm.size(), 1u);
  EXPECT_GT(ddpm[0], 3.0);
  EXPECT_LT(ddpm[0], 4.0);
}

// Heun at 3 steps evaluates 8 once and 4 and 2 twice each. Two students: the 2 evaluations at sigma 2,
// and the 3 at 4 and 8; three: one level each. Boundaries sit at the geometric mean of their neighbours.
TEST(Partitions, EqualNfeRangesShareTheSamplersEvaluations) {
  const auto partition = make("noise_equal_nfe");
  PartitionContext ctx = noise_ctx(2);
  ctx.sampler_levels = {8.0, 4.0, 4.0, 2.0, 2.0};
  EXPECT_EQ(inner_edges(partition->split(ctx)), std::vector<double>{std::sqrt(8.0)});
  ctx.k = 3;
  EXPECT_EQ(inner_edges(partition->split(ctx)), (std::vector<double>{std::sqrt(8.0), std::sqrt(32.0)}));
  ctx.k = 4;
  EXPECT_THROW(partition->split(ctx), std::invalid_argument);  // more students than levels
  ctx.sampler_levels.clear();
  EXPECT_THROW(partition->split(ctx), std::invalid_argument);

  // EDM's Heun at 18 steps: 35 evaluations; each range gets its share to within one level's two.
  const msd::edm::SamplerOptions heun;
  const std::vector<double> schedule = msd::edm::karras_schedule(heun.num_steps, heun.sigma_min, heun.sigma_max, heun.rho);
  PartitionContext edm = noise_ctx(1);
  for (size_t i = 0; i + 1 < schedule.size(); ++i) {
    edm.sampler_levels.push_back(schedule[i]);
    if (schedule[i + 1] > 0) edm.sampler_levels.push_back(schedule[i + 1]);
  }
  ASSERT_EQ(edm.sampler_levels.size(), 35u);
  for (std::int64_t k : {2, 4, 8}) {
    edm.k = k;
    const std::vector<Cell> cells = partition->split(edm);
    ASSERT_EQ(static_cast<std::int64_t>(cells.size()), k);
    EXPECT_NO_THROW(msd::check_partition(cells, RoutingKey::noise_level, 1));
    for (const Cell& cell : cells) {
      const auto held = std::count_if(edm.sampler_levels.begin(), edm.sampler_levels.end(),
                                      [&](double s) { return cell.contains_sigma(s); });
      EXPECT_NEAR(static_cast<double>(held), 35.0 / static_cast<double>(k), 2.0) << "k = " << k << ", " << cell.label;
    }
  }
}

// The same Heun levels (8 once, 4 and 2 twice), the probe's loss 1 at 8, 1 at 4 and 4 at 2: weights 1,
// 2 and 8 of 11. Two students: sigma 2 alone holds 8 of 11, nearer half than 10 of 11 without it; so
// the low-noise student takes only sigma 2, where equal_nfe gave the same cut. Loss 4 at 8 instead
// (weights 4, 2, 2) moves the cut up: the high-noise student takes sigma 8 alone.
TEST(Partitions, DifficultyRangesShareTheProbesLossOverTheSamplersEvaluations) {
  const auto partition = make("noise_difficulty");
  PartitionContext ctx = noise_ctx(2);
  ctx.sampler_levels = {8.0, 4.0, 4.0, 2.0, 2.0};
  ctx.level_difficulty = {1.0, 1.0, 1.0, 4.0, 4.0};
  EXPECT_EQ(inner_edges(partition->split(ctx)), std::vector<double>{std::sqrt(8.0)});
  ctx.level_difficulty = {4.0, 1.0, 1.0, 1.0, 1.0};
  EXPECT_EQ(inner_edges(partition->split(ctx)), std::vector<double>{std::sqrt(32.0)});
  // Equal losses everywhere: the equal_nfe split.
  ctx.level_difficulty.assign(5, 0.3);
  EXPECT_EQ(inner_edges(partition->split(ctx)), inner_edges(make("noise_equal_nfe")->split(ctx)));
  // Every range keeps one level however lopsided the losses.
  ctx.k = 3;
  ctx.level_difficulty = {100.0, 0.0, 0.0, 0.0, 0.0};
  EXPECT_EQ(inner_edges(partition->split(ctx)), (std::vector<double>{std::sqrt(8.0), std::sqrt(32.0)}));
}

TEST(Partitions, DifficultyTellsTheHostHowToProbe) {
  const msd::ProbeOptions defaults = make("noise_difficulty")->probe_options();
  EXPECT_EQ(defaults.steps, 300);
  EXPECT_EQ(defaults.samples, 256);
  EXPECT_TRUE(defaults.losses.empty());
  const msd::ProbeOptions set =
      make("noise_difficulty", {{"probe_steps", std::int64_t{12}}, {"probe_samples", std::int64_t{5}},
                                {"probe_losses", std::vector<std::string>{"kd_prediction"}}})
          ->probe_options();
  EXPECT_EQ(set.steps, 12);
  EXPECT_EQ(set.samples, 5);
  EXPECT_EQ(set.losses, std::vector<std::string>{"kd_prediction"});
}

TEST(Partitions, DifficultyRefusesAMissingOrBadProbe) {
  const auto partition = make("noise_difficulty");
  PartitionContext ctx = noise_ctx(2);
  ctx.sampler_levels = {8.0, 4.0, 4.0, 2.0, 2.0};
  EXPECT_THROW(partition->split(ctx), std::invalid_argument);  // no probe measured
  for (const std::vector<double>& bad : {std::vector<double>{1.0, 1.0}, std::vector<double>{1.0, 1.0, -1.0, 1.0, 1.0},
                                         std::vector<double>{1.0, std::nan(""), 1.0, 1.0, 1.0},
                                         std::vector<double>(5, 0.0)}) {
    ctx.level_difficulty = bad;
    EXPECT_THROW(partition->split(ctx), std::invalid_argument);
  }
}

// The hybrid cuts sigma as the noise partition of the same name does.
TEST(Partitions, ClassXNoiseCutsSigmaAsTheNoisePartitions) {
  PartitionContext ctx = classes_ctx(4, 4);
  ctx.sampler_levels = {8.0, 4.0, 4.0, 2.0, 2.0};
  const std::vector<double> timestep =
      inner_edges(make("noise_timestep_uniform")->split(noise_ctx(2)));
  const std::vector<double> equal_nfe = {std::sqrt(8.0)};
  for (const auto& [noise, edges] : {std::pair{std::string("timestep_uniform"), timestep},
                                     std::pair{std::string("equal_nfe"), equal_nfe}}) {
    const std::vector<Cell> cells = make("class_x_noise", {{"noise", noise}})->split(ctx);
    ASSERT_EQ(cells.size(), 4u) << noise;
    EXPECT_EQ(cells[0].sigma_hi, edges[0]) << noise;
    EXPECT_EQ(cells[2].sigma_hi, edges[0]) << noise;
  }
}

// The hybrid: class groups x noise ranges, every (class, sigma) in exactly one cell.
TEST(Partitions, ClassXNoiseCellsAreProductsThatTileBothKeys) {
  EXPECT_EQ(traits("class_x_noise").key, RoutingKey::condition_and_noise);
  PartitionContext ctx = classes_ctx(5, 4, 3);
  const std::vector<Cell> cells = make("class_x_noise")->split(ctx);
  ASSERT_EQ(cells.size(), 4u);
  EXPECT_NO_THROW(msd::check_partition(cells, RoutingKey::condition_and_noise, 5));
  EXPECT_EQ(cells[0].classes, (std::vector<std::int64_t>{0, 1, 2}));
  EXPECT_EQ(cells[1].classes, (std::vector<std::int64_t>{0, 1, 2}));
  EXPECT_EQ(cells[2].classes, (std::vector<std::int64_t>{3, 4}));
  EXPECT_EQ(cells[0].sigma_lo, 0.0);
  EXPECT_EQ(cells[0].sigma_hi, cells[1].sigma_lo);
  EXPECT_EQ(cells[1].sigma_hi, kInf);
  EXPECT_EQ(cells[0].label, "classes 0-2, sigma [0, 0.4)");
  for (std::int64_t c = 0; c < 5; ++c) {
    for (double sigma : {0.0, 0.01, 0.5, 79.0, 1e9}) {
      int owners = 0;
      for (const Cell& cell : cells) owners += cell.contains_class(c) && cell.contains_sigma(sigma) ? 1 : 0;
      EXPECT_EQ(owners, 1) << "class " << c << ", sigma " << sigma;
    }
  }
  ctx.k = 5;
  EXPECT_THROW(make("class_x_noise")->split(ctx), std::invalid_argument);
}

// check_partition holds every kind of cell to its key: nothing uncovered, nothing twice.
TEST(Partitions, CheckPartitionRefusesGapsOverlapsAndKeysOfTheWrongKind) {
  const auto cell = [](std::vector<std::int64_t> classes, double lo, double hi) {
    Cell c;
    c.classes = std::move(classes);
    c.sigma_lo = lo;
    c.sigma_hi = hi;
    return c;
  };
  const auto refused = [](const std::vector<Cell>& cells, RoutingKey key, std::int64_t classes) {
    try {
      msd::check_partition(cells, key, classes);
    } catch (const std::invalid_argument& error) {
      return std::string(error.what());
    }
    return std::string("accepted");
  };
  using K = RoutingKey;
  const std::vector<Cell> product{cell({0}, 0, 1), cell({0}, 1, kInf), cell({1}, 0, kInf)};
  EXPECT_EQ(refused(product, K::condition_and_noise, 2), "accepted");
  EXPECT_NE(refused(product, K::condition, 2).find("bounds the noise level"), std::string::npos);
  EXPECT_NE(refused({cell({}, 0, 1), cell({0}, 1, kInf)}, K::noise_level, 1).find("lists classes"), std::string::npos);
  EXPECT_NE(refused({cell({0}, 0, 1), cell({0}, 2, kInf), cell({1}, 0, kInf)}, K::condition_and_noise, 2)
                .find("class 0 is in cell 0 and cell 1, whose noise ranges leave a gap or overlap"),
            std::string::npos);
  EXPECT_NE(refused({cell({0}, 0, kInf)}, K::condition, 2).find("class 1 is in no cell"), std::string::npos);
  EXPECT_NE(refused({cell({0}, 0, kInf), cell({0, 1}, 0, kInf)}, K::condition, 2).find("class 0 is in"),
            std::string::npos);
  EXPECT_NE(refused({cell({}, 0.5, kInf)}, K::noise_level, 0).find("do not start at sigma = 0"), std::string::npos);
  EXPECT_NE(refused({cell({}, 0, 5)}, K::noise_level, 0).find("do not extend to sigma = infinity"), std::string::npos);
  EXPECT_NE(refused({cell({3}, 0, kInf)}, K::condition, 2).find("names class 3 outside 0..1"), std::string::npos);
}

}  // namespace
