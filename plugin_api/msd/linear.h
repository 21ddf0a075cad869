// A linear layer's forward pass that picks the faster of LibTorch's two CPU kernels for it.
#pragma once

#include <torch/nn/modules/linear.h>
#include <torch/types.h>

namespace msd {

/// layer(x), the value torch::nn::Linear computes, to float rounding. Where no gradient is needed and
/// the product is large (x a CPU float matrix of at least kOneDnnMinRows rows, the layer at least
/// kOneDnnMinOutputs outputs), it runs through oneDNN's inner product instead of OpenBLAS's GEMM:
/// about 1.9x faster for [2048, 128] x [128, 128] on 2 cores, including the two layout conversions
/// oneDNN needs; below those sizes its fixed cost of about 50 us per call loses (docs/BENCHMARKS.md,
/// "Linear layers"). Sampling and evaluation, which run large batches without gradients, gain most.
torch::Tensor linear(const torch::nn::LinearImpl& layer, const torch::Tensor& x);

inline constexpr std::int64_t kOneDnnMinRows = 1024;   ///< batch rows from which oneDNN pays
inline constexpr std::int64_t kOneDnnMinOutputs = 32;  ///< outputs from which oneDNN pays

}  // namespace msd
