// Decoder-layer ops as single autograd nodes with hand-written backward: each replaces 4–8 small
// ops, which matters because a 7B LoRA step on the GPU is bound by how fast the host can queue
// kernels, not by the GPU. The math is the composite's (transformers' Qwen2/Llama modules).
#include <torch/csrc/autograd/custom_function.h>

#include "tensor.h"

namespace svdlora {

#define ENV info.Env()
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// silu(gate) · up, keeping only gate and up for backward (the composite also keeps silu(gate)).
struct SwiGLU : public torch::autograd::Function<SwiGLU> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate, const at::Tensor& up) {
    ctx->save_for_backward({gate, up});
    return at::silu(gate) * up;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &gate = saved[0], &up = saved[1], &g = grads[0];
    return {at::silu_backward(g * up, gate), g * at::silu(gate)};
  }
};

// RMSNorm as transformers computes it: normalize in float32 (float64 stays float64), cast back,
// then scale by the weight. Keeps x (not a float32 copy) and the [.., 1] inverse RMS for backward.
static at::ScalarType Compute(const at::Tensor& x) { return at::promote_types(x.scalar_type(), at::kFloat); }
struct RmsNorm : public torch::autograd::Function<RmsNorm> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double eps) {
    auto xf = x.to(Compute(x));
    auto r = at::rsqrt(xf.square().mean(-1, true).add_(eps));
    ctx->save_for_backward({x, r, weight});
    return (xf * r).to(x.scalar_type()) * weight;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &r = saved[1], &weight = saved[2], &dy = grads[0];
    auto xhat = x.to(Compute(x)) * r;
    at::Tensor dx, dw;
    if (ctx->needs_input_grad(0)) {
      auto g = (dy * weight).to(Compute(x));
      dx = (r * (g - xhat * (g * xhat).mean(-1, true))).to(x.scalar_type());
    }
    if (ctx->needs_input_grad(1)) {
      auto all = dy * xhat.to(x.scalar_type());
      dw = all.reshape({-1, all.size(-1)}).sum(0).to(weight.scalar_type());
    }
    return {dx, dw, at::Tensor()};
  }
};

// Non-interleaved rotary embedding x·cos + rotate_half(x)·sin, cos and sin broadcastable to x.
static at::Tensor RotateHalf(const at::Tensor& x, bool transpose) {
  int64_t half = x.size(-1) / 2;
  auto a = x.narrow(-1, 0, half), b = x.narrow(-1, half, half);
  return transpose ? at::cat({b, -a}, -1) : at::cat({-b, a}, -1);
}
struct Rope : public torch::autograd::Function<Rope> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    return x * cos + RotateHalf(x, false) * sin;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &cos = saved[0], &sin = saved[1], &dy = grads[0];
    return {dy * cos + RotateHalf(dy * sin, true), at::Tensor(), at::Tensor()};
  }
};

// A frozen linear layer with its LoRA beside it, y = x Wᵀ + b + s·(x Aᵀ) Bᵀ, as one node. The
// factors (float32) are cast to x's dtype for the pass, as under autocast; their gradients come
// back in their own dtype. Keeps x and the rank-r x Aᵀ for backward. The bias gets no gradient
// (callers pass a frozen one) and comes last, so the tensor inputs keep their edge numbers in
// every libtorch version whether or not an optional counts as one.
struct LoraLinear : public torch::autograd::Function<LoraLinear> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& A,
                            const at::Tensor& B, double scaling, const c10::optional<at::Tensor>& bias) {
    auto xa = at::linear(x, A.to(x.scalar_type()));
    auto y = at::linear(x, weight, bias);
    y.add_(at::linear(xa, B.to(x.scalar_type())), scaling);
    ctx->save_for_backward({x, weight, A, B, xa});
    ctx->saved_data["scaling"] = scaling;
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &weight = saved[1], &A = saved[2], &B = saved[3], &xa = saved[4], &dy = grads[0];
    double s = ctx->saved_data["scaling"].toDouble();
    auto dt = x.scalar_type();
    auto flat = [](const at::Tensor& t) { return t.reshape({-1, t.size(-1)}); };
    auto dyB = at::matmul(dy, B.to(dt)).mul_(s);  // [.., r]
    at::Tensor dx, dW, dA, dB;
    if (ctx->needs_input_grad(0)) dx = at::matmul(dy, weight).add_(at::matmul(dyB, A.to(dt)));
    if (ctx->needs_input_grad(1)) dW = flat(dy).t().mm(flat(x));
    if (ctx->needs_input_grad(2)) dA = flat(dyB).t().mm(flat(x)).to(A.scalar_type());
    if (ctx->needs_input_grad(3)) dB = flat(dy).t().mm(flat(xa)).mul_(s).to(B.scalar_type());
    return {dx, dW, dA, dB, at::Tensor(), at::Tensor()};
  }
};

static Napi::Value LoraLinearOp(const Napi::CallbackInfo& info) {
  auto bias = OptT(info, 2);
  TORCH_CHECK(!bias || !bias->requires_grad(), "loraLinear: the bias must be frozen");
  return Wrap(ENV, LoraLinear::apply(T(info, 0), T(info, 1), T(info, 3), T(info, 4), Num(info, 5), c10::optional<at::Tensor>(bias ? *bias : c10::optional<at::Tensor>())));
}
static Napi::Value Swiglu(const Napi::CallbackInfo& info) { return Wrap(ENV, SwiGLU::apply(T(info, 0), T(info, 1))); }
static Napi::Value RmsNormOp(const Napi::CallbackInfo& info) { return Wrap(ENV, RmsNorm::apply(T(info, 0), T(info, 1), Num(info, 2))); }
static Napi::Value RopeOp(const Napi::CallbackInfo& info) { return Wrap(ENV, Rope::apply(T(info, 0), T(info, 1), T(info, 2))); }

void RegisterFused(Napi::Env env, Napi::Object e) {
  SVDLORA_EXPORT(e, "swiglu", Swiglu);
  SVDLORA_EXPORT(e, "rmsNorm", RmsNormOp);
  SVDLORA_EXPORT(e, "rope", RopeOp);
  SVDLORA_EXPORT(e, "loraLinear", LoraLinearOp);
}

}  // namespace svdlora
