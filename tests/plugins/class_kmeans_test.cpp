// The class_kmeans partition on synthetic per-class features, loaded from libmsd_partitions.so.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "load_plugin.h"
#include "msd/partition.h"

namespace {

using msd::Cell;
using msd::PartitionContext;

std::unique_ptr<msd::Partition> kmeans(const std::map<std::string, msd::Value>& overrides = {}) {
  return msd::test::make_plugin<msd::Partition>("partitions", "class_kmeans", overrides);
}

/// `groups` tight clusters far apart in 3-D; class c belongs to group group_of[c].
PartitionContext clustered(const std::vector<std::int64_t>& group_of, std::int64_t k, std::uint64_t seed = 0) {
  std::mt19937_64 rng(12345);
  std::normal_distribution<double> jitter(0.0, 0.05);
  PartitionContext ctx;
  ctx.k = k;
  ctx.num_classes = static_cast<std::int64_t>(group_of.size());
  ctx.seed = seed;
  for (std::int64_t g : group_of) {
    const double centre = 10.0 * static_cast<double>(g);
    ctx.class_features.push_back({centre + jitter(rng), -centre + jitter(rng), 0.5 * centre + jitter(rng)});
  }
  return ctx;
}

std::set<std::vector<std::int64_t>> cell_sets(const std::vector<Cell>& cells) {
  std::set<std::vector<std::int64_t>> sets;
  for (const Cell& cell : cells) sets.insert(cell.classes);
  return sets;
}

TEST(ClassKMeans, RecoversObviousClusters) {
  // Classes interleaved over three groups of unequal size (4, 3, 3).
  const std::vector<std::int64_t> group_of{0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
  const std::set<std::vector<std::int64_t>> expected{{0, 3, 6, 9}, {1, 4, 7}, {2, 5, 8}};
  for (bool balanced : {false, true}) {
    for (std::uint64_t seed : {0u, 1u, 2u}) {
      const PartitionContext ctx = clustered(group_of, 3, seed);
      const std::vector<Cell> cells = kmeans({{"balanced", balanced}})->split(ctx);
      msd::check_partition(cells, msd::RoutingKey::condition, ctx.num_classes);
      EXPECT_EQ(cell_sets(cells), expected) << "balanced " << balanced << ", seed " << seed;
    }
  }
}

TEST(ClassKMeans, BalancedGivesEqualSizesOnUnevenClusters) {
  // Six classes in one group, four in two groups far from it; k = 2 balanced must give 5 + 5.
  const std::vector<std::int64_t> group_of{0, 0, 0, 0, 0, 0, 3, 3, 4, 4};
  const PartitionContext ctx = clustered(group_of, 2);
  const std::vector<Cell> balanced = kmeans({{"balanced", true}})->split(ctx);
  msd::check_partition(balanced, msd::RoutingKey::condition, ctx.num_classes);
  EXPECT_EQ(balanced[0].classes.size(), 5u);
  EXPECT_EQ(balanced[1].classes.size(), 5u);
  // Plain k-means keeps the big group together instead.
  const std::vector<Cell> plain = kmeans({{"balanced", false}})->split(ctx);
  msd::check_partition(plain, msd::RoutingKey::condition, ctx.num_classes);
  EXPECT_EQ(plain[0].classes, (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5}));
}

TEST(ClassKMeans, AlwaysAValidPartitionAndDeterministic) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal;
  for (std::int64_t num_classes : {1, 5, 10, 37}) {
    for (std::int64_t k : {std::int64_t{1}, std::int64_t{2}, std::int64_t{4}, num_classes}) {
      if (k > num_classes) continue;
      PartitionContext ctx;
      ctx.k = k;
      ctx.num_classes = num_classes;
      ctx.seed = static_cast<std::uint64_t>(num_classes * 100 + k);
      // Random features, some classes sharing identical vectors (ties, empty clusters).
      for (std::int64_t c = 0; c < num_classes; ++c) {
        if (c % 3 == 2) {
          ctx.class_features.push_back(ctx.class_features.back());
        } else {
          ctx.class_features.push_back({normal(rng), normal(rng)});
        }
      }
      for (bool balanced : {false, true}) {
        const auto partition = kmeans({{"balanced", balanced}, {"restarts", std::int64_t{3}}});
        const std::vector<Cell> cells = partition->split(ctx);
        EXPECT_NO_THROW(msd::check_partition(cells, msd::RoutingKey::condition, num_classes))
            << num_classes << " classes, k = " << k;
        ASSERT_EQ(static_cast<std::int64_t>(cells.size()), k);
        EXPECT_EQ(cell_sets(partition->split(ctx)), cell_sets(cells));
        if (balanced) {
          for (const Cell& cell : cells) {
            EXPECT_GE(static_cast<std::int64_t>(cell.classes.size()), num_classes / k);
            EXPECT_LE(static_cast<std::int64_t>(cell.classes.size()), (num_classes + k - 1) / k);
          }
        }
      }
    }
  }
}

TEST(ClassKMeans, NeedsClassFeatures) {
  PartitionContext ctx;
  ctx.k = 2;
  ctx.num_classes = 10;
  try {
    kmeans()->split(ctx);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("dataset provides no class features; use class_consecutive or class_random"),
              std::string::npos)
        << e.what();
  }
}

TEST(ClassKMeans, RejectsInconsistentFeatures) {
  PartitionContext ctx = clustered({0, 1, 1}, 2);
  ctx.class_features[1].push_back(0.0);
  EXPECT_THROW(kmeans()->split(ctx), std::invalid_argument);
  ctx = clustered({0, 1, 1}, 2);
  ctx.num_classes = 4;
  EXPECT_THROW(kmeans()->split(ctx), std::invalid_argument);
  EXPECT_THROW(kmeans()->split(clustered({0, 1}, 3)), std::invalid_argument);  // k > classes
}

}  // namespace
