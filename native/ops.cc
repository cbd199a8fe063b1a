// Tensor math: views and indexing, pointwise math with broadcasting, reductions, neural-net ops.
#include <torch/version.h>

#include "tensor.h"

// Kernels that only newer CUDA builds of libtorch have: flash attention over packed sequences
// (2.5+ takes the optional scale and window arguments used here) and the fused AdamW update.
#define SVDLORA_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))
#if defined(SVDLORA_CUDA) && SVDLORA_TORCH_AT_LEAST(2, 5)
#define SVDLORA_FAST_KERNELS 1
#endif

namespace svdlora {

#define ENV info.Env()
#define UNARY(Name, expr)                                    \
  static Napi::Value Name(const Napi::CallbackInfo& info) { \
    auto& a = T(info, 0);                                    \
    return Wrap(ENV, expr);                                  \
  }
// Binary ops take a tensor or a JS number on the right.
#define BINARY(Name, fn)                                                 \
  static Napi::Value Name(const Napi::CallbackInfo& info) {             \
    auto& a = T(info, 0);                                                \
    if (info[1].IsExternal()) return Wrap(ENV, at::fn(a, T(info, 1)));   \
    return Wrap(ENV, at::fn(a, Scalar(info, 1)));                        \
  }
#define INPLACE_BINARY(Name, method)                        \
  static Napi::Value Name(const Napi::CallbackInfo& info) { \
    auto& a = T(info, 0);                                   \
    if (info[1].IsExternal()) a.method(T(info, 1));         \
    else a.method(Scalar(info, 1));                         \
    return info[0];                                         \
  }

// ---- views and indexing -------------------------------------------------------------------
UNARY(Reshape, a.reshape(Ints(info, 1)))
UNARY(View, a.view(Ints(info, 1)))
UNARY(Transpose, a.transpose(Int(info, 1), Int(info, 2)))
UNARY(Permute, a.permute(Ints(info, 1)))
UNARY(Narrow, a.narrow(Int(info, 1), Int(info, 2), Int(info, 3)))
UNARY(Slice, at::slice(a, Int(info, 1), Int(info, 2), Int(info, 3), Int(info, 4)))
UNARY(Select, a.select(Int(info, 1), Int(info, 2)))
UNARY(IndexSelect, a.index_select(Int(info, 1), T(info, 2)))
UNARY(Gather, a.gather(Int(info, 1), T(info, 2)))
UNARY(Unsqueeze, a.unsqueeze(Int(info, 1)))
UNARY(Squeeze, info[1].IsUndefined() ? a.squeeze() : a.squeeze(Int(info, 1)))
UNARY(Expand, a.expand(Ints(info, 1)))
UNARY(Flatten, a.flatten(Int(info, 1), Int(info, 2)))
UNARY(Repeat, a.repeat(Ints(info, 1)))
UNARY(RepeatInterleave, a.repeat_interleave(Int(info, 1), Int(info, 2)))
UNARY(Flip, a.flip(Ints(info, 1)))
UNARY(Tril, a.tril(Int(info, 1)))
UNARY(Triu, a.triu(Int(info, 1)))

static Napi::Value Cat(const Napi::CallbackInfo& info) { return Wrap(ENV, at::cat(TList(info, 0), Int(info, 1))); }
static Napi::Value Stack(const Napi::CallbackInfo& info) { return Wrap(ENV, at::stack(TList(info, 0), Int(info, 1))); }
// Each tensor's 2-norm, stacked into one tensor [n]: on CUDA a few multi-tensor kernels for the whole
// list instead of one per tensor, and one handle back instead of n.
static Napi::Value ForeachNorm(const Napi::CallbackInfo& info) { return Wrap(ENV, at::stack(at::_foreach_norm(TList(info, 0), 2))); }
// t *= scale for every tensor of the list, scale a one-element tensor: on libtorch ≥ 2.1 one
// multi-tensor call (a few kernels on CUDA), before that one mul_ each; the same products.
static Napi::Value ForeachMul_(const Napi::CallbackInfo& info) {
  auto ts = TList(info, 0);
  const auto& scale = T(info, 1);
#if SVDLORA_TORCH_AT_LEAST(2, 1)
  at::_foreach_mul_(ts, scale);
#else
  for (auto& t : ts) t.mul_(scale);
#endif
  return ENV.Undefined();
}
static Napi::Value Split(const Napi::CallbackInfo& info) {
  auto& a = T(info, 0);
  if (info[1].IsNumber()) return WrapList(ENV, a.split(Int(info, 1), Int(info, 2)));
  return WrapList(ENV, a.split_with_sizes(Ints(info, 1), Int(info, 2)));
}
static Napi::Value Chunk(const Napi::CallbackInfo& info) { return WrapList(ENV, T(info, 0).chunk(Int(info, 1), Int(info, 2))); }
static Napi::Value MaskedFill(const Napi::CallbackInfo& info) {
  auto& a = T(info, 0);
  if (info[2].IsExternal()) return Wrap(ENV, a.masked_fill(T(info, 1), T(info, 2)));
  return Wrap(ENV, a.masked_fill(T(info, 1), Scalar(info, 2)));
}
static Napi::Value Where(const Napi::CallbackInfo& info) {
  auto& c = T(info, 0);
  bool ta = info[1].IsExternal(), tb = info[2].IsExternal();
  if (ta && tb) return Wrap(ENV, at::where(c, T(info, 1), T(info, 2)));
  if (ta) return Wrap(ENV, at::where(c, T(info, 1), Scalar(info, 2)));
  if (tb) return Wrap(ENV, at::where(c, Scalar(info, 1), T(info, 2)));
  return Wrap(ENV, at::where(c, Scalar(info, 1), Scalar(info, 2)));
}
static Napi::Value Topk(const Napi::CallbackInfo& info) {
  auto r = T(info, 0).topk(Int(info, 1), Int(info, 2), Bool(info, 3, true), true);
  return WrapList(ENV, {std::get<0>(r), std::get<1>(r)});
}
static Napi::Value Sort(const Napi::CallbackInfo& info) {
  auto r = T(info, 0).sort(Int(info, 1), Bool(info, 2));
  return WrapList(ENV, {std::get<0>(r), std::get<1>(r)});
}

// ---- pointwise math ---------------------------------------------------------------------------
static Napi::Value Add(const Napi::CallbackInfo& info) {
  auto& a = T(info, 0);
  auto alpha = info[2].IsUndefined() ? at::Scalar(1) : Scalar(info, 2);
  if (info[1].IsExternal()) return Wrap(ENV, at::add(a, T(info, 1), alpha));
  return Wrap(ENV, at::add(a, Scalar(info, 1), alpha));
}
BINARY(Sub, sub)
BINARY(Mul, mul)
BINARY(Div, div)
BINARY(Pow, pow)
BINARY(Eq, eq)
BINARY(Ne, ne)
BINARY(Lt, lt)
BINARY(Le, le)
BINARY(Gt, gt)
BINARY(Ge, ge)
BINARY(Remainder, remainder)
UNARY(Rsub, at::rsub(a, Scalar(info, 1)))  // scalar - tensor
static Napi::Value Maximum(const Napi::CallbackInfo& info) {
  auto& a = T(info, 0);
  return Wrap(ENV, info[1].IsExternal() ? at::maximum(a, T(info, 1)) : at::clamp_min(a, Scalar(info, 1)));
}
static Napi::Value Minimum(const Napi::CallbackInfo& info) {
  auto& a = T(info, 0);
  return Wrap(ENV, info[1].IsExternal() ? at::minimum(a, T(info, 1)) : at::clamp_max(a, Scalar(info, 1)));
}
UNARY(LogicalAnd, at::logical_and(a, T(info, 1)))
UNARY(LogicalOr, at::logical_or(a, T(info, 1)))
UNARY(LogicalNot, at::logical_not(a))
UNARY(Neg, at::neg(a))
UNARY(Abs, at::abs(a))
UNARY(Sqrt, at::sqrt(a))
UNARY(Rsqrt, at::rsqrt(a))
UNARY(Exp, at::exp(a))
UNARY(Log, at::log(a))
UNARY(Sin, at::sin(a))
UNARY(Cos, at::cos(a))
UNARY(Tanh, at::tanh(a))
UNARY(Sigmoid, at::sigmoid(a))
UNARY(Silu, at::silu(a))
UNARY(Relu, at::relu(a))
UNARY(Reciprocal, at::reciprocal(a))
UNARY(Square, at::square(a))
UNARY(Sign, at::sign(a))
UNARY(Floor, at::floor(a))
UNARY(IsFinite, at::isfinite(a))
UNARY(IsNan, at::isnan(a))
static Napi::Value Clamp(const Napi::CallbackInfo& info) {
  c10::optional<at::Scalar> lo, hi;
  if (!info[1].IsUndefined() && !info[1].IsNull()) lo = Scalar(info, 1);
  if (!info[2].IsUndefined() && !info[2].IsNull()) hi = Scalar(info, 2);
  return Wrap(ENV, at::clamp(T(info, 0), lo, hi));
}

// ---- in place (optimizers, initializers) -------------------------------------------------------
static Napi::Value AddInPlace(const Napi::CallbackInfo& info) {
  auto& a = T(info, 0);
  auto alpha = info[2].IsUndefined() ? at::Scalar(1) : Scalar(info, 2);
  if (info[1].IsExternal()) a.add_(T(info, 1), alpha);
  else a.add_(Scalar(info, 1), alpha);
  return info[0];
}
INPLACE_BINARY(SubInPlace, sub_)
INPLACE_BINARY(MulInPlace, mul_)
INPLACE_BINARY(DivInPlace, div_)
static Napi::Value CopyInPlace(const Napi::CallbackInfo& info) {
  T(info, 0).copy_(T(info, 1), Bool(info, 2));
  return info[0];
}
static Napi::Value ZeroInPlace(const Napi::CallbackInfo& info) {
  T(info, 0).zero_();
  return info[0];
}
static Napi::Value FillInPlace(const Napi::CallbackInfo& info) {
  T(info, 0).fill_(Scalar(info, 1));
  return info[0];
}
static Napi::Value AddcmulInPlace(const Napi::CallbackInfo& info) {
  T(info, 0).addcmul_(T(info, 1), T(info, 2), Scalar(info, 3));
  return info[0];
}
static Napi::Value AddcdivInPlace(const Napi::CallbackInfo& info) {
  T(info, 0).addcdiv_(T(info, 1), T(info, 2), Scalar(info, 3));
  return info[0];
}
static Napi::Value LerpInPlace(const Napi::CallbackInfo& info) {
  T(info, 0).lerp_(T(info, 1), Scalar(info, 2));
  return info[0];
}

// ---- reductions (dims omitted = all) ------------------------------------------------------------
static Napi::Value Sum(const Napi::CallbackInfo& info) {
  auto& a = T(info, 0);
  auto dims = OptInts(info, 1);
  return Wrap(ENV, dims ? at::sum(a, *dims, Bool(info, 2)) : at::sum(a));
}
static Napi::Value Mean(const Napi::CallbackInfo& info) {
  auto& a = T(info, 0);
  auto dims = OptInts(info, 1);
  return Wrap(ENV, dims ? at::mean(a, *dims, Bool(info, 2)) : at::mean(a));
}
static Napi::Value Max(const Napi::CallbackInfo& info) {
  auto& a = T(info, 0);
  if (info[1].IsUndefined()) return Wrap(ENV, at::max(a));
  auto r = at::max(a, Int(info, 1), Bool(info, 2));
  return WrapList(ENV, {std::get<0>(r), std::get<1>(r)});
}
static Napi::Value Min(const Napi::CallbackInfo& info) {
  auto& a = T(info, 0);
  if (info[1].IsUndefined()) return Wrap(ENV, at::min(a));
  auto r = at::min(a, Int(info, 1), Bool(info, 2));
  return WrapList(ENV, {std::get<0>(r), std::get<1>(r)});
}
UNARY(Argmax, info[1].IsUndefined() ? at::argmax(a) : at::argmax(a, Int(info, 1), Bool(info, 2)))
static Napi::Value Norm(const Napi::CallbackInfo& info) {
  auto& a = T(info, 0);
  auto dims = OptInts(info, 2);
  at::Scalar ord = info[1].IsUndefined() ? at::Scalar(2.0) : at::Scalar(Num(info, 1));
  if (dims) return Wrap(ENV, at::linalg_vector_norm(a, ord, *dims, Bool(info, 3)));
  return Wrap(ENV, at::linalg_vector_norm(a, ord));
}
UNARY(Logsumexp, at::logsumexp(a, Ints(info, 1), Bool(info, 2)))
UNARY(Cumsum, at::cumsum(a, Int(info, 1)))

// ---- neural-net ops -------------------------------------------------------------------------------
UNARY(Matmul, at::matmul(a, T(info, 1)))
UNARY(Mm, at::mm(a, T(info, 1)))
UNARY(Bmm, at::bmm(a, T(info, 1)))
static Napi::Value Linear(const Napi::CallbackInfo& info) {
  auto bias = OptT(info, 2);
  return Wrap(ENV, at::linear(T(info, 0), T(info, 1), bias ? *bias : at::Tensor()));
}
UNARY(Softmax, at::softmax(a, Int(info, 1)))
UNARY(LogSoftmax, at::log_softmax(a, Int(info, 1)))
UNARY(Embedding, at::embedding(a, T(info, 1)))  // (weight, ids)
UNARY(Dropout, at::dropout(a, Num(info, 1), Bool(info, 2)))
// crossEntropy(logits [N, C], target [N], ignoreIndex, reduction 0 none | 1 mean | 2 sum, labelSmoothing)
static Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  return Wrap(ENV, at::cross_entropy_loss(T(info, 0), T(info, 1), {}, Int(info, 3), Int(info, 2),
                                          info[4].IsUndefined() ? 0.0 : Num(info, 4)));
}

