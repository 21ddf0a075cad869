#include "msd/linear.h"

#include <dnnl.h>

#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>
#include <torch/autograd.h>

namespace msd {

namespace {

/// One row-major product per member, C[m] = op(A[m]) op(B[m]) (+ C[m] when accumulate), through
/// oneDNN's GEMM: rows x depth times depth x columns. Members run in parallel, each on one thread;
/// a single member gets all of oneDNN's threads. Recorded under kGemmRecordName.
struct MemberGemm {
  std::int64_t members, rows, columns, depth;
  bool transpose_a, transpose_b;

  void run(const torch::Tensor& a, const torch::Tensor& b, torch::Tensor& c, bool accumulate) const {
    RECORD_FUNCTION(kGemmRecordName, std::vector<c10::IValue>({members, rows, columns, depth}));
    const float* a_data = a.data_ptr<float>();
    const float* b_data = b.data_ptr<float>();
    float* c_data = c.data_ptr<float>();
    const std::int64_t a_size = rows * depth, b_size = depth * columns, c_size = rows * columns;
    const std::int64_t lda = transpose_a ? rows : depth, ldb = transpose_b ? depth : columns;
    at::parallel_for(0, members, 1, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t m = begin; m < end; ++m) {
        const dnnl_status_t status =
            dnnl_sgemm(transpose_a ? 'T' : 'N', transpose_b ? 'T' : 'N', rows, columns, depth, 1.0f,
                       a_data + m * a_size, lda, b_data + m * b_size, ldb, accumulate ? 1.0f : 0.0f,
                       c_data + m * c_size, columns);
        if (status != dnnl_success) {
          throw std::runtime_error("oneDNN's GEMM failed with status " + std::to_string(status));
        }
      }
    });
  }
};

/// Shapes of one call: weight [out, in] or [members, out, in]; x [..., in] with members blocks of
/// equal size along its leading dimensions.
struct LinearShape {
  std::int64_t members, rows, in, out;

  LinearShape(const torch::Tensor& x, const torch::Tensor& weight)
      : members(weight.dim() == 3 ? weight.size(0) : 1),
        rows(x.numel() / (members * weight.size(-1))),
        in(weight.size(-1)),
        out(weight.size(-2)) {}
};

/// x W^T + b with hand-written gradients through MemberGemm; an empty bias (numel 0) stands for none,
/// as autograd functions take no undefined inputs. A backward pass that builds a graph (create_graph)
/// computes with LibTorch's own products instead, so that it can be differentiated: it reads the
/// inputs themselves, saved as given, not their contiguous copies, which have no graph.
class GemmLinear : public torch::autograd::Function<GemmLinear> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias) {
    const torch::Tensor xc = x.contiguous(), wc = weight.contiguous();
    const LinearShape s(xc, wc);
    std::vector<std::int64_t> out_sizes = x.sizes().vec();
    out_sizes.back() = s.out;
    torch::Tensor y = torch::empty(out_sizes, x.options());
    const bool has_bias = bias.numel() > 0;
    if (has_bias) y.view({s.members, s.rows, s.out}).copy_(bias.reshape({s.members, 1, s.out}));
    MemberGemm{s.members, s.rows, s.out, s.in, false, true}.run(xc, wc, y, has_bias);
    ctx->save_for_backward({x, weight});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &weight = saved[1];
    const LinearShape s(x, weight);
    const torch::Tensor dy = grads[0].contiguous();
    torch::Tensor dx, dweight, dbias;
    if (torch::GradMode::is_enabled()) {  // create_graph: differentiable products
      const torch::Tensor dy3 = dy.view({s.members, s.rows, s.out}), x3 = x.reshape({s.members, s.rows, s.in});
      const torch::Tensor w3 = weight.reshape({s.members, s.out, s.in});
      if (ctx->needs_input_grad(0)) dx = torch::bmm(dy3, w3).view(x.sizes());
      if (ctx->needs_input_grad(1)) dweight = torch::bmm(dy3.transpose(1, 2), x3).view(weight.sizes());
    } else {
      if (ctx->needs_input_grad(0)) {
        dx = torch::empty(x.sizes(), x.options());
        MemberGemm{s.members, s.rows, s.in, s.out, false, false}.run(dy, weight.contiguous(), dx, false);
      }
      if (ctx->needs_input_grad(1)) {
        dweight = torch::empty(weight.sizes(), weight.options());
        MemberGemm{s.members, s.out, s.in, s.rows, true, false}.run(dy, x.contiguous(), dweight, false);
      }
    }
    if (ctx->needs_input_grad(2)) {  // false for the empty stand-in: it needs no gradient
      dbias = dy.view({s.members, s.rows, s.out}).sum(1);
      if (weight.dim() == 2) dbias = dbias.view({s.out});
    }
    return {dx, dweight, dbias};
  }
};

/// Whether GemmLinear takes the call: CPU float32 tensors of matching shapes, outside CPU autocast
/// (anything else goes to LibTorch's kernels: autocast must see the products to run them in bf16,
/// and LibTorch gives the error messages for shapes that do not fit).
bool gemm_applies(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  auto cpu_float = [](const torch::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == torch::kFloat; };
  const std::int64_t members = weight.dim() == 3 ? weight.size(0) : 1;
  const bool bias_fits = !bias.defined() || (cpu_float(bias) && bias.numel() == members * weight.size(-2));
  return !at::autocast::is_cpu_enabled() && cpu_float(x) && cpu_float(weight) && bias_fits && x.numel() > 0 &&
         x.size(-1) == weight.size(-1);
}

torch::Tensor bias_or_empty(const torch::Tensor& bias) { return bias.defined() ? bias : torch::empty({0}); }

}  // namespace

torch::Tensor linear(const torch::nn::LinearImpl& layer, const torch::Tensor& x) {
  if (!gemm_applies(x, layer.weight, layer.bias)) return torch::nn::functional::linear(x, layer.weight, layer.bias);
  return GemmLinear::apply(x, layer.weight, bias_or_empty(layer.bias));
}

torch::Tensor grouped_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  if (x.dim() != 3 || weight.dim() != 3 || x.size(0) != weight.size(0) || x.size(2) != weight.size(2) ||
      (bias.defined() && (bias.dim() != 2 || bias.size(0) != weight.size(0) || bias.size(1) != weight.size(1)))) {
    throw std::invalid_argument("grouped_linear takes x [K, B, in], weight [K, out, in] and bias [K, out]; got x " +
                                c10::str(x.sizes()) + ", weight " + c10::str(weight.sizes()) + ", bias " +
                                (bias.defined() ? c10::str(bias.sizes()) : std::string("none")));
  }
  if (gemm_applies(x, weight, bias)) return GemmLinear::apply(x, weight, bias_or_empty(bias));
  if (!bias.defined()) return torch::bmm(x, weight.transpose(1, 2));
  return torch::baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2));
}

}  // namespace msd
