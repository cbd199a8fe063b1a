// Linear algebra (SVD, QR, inverse, Cholesky, triangular solve, symmetric eigendecomposition) and autograd: gradients, backward, grad mode.
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>

#include "tensor.h"

namespace svdlora {

#define ENV info.Env()

// svd(A) -> [U, S, Vh], reduced (U: m×k, S: k, Vh: k×n with k = min(m, n)).
static Napi::Value Svd(const Napi::CallbackInfo& info) {
  auto r = at::linalg_svd(T(info, 0), /*full_matrices=*/false);
  return WrapList(ENV, {std::get<0>(r), std::get<1>(r), std::get<2>(r)});
}
static Napi::Value Svdvals(const Napi::CallbackInfo& info) { return Wrap(ENV, at::linalg_svdvals(T(info, 0))); }
// qr(A) -> [Q, R], reduced.
static Napi::Value Qr(const Napi::CallbackInfo& info) {
  auto r = at::linalg_qr(T(info, 0), "reduced");
  return WrapList(ENV, {std::get<0>(r), std::get<1>(r)});
}

// inv(A) -> A⁻¹ of a square matrix (LU with partial pivoting, as torch.linalg.inv).
static Napi::Value Inv(const Napi::CallbackInfo& info) { return Wrap(ENV, at::linalg_inv(T(info, 0))); }
// choleskyEx(A) -> [L, info]: A = L Lᴴ (lower) of a batch of positive-definite matrices; info > 0 where one is
// not, read by the caller (torch.linalg.cholesky_ex: no check, so no device sync).
static Napi::Value CholeskyEx(const Napi::CallbackInfo& info) {
  auto r = at::linalg_cholesky_ex(T(info, 0));
  return WrapList(ENV, {std::get<0>(r), std::get<1>(r)});
}
// solveTriangular(A, B, upper, left) -> X with A X = B (left) or X A = B, A triangular.
static Napi::Value SolveTriangular(const Napi::CallbackInfo& info) {
  return Wrap(ENV, at::linalg_solve_triangular(T(info, 0), T(info, 1), Bool(info, 2), Bool(info, 3)));
}
// eigh(A) -> [eigenvalues ascending, eigenvectors as columns] of a batch of symmetric matrices (lower triangle read).
static Napi::Value Eigh(const Napi::CallbackInfo& info) {
  auto r = at::linalg_eigh(T(info, 0));
  return WrapList(ENV, {std::get<0>(r), std::get<1>(r)});
}

static Napi::Value RequiresGradInPlace(const Napi::CallbackInfo& info) {
  T(info, 0).requires_grad_(Bool(info, 1, true));
  return info[0];
}
static Napi::Value Grad(const Napi::CallbackInfo& info) {
  const auto& g = T(info, 0).grad();
  return g.defined() ? Wrap(ENV, g) : ENV.Null();
}
static Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  auto g = OptT(info, 1);
  T(info, 0).mutable_grad() = g ? *g : at::Tensor();
  return ENV.Undefined();
}
static Napi::Value Detach(const Napi::CallbackInfo& info) { return Wrap(ENV, T(info, 0).detach()); }
static Napi::Value RetainGrad(const Napi::CallbackInfo& info) {
  T(info, 0).retain_grad();
  return ENV.Undefined();
}
// backward(roots, grads | null, retainGraph): one pass over several roots, as torch.autograd.backward.
static Napi::Value Backward(const Napi::CallbackInfo& info) {
  auto roots = TList(info, 0);
  std::vector<at::Tensor> grads;
  if (!info[1].IsUndefined() && !info[1].IsNull()) grads = TList(info, 1);
  TORCH_CHECK(grads.empty() || grads.size() == roots.size(), "backward: ", roots.size(), " roots but ", grads.size(),
              " gradients");
  torch::autograd::backward(roots, grads, Bool(info, 2) ? c10::optional<bool>(true) : c10::nullopt);
  return ENV.Undefined();
}
// setGradEnabled(on) -> the previous setting.
static Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  bool prev = at::GradMode::is_enabled();
  at::GradMode::set_enabled(Bool(info, 0));
  return Napi::Boolean::New(ENV, prev);
}
static Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(ENV, at::GradMode::is_enabled());
}

void RegisterLinalgAutograd(Napi::Env env, Napi::Object e) {
  SVDLORA_EXPORT(e, "svd", Svd);
  SVDLORA_EXPORT(e, "svdvals", Svdvals);
  SVDLORA_EXPORT(e, "qr", Qr);
  SVDLORA_EXPORT(e, "inv", Inv);
  SVDLORA_EXPORT(e, "choleskyEx", CholeskyEx);
  SVDLORA_EXPORT(e, "solveTriangular", SolveTriangular);
  SVDLORA_EXPORT(e, "eigh", Eigh);
  SVDLORA_EXPORT(e, "requiresGrad_", RequiresGradInPlace);
  SVDLORA_EXPORT(e, "grad", Grad);
  SVDLORA_EXPORT(e, "setGrad", SetGrad);
  SVDLORA_EXPORT(e, "detach", Detach);
  SVDLORA_EXPORT(e, "retainGrad", RetainGrad);
  SVDLORA_EXPORT(e, "backward", Backward);
  SVDLORA_EXPORT(e, "setGradEnabled", SetGradEnabled);
  SVDLORA_EXPORT(e, "isGradEnabled", IsGradEnabled);
}

}  // namespace svdlora
