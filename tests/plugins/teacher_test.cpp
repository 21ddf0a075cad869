// What the built-in EDM teachers tell the host about their training: the noise levels they learnt,
// which students trained on noised real data draw from.
#include <gtest/gtest.h>

#include "load_plugin.h"
#include "msd/teacher.h"

namespace {

TEST(EdmTeacher, NoisePriorIsItsTrainingPrior) {
  const auto defaults = msd::test::make_plugin<msd::Teacher>("toy_mlp", "edm_mlp")->noise_prior();
  EXPECT_EQ(defaults.p_mean, msd::edm::kPMean);
  EXPECT_EQ(defaults.p_std, msd::edm::kPStd);
  const auto set = msd::test::make_plugin<msd::Teacher>("toy_mlp", "edm_mlp", {{"p_mean", 0.5}, {"p_std", 2.0}})
                       ->noise_prior();
  EXPECT_EQ(set.p_mean, 0.5);
  EXPECT_EQ(set.p_std, 2.0);
}

}  // namespace
