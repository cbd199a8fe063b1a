// Creating tensors, moving data between JS and libtorch, and reading tensor metadata.
#include "tensor.h"

#include <cstring>

namespace svdlora {

static Napi::Value Zeros(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::zeros(Ints(info, 0), Options(info, 1, 2)));
}
static Napi::Value Ones(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::ones(Ints(info, 0), Options(info, 1, 2)));
}
static Napi::Value Empty(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::empty(Ints(info, 0), Options(info, 1, 2)));
}
static Napi::Value Full(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::full(Ints(info, 0), Scalar(info, 1), Options(info, 2, 3)));
}
static Napi::Value Arange(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::arange(Scalar(info, 0), Scalar(info, 1), Scalar(info, 2), Options(info, 3, 4)));
}
static Napi::Value Eye(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::eye(Int(info, 0), Int(info, 1), Options(info, 2, 3)));
}
static Napi::Value Randn(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::randn(Ints(info, 0), Options(info, 1, 2)));
}
static Napi::Value Rand(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::rand(Ints(info, 0), Options(info, 1, 2)));
}
static Napi::Value Randint(const Napi::CallbackInfo& info) {
  auto opts = Options(info, 3, 4);
  if (info[3].IsUndefined() || info[3].IsNull()) opts = opts.dtype(at::kLong);
  return Wrap(info.Env(), at::randint(Int(info, 0), Int(info, 1), Ints(info, 2), opts));
}
static Napi::Value Randperm(const Napi::CallbackInfo& info) {
  auto opts = Options(info, 1, 2);
  if (info[1].IsUndefined() || info[1].IsNull()) opts = opts.dtype(at::kLong);
  return Wrap(info.Env(), at::randperm(Int(info, 0), opts));
}
static Napi::Value UniformInPlace(const Napi::CallbackInfo& info) {
  T(info, 0).uniform_(Num(info, 1), Num(info, 2));
  return info.Env().Undefined();
}
static Napi::Value NormalInPlace(const Napi::CallbackInfo& info) {
  T(info, 0).normal_(Num(info, 1), Num(info, 2));
  return info.Env().Undefined();
}

// fromBytes(bytes: Uint8Array, shape, dtype): copies the bytes into a new CPU tensor.
static Napi::Value FromBytes(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "argument 0 must be a typed array");
  auto arr = info[0].As<Napi::TypedArray>();
  auto shape = Ints(info, 1);
  auto dtype = Dtype(info, 2);
  auto t = at::empty(shape, at::TensorOptions().dtype(dtype));
  size_t want = t.nbytes();
  if (arr.ByteLength() != want)
    throw Napi::Error::New(info.Env(), "fromBytes: " + std::to_string(arr.ByteLength()) + " bytes given, shape and dtype need " +
                                           std::to_string(want));
  auto* src = static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
  if (want) std::memcpy(t.data_ptr(), src, want);
  return Wrap(info.Env(), t);
}

// toBytes(t): a Node Buffer holding a contiguous CPU copy of the tensor's elements.
static Napi::Value ToBytes(const Napi::CallbackInfo& info) {
  auto t = T(info, 0).detach().to(at::kCPU).contiguous();
  return Napi::Buffer<uint8_t>::Copy(info.Env(), static_cast<const uint8_t*>(t.data_ptr()), t.nbytes());
}

static Napi::Value Item(const Napi::CallbackInfo& info) {
  auto& t = T(info, 0);
  auto s = t.item();
  if (s.isBoolean()) return Napi::Boolean::New(info.Env(), s.toBool());
  return Napi::Number::New(info.Env(), s.toDouble());
}

static Napi::Value To(const Napi::CallbackInfo& info) {
  auto& t = T(info, 0);
  auto dtype = info[1].IsUndefined() || info[1].IsNull() ? t.scalar_type() : Dtype(info, 1);
  auto device = info[2].IsUndefined() || info[2].IsNull() ? t.device() : c10::Device(Str(info, 2));
  return Wrap(info.Env(), t.to(device, dtype, /*non_blocking=*/Bool(info, 3), /*copy=*/Bool(info, 4)));
}
static Napi::Value Contiguous(const Napi::CallbackInfo& info) { return Wrap(info.Env(), T(info, 0).contiguous()); }
static Napi::Value Clone(const Napi::CallbackInfo& info) { return Wrap(info.Env(), T(info, 0).clone()); }
static Napi::Value PinMemory(const Napi::CallbackInfo& info) { return Wrap(info.Env(), T(info, 0).pin_memory()); }

// meta(t): [shape, dtype, device, requiresGrad] in one call, so JS getters cost one crossing.
static Napi::Value Meta(const Napi::CallbackInfo& info) {
  auto& t = T(info, 0);
  auto env = info.Env();
  auto arr = Napi::Array::New(env, 4);
  arr.Set(0u, Shape(env, t.sizes()));
  arr.Set(1u, Napi::Number::New(env, static_cast<int>(t.scalar_type())));
  arr.Set(2u, Napi::String::New(env, t.device().str()));
  arr.Set(3u, Napi::Boolean::New(env, t.requires_grad()));
  return arr;
}
static Napi::Value Sizes(const Napi::CallbackInfo& info) { return Shape(info.Env(), T(info, 0).sizes()); }
static Napi::Value Strides(const Napi::CallbackInfo& info) { return Shape(info.Env(), T(info, 0).strides()); }
static Napi::Value IsContiguous(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), T(info, 0).is_contiguous());
}
static Napi::Value Dispose(const Napi::CallbackInfo& info) {
  if (info[0].IsExternal()) Release(info[0].As<Handle>().Data());
  return info.Env().Undefined();
}
static Napi::Value IsDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !info[0].As<Handle>().Data()->defined());
}

void RegisterCreate(Napi::Env env, Napi::Object exports) {
  SVDLORA_EXPORT(exports, "zeros", Zeros);
  SVDLORA_EXPORT(exports, "ones", Ones);
  SVDLORA_EXPORT(exports, "empty", Empty);
  SVDLORA_EXPORT(exports, "full", Full);
  SVDLORA_EXPORT(exports, "arange", Arange);
  SVDLORA_EXPORT(exports, "eye", Eye);
  SVDLORA_EXPORT(exports, "randn", Randn);
  SVDLORA_EXPORT(exports, "rand", Rand);
  SVDLORA_EXPORT(exports, "randint", Randint);
  SVDLORA_EXPORT(exports, "randperm", Randperm);
  SVDLORA_EXPORT(exports, "uniform_", UniformInPlace);
  SVDLORA_EXPORT(exports, "normal_", NormalInPlace);
  SVDLORA_EXPORT(exports, "fromBytes", FromBytes);
  SVDLORA_EXPORT(exports, "toBytes", ToBytes);
  SVDLORA_EXPORT(exports, "item", Item);
  SVDLORA_EXPORT(exports, "to", To);
  SVDLORA_EXPORT(exports, "contiguous", Contiguous);
  SVDLORA_EXPORT(exports, "clone", Clone);
  SVDLORA_EXPORT(exports, "pinMemory", PinMemory);
  SVDLORA_EXPORT(exports, "meta", Meta);
  SVDLORA_EXPORT(exports, "sizes", Sizes);
  SVDLORA_EXPORT(exports, "strides", Strides);
  SVDLORA_EXPORT(exports, "isContiguous", IsContiguous);
  SVDLORA_EXPORT(exports, "dispose", Dispose);
  SVDLORA_EXPORT(exports, "isDisposed", IsDisposed);
}

}  // namespace svdlora
