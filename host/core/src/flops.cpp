#include "msd/host/pipeline/flops.h"

#include <atomic>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include <ATen/record_function.h>
#include <torch/torch.h>

#include "msd/linear.h"

namespace msd::host {

namespace {

// One callback counts for every live counter, which read the difference since they started. It is
// registered for the thread of the first counter; LibTorch hands it on to the threads that run that
// thread's backward passes (on a GPU), so the count itself is shared.
std::atomic<std::uint64_t> counted{0};
std::mutex registration;
int live_counters = 0;
at::CallbackHandle callback = at::INVALID_CALLBACK_HANDLE;

std::vector<std::int64_t> sizes(const c10::IValue& value) {
  return value.isTensor() ? value.toTensor().sizes().vec() : std::vector<std::int64_t>{};
}

double product(const std::vector<std::int64_t>& values, std::size_t from = 0) {
  double p = 1.0;
  for (std::size_t i = from; i < values.size(); ++i) p *= static_cast<double>(values[i]);
  return p;
}

/// Multiply-adds of a convolution with output [N, Cout, ...] and weight [Cout, Cin / groups, k...].
double convolution_macs(const std::vector<std::int64_t>& output, const std::vector<std::int64_t>& weight) {
  if (output.size() < 3 || weight.size() < 3) return 0.0;
  return product(output) * product(weight, 1);
}

/// Output sizes of a convolution (not transposed) from its input, weight, stride, padding, dilation.
std::vector<std::int64_t> convolution_output(const std::vector<std::int64_t>& input, const std::vector<std::int64_t>& weight,
                                             const std::vector<std::int64_t>& stride, const std::vector<std::int64_t>& padding,
                                             const std::vector<std::int64_t>& dilation) {
  std::vector<std::int64_t> out{input[0], weight[0]};
  for (std::size_t d = 2; d < input.size(); ++d) {
    const std::size_t i = d - 2;
    const std::int64_t s = stride.size() > i ? stride[i] : 1, p = padding.size() > i ? padding[i] : 0;
    const std::int64_t dl = dilation.size() > i ? dilation[i] : 1;
    out.push_back((input[d] + 2 * p - dl * (weight[d] - 1) - 1) / s + 1);
  }
  return out;
}

double operation_flops(const at::RecordFunction& fn) {
  const char* name = fn.name();
  const auto inputs = fn.inputs();
  if (std::strcmp(name, "aten::mm") == 0 && inputs.size() >= 2) {
    const auto a = sizes(inputs[0]), b = sizes(inputs[1]);
    return a.size() == 2 && b.size() == 2 ? 2.0 * a[0] * a[1] * b[1] : 0.0;
  }
  if (std::strcmp(name, "aten::addmm") == 0 && inputs.size() >= 3) {
    const auto a = sizes(inputs[1]), b = sizes(inputs[2]);
    return a.size() == 2 && b.size() == 2 ? 2.0 * a[0] * a[1] * b[1] : 0.0;
  }
  if (std::strcmp(name, kGemmRecordName) == 0 && inputs.size() == 4) {  // msd::linear, msd::grouped_linear
    double macs = 1.0;
    for (const c10::IValue& dimension : inputs) macs *= static_cast<double>(dimension.toInt());
    return 2.0 * macs;
  }
  const bool bmm = std::strcmp(name, "aten::bmm") == 0, baddbmm = std::strcmp(name, "aten::baddbmm") == 0;
  if ((bmm || baddbmm) && inputs.size() >= (bmm ? 2u : 3u)) {
    const auto a = sizes(inputs[bmm ? 0 : 1]), b = sizes(inputs[bmm ? 1 : 2]);
    return a.size() == 3 && b.size() == 3 ? 2.0 * a[0] * a[1] * a[2] * b[2] : 0.0;
  }
  if (std::strcmp(name, "aten::convolution") == 0 && inputs.size() >= 7 && !inputs[6].toBool()) {
    const auto weight = sizes(inputs[1]);
    const auto output = convolution_output(sizes(inputs[0]), weight, inputs[3].toIntVector(), inputs[4].toIntVector(),
                                           inputs[5].toIntVector());
    return 2.0 * convolution_macs(output, weight);
  }
  if (std::strcmp(name, "aten::convolution_backward") == 0 && inputs.size() >= 11 && !inputs[7].toBool()) {
    // grad_output, input, weight, bias_sizes, stride, padding, dilation, transposed, output_padding,
    // groups, output_mask: each of the input and weight gradients costs what the forward pass did.
    const double forward = 2.0 * convolution_macs(sizes(inputs[0]), sizes(inputs[2]));
    const auto mask = inputs[10].toBoolList();
    return forward * ((mask.size() > 0 && mask[0] ? 1 : 0) + (mask.size() > 1 && mask[1] ? 1 : 0));
  }
  return 0.0;
}

std::unique_ptr<at::ObserverContext> on_operation(const at::RecordFunction& fn) {
  if (fn.scope() == at::RecordScope::FUNCTION) counted += static_cast<std::uint64_t>(operation_flops(fn));
  return nullptr;
}

}  // namespace

FlopCounter::FlopCounter() {
  const std::lock_guard<std::mutex> lock(registration);
  if (live_counters++ == 0) {
    callback = at::addThreadLocalCallback(at::RecordFunctionCallback(on_operation).needsInputs(true));
  }
  start_ = counted.load();
}

FlopCounter::~FlopCounter() {
  const std::lock_guard<std::mutex> lock(registration);
  if (--live_counters == 0) at::removeCallback(callback);
}

double FlopCounter::flops() const { return static_cast<double>(counted.load() - start_); }

NetworkFlops count_network_flops(Denoiser& net, const std::vector<std::int64_t>& sample_shape, const torch::Device& device) {
  constexpr std::int64_t kBatch = 2;
  const bool was_training = net.is_training();
  std::vector<std::int64_t> shape = sample_shape;
  shape.insert(shape.begin(), kBatch);
  at::Generator private_generator = at::make_generator<at::CPUGeneratorImpl>(0);
  const torch::Tensor x = at::randn(shape, private_generator, torch::TensorOptions().dtype(torch::kFloat32)).to(device);
  const torch::Tensor sigma = torch::ones({kBatch}, torch::TensorOptions().device(device));
  const torch::Tensor labels = torch::zeros({kBatch}, torch::TensorOptions().dtype(torch::kInt64).device(device));
  net.eval();
  NetworkFlops flops;
  {
    torch::NoGradGuard no_grad;
    const FlopCounter counter;
    net.denoise(x, sigma, labels);
    flops.forward = counter.flops() / kBatch;
  }
  {
    std::vector<bool> trainable;
    std::vector<torch::Tensor> grads;
    for (torch::Tensor& p : net.parameters()) {
      trainable.push_back(p.requires_grad());
      grads.push_back(p.grad());
      p.mutable_grad() = torch::Tensor();
      p.requires_grad_(true);
    }
    {
      const FlopCounter counter;
      net.denoise(x, sigma, labels).sum().backward();
      flops.training = counter.flops() / kBatch;
    }
    std::size_t i = 0;
    for (torch::Tensor& p : net.parameters()) {
      p.mutable_grad() = grads[i];
      p.requires_grad_(trainable[i++]);
    }
  }
  net.train(was_training);
  return flops;
}

}  // namespace msd::host
