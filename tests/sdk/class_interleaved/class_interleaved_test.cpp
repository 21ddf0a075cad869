// The plugin as the host will load it: from its .so, through msd::testing.
#include <gtest/gtest.h>

#include "msd/partition.h"
#include "msd/testing.h"

TEST(ClassInterleaved, SendsClassCToCellCPlusOffsetModK) {
  const msd::PluginLibrary& library = msd::testing::load_library(PLUGIN_FILE);
  const auto partition = msd::testing::make_plugin<msd::Partition>(library, "class_interleaved", {{"offset", std::int64_t{1}}});
  msd::PartitionContext ctx;
  ctx.k = 2;
  ctx.num_classes = 5;
  const std::vector<msd::Cell> cells = partition->split(ctx);
  ASSERT_EQ(cells.size(), 2u);
  EXPECT_EQ(cells[0].classes, (std::vector<std::int64_t>{1, 3}));
  EXPECT_EQ(cells[1].classes, (std::vector<std::int64_t>{0, 2, 4}));
  EXPECT_NO_THROW(msd::check_partition(cells, msd::RoutingKey::condition, 5));
}
