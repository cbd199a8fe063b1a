// Decoder-layer ops as single autograd nodes with hand-written backward: each replaces 4–8 small
// ops, fewer for the host to queue and for autograd to walk, and fewer small kernels on the GPU,
// which bound a 7B LoRA step (bench/results/2026-12-01-h200-step-kernels.md). The math is the
// composite's (transformers' Qwen2/Llama modules).
#include <torch/csrc/autograd/custom_function.h>
#include <torch/version.h>

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
// On CUDA with PyTorch 2.9 or later, ATen's fused kernels do it in one kernel each way (the op by
// op version launches 8 forward and 11 backward, a tenth of a 7B step's GPU time); they scale by
// the weight before rounding to x's dtype, not after, which moves an output by at most a unit in
// its last place.
#if defined(SVDLORA_CUDA) && (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 9))
#define SVDLORA_FUSED_RMS_NORM 1
#endif
static at::ScalarType Compute(const at::Tensor& x) { return at::promote_types(x.scalar_type(), at::kFloat); }
struct RmsNorm : public torch::autograd::Function<RmsNorm> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double eps) {
#ifdef SVDLORA_FUSED_RMS_NORM
    if (x.is_cuda() && weight.scalar_type() == x.scalar_type()) {
      auto [y, r] = at::_fused_rms_norm(x, {x.size(-1)}, weight, eps);
      ctx->save_for_backward({x, r, weight});
      ctx->saved_data["fused"] = true;
      return y;
    }
#endif
    auto xf = x.to(Compute(x));
    auto r = at::rsqrt(xf.square().mean(-1, true).add_(eps));
    ctx->save_for_backward({x, r, weight});
    return (xf * r).to(x.scalar_type()) * weight;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &r = saved[1], &weight = saved[2], &dy = grads[0];
#ifdef SVDLORA_FUSED_RMS_NORM
    if (ctx->saved_data.count("fused")) {
      auto [dx, dw] = at::_fused_rms_norm_backward(dy.contiguous(), x, {x.size(-1)}, r, weight,
                                                   {ctx->needs_input_grad(0), ctx->needs_input_grad(1)});
      return {dx, dw, at::Tensor()};
    }
#endif
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

// Several LoRA adapters beside one frozen linear layer, each on its own rows: y = x Wᵀ + b, then
// for every adapter j, y[rows j] += s_j·(x[rows j] A_jᵀ) B_jᵀ. Concurrent training runs several
// arms' samples through one shared base weight this way: the base product is one large GEMM, and
// each arm's factors see only its own rows. Rows are those of x flattened to 2D; an arm may have
// two adapters on the same rows (a trainable LoRA and a frozen correction of the base).
//
// Adapters go in units. Unbatched, each adapter is a unit of its own, with LoraLinear's arithmetic
// in the same order, so each arm's rows get the numbers they would get alone wherever the shared
// GEMM's rows do not depend on how many there are (the CPU's bitwise check). Batched, adapters of
// the same rank and dtypes whose rows do not overlap share a unit: each member's rows are gathered
// into a block [members, most rows, in] (padded with copies of its last row, whose results are
// dropped in forward and whose output gradients are zeroed in backward), and the unit runs as two
// bmm's forward and four backward instead of two and five GEMMs per adapter — the same sums, a
// constant number of kernels however many arms share the layer (a GPU step of many small arms is
// bound by queueing kernels).
namespace {
struct Unit {
  std::vector<int64_t> members;
  int64_t most = 0;     // the most rows of a member (batched units)
  at::Tensor gather;    // int64 [members · most]: the row of x each block row reads
  at::Tensor weight;    // [members, most, 1], float32 or wider: s_j on a member's own rows, 0 on padding
  at::Tensor scale;     // [members, 1, 1], float32 or wider: s_j
  at::Tensor pos, rows; // int64 [real rows]: the block rows that are real, and the rows of y they add to
};

std::vector<Unit> MakeUnits(at::TensorList As, at::TensorList Bs, const std::vector<double>& scalings,
                            const std::vector<int64_t>& starts, const std::vector<int64_t>& counts, bool batched,
                            const at::Tensor& x) {
  const int64_t n = static_cast<int64_t>(As.size());
  std::vector<Unit> units;
  for (int64_t j = 0; j < n; j++) {
    Unit* into = nullptr;
    if (batched)
      for (auto& u : units) {
        const int64_t k = u.members[0];
        if (As[k].sizes() != As[j].sizes() || Bs[k].sizes() != Bs[j].sizes() || As[k].scalar_type() != As[j].scalar_type() ||
            Bs[k].scalar_type() != Bs[j].scalar_type())
          continue;
        bool overlap = false;
        for (int64_t m : u.members) overlap |= starts[m] < starts[j] + counts[j] && starts[j] < starts[m] + counts[m];
        if (!overlap) {
          into = &u;
          break;
        }
      }
    if (into) into->members.push_back(j);
    else units.push_back(Unit{{j}});
  }
  for (auto& u : units) {
    if (u.members.size() < 2) continue;
    for (int64_t m : u.members) u.most = std::max(u.most, counts[m]);
    const int64_t size = static_cast<int64_t>(u.members.size());
    // One int64 buffer (gather, then pos, then rows) and one of scales (weight, then scale).
    std::vector<int64_t> gather(size * u.most), pos, rows;
    std::vector<double> weight(size * u.most, 0.0), scale(size);
    for (int64_t i = 0; i < size; i++) {
      const int64_t m = u.members[i];
      scale[i] = scalings[m];
      for (int64_t r = 0; r < u.most; r++) {
        gather[i * u.most + r] = starts[m] + std::min(r, counts[m] - 1);
        if (r < counts[m]) {
          weight[i * u.most + r] = scalings[m];
          pos.push_back(i * u.most + r);
          rows.push_back(starts[m] + r);
        }
      }
    }
    const int64_t real = static_cast<int64_t>(pos.size());
    std::vector<int64_t> ints(gather);
    ints.insert(ints.end(), pos.begin(), pos.end());
    ints.insert(ints.end(), rows.begin(), rows.end());
    weight.insert(weight.end(), scale.begin(), scale.end());
    // To the device from pinned memory without waiting: a copy from pageable memory would make the
    // host wait for every kernel queued so far, in each projection's forward.
    const auto place = [&](const at::Tensor& cpu) { return x.is_cuda() ? cpu.pin_memory().to(x.device(), /*non_blocking=*/true) : cpu; };
    const auto index = place(at::tensor(ints, at::kLong));
    const auto scales = place(at::tensor(weight, at::kDouble).to(at::promote_types(x.scalar_type(), at::kFloat)));  // s_j not rounded to bf16
    u.gather = index.narrow(0, 0, size * u.most);
    u.pos = index.narrow(0, size * u.most, real);
    u.rows = index.narrow(0, size * u.most + real, real);
    u.weight = scales.narrow(0, 0, size * u.most).view({size, u.most, 1});
    u.scale = scales.narrow(0, size * u.most, size).view({size, 1, 1});
  }
  return units;
}

at::Tensor Stacked(at::TensorList ts, const std::vector<int64_t>& members, at::ScalarType dt) {
  std::vector<at::Tensor> parts;
  for (int64_t m : members) parts.push_back(ts[m]);
  return at::stack(parts).to(dt);
}
}  // namespace

struct MultiLoraLinear : public torch::autograd::Function<MultiLoraLinear> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, at::TensorList As,
                            at::TensorList Bs, std::vector<double> scalings, std::vector<int64_t> starts,
                            std::vector<int64_t> counts, bool batched, const c10::optional<at::Tensor>& bias) {
    auto dt = x.scalar_type();
    auto y = at::linear(x, weight, bias);
    auto x2 = x.reshape({-1, x.size(-1)}), y2 = y.view({-1, y.size(-1)});
    auto units = MakeUnits(As, Bs, scalings, starts, counts, batched, x);
    std::vector<at::Tensor> saved{x, weight};
    saved.insert(saved.end(), As.begin(), As.end());
    saved.insert(saved.end(), Bs.begin(), Bs.end());
    c10::List<int64_t> unitSizes, order;
    c10::List<at::Tensor> layouts;  // per batched unit: gather, weight, pos, rows, and its A and B stacked in x's dtype
    for (auto& u : units) {
      unitSizes.push_back(static_cast<int64_t>(u.members.size()));
      for (int64_t m : u.members) order.push_back(m);
      if (u.members.size() == 1) {
        const int64_t j = u.members[0];
        auto xa = at::linear(x2.narrow(0, starts[j], counts[j]), As[j].to(dt));
        y2.narrow(0, starts[j], counts[j]).add_(at::linear(xa, Bs[j].to(dt)), scalings[j]);
        saved.push_back(xa);
        continue;
      }
      const int64_t size = static_cast<int64_t>(u.members.size());
      auto A = Stacked(As, u.members, dt), B = Stacked(Bs, u.members, dt);  // [members, r, in], [members, out, r]
      auto xg = x2.index_select(0, u.gather).view({size, u.most, x2.size(1)});
      auto xa = at::bmm(xg, A.transpose(1, 2));  // [members, most, r]
      auto d = at::bmm(xa, B.transpose(1, 2)).mul_(u.scale);
      y2.index_add_(0, u.rows, d.view({-1, y2.size(1)}).index_select(0, u.pos));
      saved.push_back(xa);
      for (const auto& t : {u.gather, u.weight, u.pos, u.rows, A, B}) layouts.push_back(t);
    }
    ctx->save_for_backward(saved);
    ctx->saved_data["n"] = static_cast<int64_t>(As.size());
    ctx->saved_data["scalings"] = c10::List<double>(scalings);
    ctx->saved_data["starts"] = c10::List<int64_t>(starts);
    ctx->saved_data["counts"] = c10::List<int64_t>(counts);
    ctx->saved_data["unitSizes"] = unitSizes;
    ctx->saved_data["order"] = order;
    ctx->saved_data["layouts"] = layouts;
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const int64_t n = ctx->saved_data["n"].toInt();
    auto scalings = ctx->saved_data["scalings"].toDoubleList();
    auto starts = ctx->saved_data["starts"].toIntList();
    auto counts = ctx->saved_data["counts"].toIntList();
    auto unitSizes = ctx->saved_data["unitSizes"].toIntList();
    auto order = ctx->saved_data["order"].toIntList();
    auto layouts = ctx->saved_data["layouts"].toTensorList();
    const auto &x = saved[0], &weight = saved[1], &dy = grads[0];
    at::TensorList As(saved.data() + 2, n), Bs(saved.data() + 2 + n, n);
    auto dt = x.scalar_type();
    auto x2 = x.reshape({-1, x.size(-1)}), dy2 = dy.reshape({-1, dy.size(-1)});
    // Gradients in input order: x, weight, A_1..A_n, B_1..B_n, then the non-tensor arguments and the bias.
    tensor_list out(2 + 2 * n + 5);
    const bool wantX = ctx->needs_input_grad(0);
    at::Tensor dx2;
    if (wantX) {
      out[0] = at::matmul(dy, weight);
      dx2 = out[0].view({-1, x.size(-1)});
    }
    size_t next = 0, batchedUnit = 0;
    for (size_t u = 0; u < unitSizes.size(); u++) {
      const int64_t size = unitSizes[u];
      std::vector<int64_t> members;
      for (int64_t i = 0; i < size; i++) members.push_back(order[next + i]);
      next += size;
      const auto& xa = saved[2 + 2 * n + u];
      bool wantA = false, wantB = false;
      for (int64_t m : members) {
        wantA |= ctx->needs_input_grad(2 + m);
        wantB |= ctx->needs_input_grad(2 + n + m);
      }
      if (size == 1) {
        const int64_t j = members[0];
        const auto &A = As[j], &B = Bs[j];
        const double s = scalings[j];
        auto dyj = dy2.narrow(0, starts[j], counts[j]);
        auto xj = x2.narrow(0, starts[j], counts[j]);
        if (wantX || wantA) {
          auto dyB = at::matmul(dyj, B.to(dt)).mul_(s);  // [rows, r]
          if (wantX) dx2.narrow(0, starts[j], counts[j]).add_(at::matmul(dyB, A.to(dt)));
          if (wantA) out[2 + j] = dyB.t().mm(xj).to(A.scalar_type());
        }
        if (wantB) out[2 + n + j] = dyj.t().mm(xa).mul_(s).to(B.scalar_type());
        continue;
      }
      const at::Tensor gather = layouts[6 * batchedUnit], rowWeight = layouts[6 * batchedUnit + 1], pos = layouts[6 * batchedUnit + 2],
                       rows = layouts[6 * batchedUnit + 3], A = layouts[6 * batchedUnit + 4], B = layouts[6 * batchedUnit + 5];
      batchedUnit++;
      const int64_t most = xa.size(1);
      // s_j · dy on each member's own rows, 0 on the padding: [members, most, out]
      auto dys = dy2.index_select(0, gather).view({size, most, dy2.size(1)}).mul_(rowWeight);
      if (wantB) {
        auto dB = at::bmm(dys.transpose(1, 2), xa).to(Bs[members[0]].scalar_type());
        for (int64_t i = 0; i < size; i++)
          if (ctx->needs_input_grad(2 + n + members[i])) out[2 + n + members[i]] = dB.select(0, i);
      }
      if (wantX || wantA) {
        auto dyB = at::bmm(dys, B);  // [members, most, r]
        if (wantA) {
          auto xg = x2.index_select(0, gather).view({size, most, x2.size(1)});
          auto dA = at::bmm(dyB.transpose(1, 2), xg).to(As[members[0]].scalar_type());
          for (int64_t i = 0; i < size; i++)
            if (ctx->needs_input_grad(2 + members[i])) out[2 + members[i]] = dA.select(0, i);
        }
        if (wantX) dx2.index_add_(0, rows, at::bmm(dyB, A).view({-1, x2.size(1)}).index_select(0, pos));
      }
    }
    return out;
  }
};

