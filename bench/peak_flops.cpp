// This machine's fp32 peak as LibTorch reaches it: the fastest of its matrix-product (BLAS), linear
// (BLAS, or oneDNN's GEMM through msd::linear) and convolution (oneDNN) kernels over a set of shapes, those
// of the study's networks among them, with the given threads. Speeds elsewhere (a run's
// flops_per_second) read as a fraction of it.
//
//   msd_peak_bench [--threads T] [--seconds S]
//
// Prints one line per kernel and shape, then "peak GFLOPS KERNEL".
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "msd/linear.h"

namespace {

struct Kernel {
  std::string name;
  double flops;                   ///< per call
  std::function<void()> call;
};

/// Calls per second of `kernel`, timed for about `seconds` after a warm-up call.
double calls_per_second(const Kernel& kernel, double seconds) {
  kernel.call();
  std::int64_t calls = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0.0;
  while (elapsed < seconds) {
    kernel.call();
    ++calls;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return static_cast<double>(calls) / elapsed;
}

Kernel matmul(std::int64_t m, std::int64_t k, std::int64_t n) {
  auto a = std::make_shared<torch::Tensor>(torch::randn({m, k}));
  auto b = std::make_shared<torch::Tensor>(torch::randn({k, n}));
  auto out = std::make_shared<torch::Tensor>(torch::empty({m, n}));
  return {"mm " + std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n), 2.0 * m * k * n,
          [a, b, out] { torch::mm_out(*out, *a, *b); }};
}

/// A linear layer of `in` to `out` features on a batch of `rows`, as torch::nn::Linear runs it
/// (OpenBLAS's GEMM) or as msd::linear does (oneDNN's GEMM).
Kernel linear(std::int64_t rows, std::int64_t in, std::int64_t out, bool through_msd_linear) {
  auto layer = std::make_shared<torch::nn::Linear>(in, out);
  auto x = std::make_shared<torch::Tensor>(torch::randn({rows, in}));
  std::function<void()> call = [layer, x] { (*layer)->forward(*x); };
  if (through_msd_linear) call = [layer, x] { msd::linear(**layer, *x); };
  return {"linear " + std::to_string(rows) + "x" + std::to_string(in) + "->" + std::to_string(out) +
              (through_msd_linear ? " msd::linear" : " torch::nn::Linear"),
          2.0 * rows * in * out, call};
}

/// A 3x3 convolution, stride 1, padding 1, of a batch [n, c, size, size] to `c_out` channels.
Kernel convolution(std::int64_t n, std::int64_t c, std::int64_t c_out, std::int64_t size, bool channels_last) {
  const auto format = channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  auto x = std::make_shared<torch::Tensor>(torch::randn({n, c, size, size}).contiguous(format));
  auto w = std::make_shared<torch::Tensor>(torch::randn({c_out, c, 3, 3}).contiguous(format));
  const double flops = 2.0 * n * c_out * size * size * c * 9;
  return {"conv3x3 " + std::to_string(n) + "x" + std::to_string(c) + "x" + std::to_string(size) + "x" +
              std::to_string(size) + "->" + std::to_string(c_out) + (channels_last ? " channels_last" : " contiguous"),
          flops, [x, w] { torch::conv2d(*x, *w, {}, 1, 1); }};
}

double option(int argc, char** argv, const std::string& name, double fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return std::stod(argv[i + 1]);
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  torch::set_num_threads(static_cast<int>(option(argc, argv, "--threads", 2)));
  const double seconds = option(argc, argv, "--seconds", 1.0);
  torch::NoGradGuard no_grad;
  std::vector<Kernel> kernels{matmul(512, 512, 512), matmul(1024, 1024, 1024), matmul(2048, 2048, 2048),
                              matmul(512, 128, 128),  // the toy MLP at batch 512
                              matmul(128, 128, 128)};
  for (const bool through_msd_linear : {false, true}) {  // the toy MLP's layers, training and sampling
    kernels.push_back(linear(128, 128, 128, through_msd_linear));
    kernels.push_back(linear(512, 128, 128, through_msd_linear));
    kernels.push_back(linear(2048, 128, 128, through_msd_linear));
    kernels.push_back(linear(2048, 64, 128, through_msd_linear));
  }
  for (const bool last : {false, true}) {
    kernels.push_back(convolution(256, 32, 32, 28, last));  // the study UNet's levels at batch 256
    kernels.push_back(convolution(256, 64, 64, 14, last));
    kernels.push_back(convolution(256, 64, 64, 7, last));
    kernels.push_back(convolution(64, 128, 128, 14, last));
  }
  double best = 0.0;
  std::string best_name;
  for (const Kernel& kernel : kernels) {
    const double gflops = kernel.flops * calls_per_second(kernel, seconds) / 1e9;
    std::printf("%-44s %9.1f GFLOP/s\n", kernel.name.c_str(), gflops);
    if (gflops > best) {
      best = gflops;
      best_name = kernel.name;
    }
  }
  std::printf("peak %.1f %s\n", best, best_name.c_str());
  return 0;
}