// sdpa(q [B, H, L, D], k [B, Hkv, S, D], v, mask?, dropout, causal, scale?): grouped-query attention
// when Hkv divides H. libtorch >= 2.5 runs its fused kernels; older ones take the plain path.
static Napi::Value Sdpa(const Napi::CallbackInfo& info) {
  auto& q = T(info, 0);
  auto k = T(info, 1), v = T(info, 2);
  auto mask = OptT(info, 3);
  double dropout = info[4].IsUndefined() ? 0.0 : Num(info, 4);
  bool causal = Bool(info, 5);
  auto scale = OptNum(info, 6);
  bool gqa = q.size(-3) != k.size(-3);
  TORCH_CHECK(!gqa || q.size(-3) % k.size(-3) == 0, "query heads (", q.size(-3), ") must be a multiple of key/value heads (",
              k.size(-3), ")");
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
  return Wrap(ENV, at::scaled_dot_product_attention(q, k, v, mask, dropout, causal, scale, gqa));
#else
  if (gqa) {
    int64_t rep = q.size(-3) / k.size(-3);
    k = k.repeat_interleave(rep, -3);
    v = v.repeat_interleave(rep, -3);
  }
  double s = scale ? *scale : 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto scores = at::matmul(q, k.transpose(-2, -1)) * s;
  int64_t L = q.size(-2), S = k.size(-2);
  if (causal) {
    auto keep = at::ones({L, S}, q.options().dtype(at::kBool)).tril();
    scores = scores.masked_fill(keep.logical_not(), -std::numeric_limits<double>::infinity());
  }
  if (mask) {
    if (mask->scalar_type() == at::kBool) scores = scores.masked_fill(mask->logical_not(), -std::numeric_limits<double>::infinity());
    else scores = scores + *mask;
  }
  auto p = at::softmax(scores, -1);
  if (dropout > 0) p = at::dropout(p, dropout, true);
  return Wrap(ENV, at::matmul(p, v));
#endif
}

