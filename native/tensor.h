// Shared plumbing of the addon: tensor handles, argument readers, and the guard that turns
// every libtorch error into a JS Error. Ops live in the other files, one file per concern.
#pragma once
#include <ATen/ATen.h>
#include <napi.h>

#include <optional>
#include <string>
#include <vector>

namespace svdlora {

// A JS tensor handle is a Napi::External owning one heap at::Tensor.
using Handle = Napi::External<at::Tensor>;

Napi::Value Wrap(Napi::Env env, at::Tensor t);
Napi::Value WrapList(Napi::Env env, const std::vector<at::Tensor>& ts);
at::Tensor& T(const Napi::CallbackInfo& info, size_t i);
std::optional<at::Tensor> OptT(const Napi::CallbackInfo& info, size_t i);
std::vector<at::Tensor> TList(const Napi::CallbackInfo& info, size_t i);
void Release(at::Tensor* p);  // dispose: frees the storage now, the handle stays valid but empty
size_t LiveCount();
size_t LiveBytes();

std::vector<int64_t> Ints(const Napi::CallbackInfo& info, size_t i);
std::optional<std::vector<int64_t>> OptInts(const Napi::CallbackInfo& info, size_t i);
int64_t Int(const Napi::CallbackInfo& info, size_t i);
std::optional<int64_t> OptInt(const Napi::CallbackInfo& info, size_t i);
double Num(const Napi::CallbackInfo& info, size_t i);
std::optional<double> OptNum(const Napi::CallbackInfo& info, size_t i);
bool Bool(const Napi::CallbackInfo& info, size_t i, bool fallback = false);
std::string Str(const Napi::CallbackInfo& info, size_t i);
at::Scalar Scalar(const Napi::CallbackInfo& info, size_t i);
at::ScalarType Dtype(const Napi::CallbackInfo& info, size_t i);        // JS passes the enum value
at::TensorOptions Options(const Napi::CallbackInfo& info, size_t dtypeArg, size_t deviceArg);
Napi::Value Shape(Napi::Env env, at::IntArrayRef sizes);

// Every exported function runs inside Guarded: libtorch's c10::Error and std::exception become a
// JS Error naming the op and the shapes of its tensor arguments; nothing aborts the process.
std::string DescribeFailure(const Napi::CallbackInfo& info, const std::string& what);
using Fn = Napi::Value (*)(const Napi::CallbackInfo&);
template <Fn F>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(info.Env(), DescribeFailure(info, e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), DescribeFailure(info, e.what()));
  }
}
// Every export is registered with SVDLORA_EXPORT and declared, with its parameters, in
// src/torch/native-api.ts; scripts/check-native-api.mjs (run by every build) compares the two.
#define SVDLORA_EXPORT(exports, name, fn) \
  (exports).Set(name, Napi::Function::New<::svdlora::Guarded<fn>>((exports).Env(), name, (void*)name))

void RegisterCreate(Napi::Env env, Napi::Object exports);
void RegisterOps(Napi::Env env, Napi::Object exports);
void RegisterLinalgAutograd(Napi::Env env, Napi::Object exports);
void RegisterRuntime(Napi::Env env, Napi::Object exports);
void RegisterFused(Napi::Env env, Napi::Object exports);
void RegisterDistributed(Napi::Env env, Napi::Object exports);

}  // namespace svdlora
