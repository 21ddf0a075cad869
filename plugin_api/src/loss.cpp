#include "msd/loss.h"

#include <torch/torch.h>

namespace msd {

torch::Tensor draw_per_member(const StepContext& ctx, std::int64_t members,
                              const std::function<torch::Tensor(const Random&)>& draw) {
  if (members == 1) return draw(ctx.random(0));
  std::vector<torch::Tensor> blocks;
  for (std::int64_t k = 0; k < members; ++k) blocks.push_back(draw(ctx.random(k)));
  return torch::cat(blocks);
}

torch::Tensor mean_per_member(const torch::Tensor& values, std::int64_t members) {
  if (members == 1) return values.mean();
  return values.reshape({members, -1}).mean(1);
}

}  // namespace msd