// flashAttnVarlen(q [T, H, D], k [T, Hkv, D], v, cuSeqlens int32 [n + 1], maxSeqlen, causal, scale?):
// attention inside each packed sequence only, grouped-query heads without copies; differentiable.
static Napi::Value FlashAttnVarlen(const Napi::CallbackInfo& info) {
#ifdef SVDLORA_FAST_KERNELS
  auto& q = T(info, 0);
  auto& cu = T(info, 3);
  int64_t maxLen = Int(info, 4);
  auto out = at::_flash_attention_forward(q, T(info, 1), T(info, 2), cu, cu, maxLen, maxLen, 0.0, Bool(info, 5), false, OptNum(info, 6));
  return Wrap(ENV, std::get<0>(out));
#else
  throw std::runtime_error("flash attention on packed sequences needs libtorch >= 2.5 built with CUDA");
#endif
}

// fusedAdamW(params, grads, expAvgs, expAvgSqs, steps, lr, beta1, beta2, weightDecay, eps, foundInf?):
// torch.optim.AdamW(fused=True) in one multi-tensor kernel; steps are float32 device scalars,
// already incremented; a non-zero foundInf skips the update on the device (no host sync).
static Napi::Value FusedAdamW(const Napi::CallbackInfo& info) {
#ifdef SVDLORA_FAST_KERNELS
  auto params = TList(info, 0), grads = TList(info, 1), m = TList(info, 2), v = TList(info, 3), steps = TList(info, 4);
  at::_fused_adamw_(params, grads, m, v, {}, steps, Num(info, 5), Num(info, 6), Num(info, 7), Num(info, 8), Num(info, 9),
                    /*amsgrad=*/false, /*maximize=*/false, std::nullopt, OptT(info, 10));
  return info.Env().Undefined();
#else
  throw std::runtime_error("fused AdamW needs libtorch >= 2.5 built with CUDA");
#endif
}

