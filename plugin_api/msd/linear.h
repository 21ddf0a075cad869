// Linear layers whose matrix products run through oneDNN's GEMM on the CPU.
//
// Why: LibTorch's own products go to OpenBLAS, whose speed at the toy networks' small shapes depends
// on the kernel it is told or picks (OPENBLAS_CORETYPE): about 100 GFLOP/s a core with its AVX2
// kernels, 160-190 with its AVX-512 ones. oneDNN, which LibTorch links for its convolutions, picks its
// kernels from the CPU at run time and reaches 190-220 at the same shapes, forward and backward
// (docs/BENCHMARKS.md, "Linear layers").
#pragma once

#include <cstdint>

#include <torch/nn/modules/linear.h>
#include <torch/types.h>

namespace msd {

/// layer(x), the value torch::nn::Linear computes, to float rounding, with its gradients. x is
/// [..., in]. On the CPU in float32 the products (forward, and the input and weight gradients) run
/// through oneDNN's GEMM; elsewhere, and under autocast, through torch::nn::functional::linear.
torch::Tensor linear(const torch::nn::LinearImpl& layer, const torch::Tensor& x);

/// K linear layers at once, one per member of a grouped network: x [K, B, in], weight [K, out, in],
/// bias [K, out] (or undefined) give [K, B, out], member k's block being x[k] weight[k]^T + bias[k].
/// On the CPU in float32 the members' products run in parallel, one oneDNN GEMM per member and
/// thread; elsewhere, and under autocast, through torch::baddbmm. Gradients as for K separate layers.
torch::Tensor grouped_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

/// The name each of these products is recorded under (at::RecordFunction, so that a FLOP counter
/// sees it), with four integer inputs: members, rows, columns, depth (2 x their product FLOPs).
inline constexpr const char* kGemmRecordName = "msd::gemm";

}  // namespace msd
