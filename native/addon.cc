// Module entry and the helpers declared in tensor.h.
#include "tensor.h"

#include <sstream>
#include <unordered_set>

namespace svdlora {

// Live handles holding a tensor, for leak checks (tidy tests, `liveTensors`).
static std::unordered_set<at::Tensor*>& Live() {
  static std::unordered_set<at::Tensor*> live;
  return live;
}

Napi::Value Wrap(Napi::Env env, at::Tensor t) {
  auto* p = new at::Tensor(std::move(t));
  Live().insert(p);
  return Handle::New(env, p, [](Napi::Env, at::Tensor* q) {
    Live().erase(q);
    delete q;
  });
}

Napi::Value WrapList(Napi::Env env, const std::vector<at::Tensor>& ts) {
  auto arr = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); i++) arr.Set(i, Wrap(env, ts[i]));
  return arr;
}

void Release(at::Tensor* p) {
  Live().erase(p);
  *p = at::Tensor();
}

size_t LiveCount() { return Live().size(); }

size_t LiveBytes() {
  // Views share storage: count each storage once.
  std::unordered_set<const void*> seen;
  size_t bytes = 0;
  for (auto* p : Live()) {
    if (!p->defined() || !p->has_storage()) continue;
    const auto& s = p->storage();
    if (seen.insert(s.unsafeGetStorageImpl()).second) bytes += s.nbytes();
  }
  return bytes;
}

static Napi::Error ArgError(const Napi::CallbackInfo& info, size_t i, const char* want) {
  return Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be " + want);
}

at::Tensor& T(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsExternal()) throw ArgError(info, i, "a tensor");
  auto* p = info[i].As<Handle>().Data();
  if (!p->defined()) throw Napi::Error::New(info.Env(), "tensor used after dispose()");
  return *p;
}

std::optional<at::Tensor> OptT(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsUndefined() || info[i].IsNull()) return std::nullopt;
  return T(info, i);
}

std::vector<at::Tensor> TList(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsArray()) throw ArgError(info, i, "an array of tensors");
  auto arr = info[i].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Napi::Value v = arr[k];
    if (!v.IsExternal()) throw ArgError(info, i, "an array of tensors");
    auto* p = v.As<Handle>().Data();
    if (!p->defined()) throw Napi::Error::New(info.Env(), "tensor used after dispose()");
    out.push_back(*p);
  }
  return out;
}

std::vector<int64_t> Ints(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsArray()) throw ArgError(info, i, "an array of integers");
  auto arr = info[i].As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) out[k] = arr.Get(k).As<Napi::Number>().Int64Value();
  return out;
}

std::optional<std::vector<int64_t>> OptInts(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsUndefined() || info[i].IsNull()) return std::nullopt;
  if (info[i].IsNumber()) return std::vector<int64_t>{info[i].As<Napi::Number>().Int64Value()};
  return Ints(info, i);
}

int64_t Int(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) throw ArgError(info, i, "an integer");
  return info[i].As<Napi::Number>().Int64Value();
}

std::optional<int64_t> OptInt(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsUndefined() || info[i].IsNull()) return std::nullopt;
  return Int(info, i);
}

double Num(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) throw ArgError(info, i, "a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

std::optional<double> OptNum(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsUndefined() || info[i].IsNull()) return std::nullopt;
  return Num(info, i);
}

bool Bool(const Napi::CallbackInfo& info, size_t i, bool fallback) {
  if (info[i].IsUndefined() || info[i].IsNull()) return fallback;
  return info[i].ToBoolean().Value();
}

std::string Str(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsString()) throw ArgError(info, i, "a string");
  return info[i].As<Napi::String>().Utf8Value();
}

at::Scalar Scalar(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsBoolean()) return at::Scalar(info[i].As<Napi::Boolean>().Value());
  double v = Num(info, i);
  // Whole numbers stay integral so that integer tensors keep their dtype.
  if (v == static_cast<double>(static_cast<int64_t>(v)) && std::abs(v) < 9.007199254740992e15)
    return at::Scalar(static_cast<int64_t>(v));
  return at::Scalar(v);
}

at::ScalarType Dtype(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<at::ScalarType>(Int(info, i));
}

at::TensorOptions Options(const Napi::CallbackInfo& info, size_t dtypeArg, size_t deviceArg) {
  at::TensorOptions opts;  // no dtype: libtorch picks its default (float32, or int64 for arange of integers)
  if (!info[dtypeArg].IsUndefined() && !info[dtypeArg].IsNull()) opts = opts.dtype(Dtype(info, dtypeArg));
  if (!info[deviceArg].IsUndefined() && !info[deviceArg].IsNull()) opts = opts.device(c10::Device(Str(info, deviceArg)));
  return opts;
}

Napi::Value Shape(Napi::Env env, at::IntArrayRef sizes) {
  auto arr = Napi::Array::New(env, sizes.size());
  for (size_t k = 0; k < sizes.size(); k++) arr.Set(k, Napi::Number::New(env, static_cast<double>(sizes[k])));
  return arr;
}

static void AppendShape(std::ostringstream& os, const at::Tensor& t) {
  os << "[";
  for (int64_t d = 0; d < t.dim(); d++) os << (d ? ", " : "") << t.size(d);
  os << "]";
}

std::string DescribeFailure(const Napi::CallbackInfo& info, const std::string& what) {
  std::ostringstream os;
  auto* name = static_cast<const char*>(info.Data());
  os << (name ? name : "op") << ": " << what;
  // Name the shapes of the tensor arguments: the libtorch message alone often names one dimension.
  std::ostringstream shapes;
  int n = 0;
  for (size_t i = 0; i < info.Length(); i++) {
    auto add = [&](Napi::Value v) {
      if (!v.IsExternal()) return;
      auto* p = v.As<Handle>().Data();
      if (!p->defined()) return;
      shapes << (n++ ? ", " : "");
      AppendShape(shapes, *p);
    };
    if (info[i].IsArray()) {
      auto arr = info[i].As<Napi::Array>();
      for (uint32_t k = 0; k < arr.Length(); k++) add(arr.Get(k));
    } else {
      add(info[i]);
    }
  }
  std::string s = os.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (n) s += " (tensor shapes: " + shapes.str() + ")";
  return s;
}

}  // namespace svdlora

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  svdlora::RegisterCreate(env, exports);
  svdlora::RegisterOps(env, exports);
  svdlora::RegisterLinalgAutograd(env, exports);
  svdlora::RegisterRuntime(env, exports);
  svdlora::RegisterFused(env, exports);
  svdlora::RegisterDistributed(env, exports);
  return exports;
}

NODE_API_MODULE(svdlora_native, InitAddon)
