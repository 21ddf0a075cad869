// Floating-point operations, counted as LibTorch runs them, so that a speed can be read as a fraction
// of what the machine can do (bench/peak_flops.cpp measures that).
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "msd/denoiser.h"

namespace msd::host {

/// While alive, counts the multiply-adds (2 FLOPs each) of the matrix products and convolutions that
/// this thread runs through LibTorch's dispatcher, its backward passes included (whichever thread
/// runs them): aten::mm, addmm, bmm, baddbmm, convolution and convolution_backward, and the products
/// of msd::linear and msd::grouped_linear (msd::kGemmRecordName).
/// Element-wise work is not counted, as is usual: it is a small share of these networks'
/// arithmetic, though not of their time. Counting adds a little
/// overhead to every operation, so count a representative step, not a whole phase. Counters nest, on
/// the thread of the outermost.
class FlopCounter {
 public:
  FlopCounter();
  ~FlopCounter();
  FlopCounter(const FlopCounter&) = delete;
  FlopCounter& operator=(const FlopCounter&) = delete;

  /// FLOPs counted so far.
  double flops() const;

 private:
  std::uint64_t start_ = 0;  ///< the shared count when this counter started
};

/// FLOPs of one forward pass of `net`, and of one forward and backward pass (the weights' gradients,
/// as training computes them), per sample. Counted on a batch of 2 in eval mode from a private
/// generator, so the run's random numbers, the network's gradients and its mode are as they were.
struct NetworkFlops {
  double forward = 0.0;
  double training = 0.0;
};
NetworkFlops count_network_flops(Denoiser& net, const std::vector<std::int64_t>& sample_shape,
                                 const torch::Device& device);

}  // namespace msd::host