static Napi::Value FastKernels(const Napi::CallbackInfo& info) {
#ifdef SVDLORA_FAST_KERNELS
  return Napi::Boolean::New(ENV, at::hasCUDA());
#else
  return Napi::Boolean::New(ENV, false);
#endif
}

void RegisterOps(Napi::Env env, Napi::Object e) {
  SVDLORA_EXPORT(e, "reshape", Reshape);
  SVDLORA_EXPORT(e, "view", View);
  SVDLORA_EXPORT(e, "transpose", Transpose);
  SVDLORA_EXPORT(e, "permute", Permute);
  SVDLORA_EXPORT(e, "narrow", Narrow);
  SVDLORA_EXPORT(e, "slice", Slice);
  SVDLORA_EXPORT(e, "select", Select);
  SVDLORA_EXPORT(e, "indexSelect", IndexSelect);
  SVDLORA_EXPORT(e, "gather", Gather);
  SVDLORA_EXPORT(e, "unsqueeze", Unsqueeze);
  SVDLORA_EXPORT(e, "squeeze", Squeeze);
  SVDLORA_EXPORT(e, "expand", Expand);
  SVDLORA_EXPORT(e, "flatten", Flatten);
  SVDLORA_EXPORT(e, "repeat", Repeat);
  SVDLORA_EXPORT(e, "repeatInterleave", RepeatInterleave);
  SVDLORA_EXPORT(e, "flip", Flip);
  SVDLORA_EXPORT(e, "tril", Tril);
  SVDLORA_EXPORT(e, "triu", Triu);
  SVDLORA_EXPORT(e, "cat", Cat);
  SVDLORA_EXPORT(e, "stack", Stack);
  SVDLORA_EXPORT(e, "foreachNorm", ForeachNorm);
  SVDLORA_EXPORT(e, "foreachMul_", ForeachMul_);
  SVDLORA_EXPORT(e, "split", Split);
  SVDLORA_EXPORT(e, "chunk", Chunk);
  SVDLORA_EXPORT(e, "maskedFill", MaskedFill);
  SVDLORA_EXPORT(e, "where", Where);
  SVDLORA_EXPORT(e, "topk", Topk);
  SVDLORA_EXPORT(e, "sort", Sort);
  SVDLORA_EXPORT(e, "add", Add);
  SVDLORA_EXPORT(e, "sub", Sub);
  SVDLORA_EXPORT(e, "mul", Mul);
  SVDLORA_EXPORT(e, "div", Div);
  SVDLORA_EXPORT(e, "pow", Pow);
  SVDLORA_EXPORT(e, "eq", Eq);
  SVDLORA_EXPORT(e, "ne", Ne);
  SVDLORA_EXPORT(e, "lt", Lt);
  SVDLORA_EXPORT(e, "le", Le);
  SVDLORA_EXPORT(e, "gt", Gt);
  SVDLORA_EXPORT(e, "ge", Ge);
  SVDLORA_EXPORT(e, "remainder", Remainder);
  SVDLORA_EXPORT(e, "rsub", Rsub);
  SVDLORA_EXPORT(e, "maximum", Maximum);
  SVDLORA_EXPORT(e, "minimum", Minimum);
  SVDLORA_EXPORT(e, "logicalAnd", LogicalAnd);
  SVDLORA_EXPORT(e, "logicalOr", LogicalOr);
  SVDLORA_EXPORT(e, "logicalNot", LogicalNot);
  SVDLORA_EXPORT(e, "neg", Neg);
  SVDLORA_EXPORT(e, "abs", Abs);
  SVDLORA_EXPORT(e, "sqrt", Sqrt);
  SVDLORA_EXPORT(e, "rsqrt", Rsqrt);
  SVDLORA_EXPORT(e, "exp", Exp);
  SVDLORA_EXPORT(e, "log", Log);
  SVDLORA_EXPORT(e, "sin", Sin);
  SVDLORA_EXPORT(e, "cos", Cos);
  SVDLORA_EXPORT(e, "tanh", Tanh);
  SVDLORA_EXPORT(e, "sigmoid", Sigmoid);
  SVDLORA_EXPORT(e, "silu", Silu);
  SVDLORA_EXPORT(e, "relu", Relu);
  SVDLORA_EXPORT(e, "reciprocal", Reciprocal);
  SVDLORA_EXPORT(e, "square", Square);
  SVDLORA_EXPORT(e, "sign", Sign);
  SVDLORA_EXPORT(e, "floor", Floor);
  SVDLORA_EXPORT(e, "isfinite", IsFinite);
  SVDLORA_EXPORT(e, "isnan", IsNan);
  SVDLORA_EXPORT(e, "clamp", Clamp);
  SVDLORA_EXPORT(e, "add_", AddInPlace);
  SVDLORA_EXPORT(e, "sub_", SubInPlace);
  SVDLORA_EXPORT(e, "mul_", MulInPlace);
  SVDLORA_EXPORT(e, "div_", DivInPlace);
  SVDLORA_EXPORT(e, "copy_", CopyInPlace);
  SVDLORA_EXPORT(e, "zero_", ZeroInPlace);
  SVDLORA_EXPORT(e, "fill_", FillInPlace);
  SVDLORA_EXPORT(e, "addcmul_", AddcmulInPlace);
  SVDLORA_EXPORT(e, "addcdiv_", AddcdivInPlace);
  SVDLORA_EXPORT(e, "lerp_", LerpInPlace);
  SVDLORA_EXPORT(e, "sum", Sum);
  SVDLORA_EXPORT(e, "mean", Mean);
  SVDLORA_EXPORT(e, "max", Max);
  SVDLORA_EXPORT(e, "min", Min);
  SVDLORA_EXPORT(e, "argmax", Argmax);
  SVDLORA_EXPORT(e, "norm", Norm);
  SVDLORA_EXPORT(e, "logsumexp", Logsumexp);
  SVDLORA_EXPORT(e, "cumsum", Cumsum);
  SVDLORA_EXPORT(e, "matmul", Matmul);
  SVDLORA_EXPORT(e, "mm", Mm);
  SVDLORA_EXPORT(e, "bmm", Bmm);
  SVDLORA_EXPORT(e, "linear", Linear);
  SVDLORA_EXPORT(e, "softmax", Softmax);
  SVDLORA_EXPORT(e, "logSoftmax", LogSoftmax);
  SVDLORA_EXPORT(e, "embedding", Embedding);
  SVDLORA_EXPORT(e, "dropout", Dropout);
  SVDLORA_EXPORT(e, "crossEntropy", CrossEntropy);
  SVDLORA_EXPORT(e, "sdpa", Sdpa);
  SVDLORA_EXPORT(e, "flashAttnVarlen", FlashAttnVarlen);
  SVDLORA_EXPORT(e, "fusedAdamW", FusedAdamW);
  SVDLORA_EXPORT(e, "fastKernels", FastKernels);
}

}  // namespace svdlora