static Napi::Value LoraLinearOp(const Napi::CallbackInfo& info) {
  auto bias = OptT(info, 2);
  TORCH_CHECK(!bias || !bias->requires_grad(), "loraLinear: the bias must be frozen");
  return Wrap(ENV, LoraLinear::apply(T(info, 0), T(info, 1), T(info, 3), T(info, 4), Num(info, 5), c10::optional<at::Tensor>(bias ? *bias : c10::optional<at::Tensor>())));
}
static std::vector<double> Nums(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsArray()) throw Napi::TypeError::New(info.Env(), "multiLoraLinear: argument " + std::to_string(i) + " must be an array of numbers");
  auto arr = info[i].As<Napi::Array>();
  std::vector<double> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) out[k] = arr.Get(k).As<Napi::Number>().DoubleValue();
  return out;
}
static Napi::Value MultiLoraLinearOp(const Napi::CallbackInfo& info) {
  auto x = T(info, 0);
  auto bias = OptT(info, 2);
  auto As = TList(info, 3), Bs = TList(info, 4);
  auto scalings = Nums(info, 5);
  auto starts = Ints(info, 6), counts = Ints(info, 7);
  const size_t n = As.size();
  TORCH_CHECK(Bs.size() == n && scalings.size() == n && starts.size() == n && counts.size() == n,
              "multiLoraLinear: As, Bs, scalings, starts and counts must have one entry per adapter");
  TORCH_CHECK(!T(info, 1).requires_grad() && (!bias || !bias->requires_grad()), "multiLoraLinear: the base weight and bias must be frozen");
  const int64_t rows = x.numel() / x.size(-1);
  for (size_t j = 0; j < n; j++)
    TORCH_CHECK(starts[j] >= 0 && counts[j] > 0 && starts[j] + counts[j] <= rows, "multiLoraLinear: adapter ", j, " covers rows [",
                starts[j], ", ", starts[j] + counts[j], ") of ", rows);
  return Wrap(ENV, MultiLoraLinear::apply(x, T(info, 1), at::TensorList(As), at::TensorList(Bs), scalings, starts, counts,
                                          Bool(info, 8), c10::optional<at::Tensor>(bias ? *bias : c10::optional<at::Tensor>())));
}
static Napi::Value Swiglu(const Napi::CallbackInfo& info) { return Wrap(ENV, SwiGLU::apply(T(info, 0), T(info, 1))); }
static Napi::Value RmsNormOp(const Napi::CallbackInfo& info) { return Wrap(ENV, RmsNorm::apply(T(info, 0), T(info, 1), Num(info, 2))); }
static Napi::Value RopeOp(const Napi::CallbackInfo& info) { return Wrap(ENV, Rope::apply(T(info, 0), T(info, 1), T(info, 2))); }

void RegisterFused(Napi::Env env, Napi::Object e) {
  SVDLORA_EXPORT(e, "swiglu", Swiglu);
  SVDLORA_EXPORT(e, "rmsNorm", RmsNormOp);
  SVDLORA_EXPORT(e, "rope", RopeOp);
  SVDLORA_EXPORT(e, "loraLinear", LoraLinearOp);
  SVDLORA_EXPORT(e, "multiLoraLinear", MultiLoraLinearOp);
}

}  // namespace svdlora
