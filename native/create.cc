// Creating tensors, moving data between JS and libtorch, and reading tensor metadata.
#include <ATen/Parallel.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "tensor.h"

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

// Reads exactly n bytes of fd at pos (pread: no shared file position, so threads may share fd).
static void ReadAt(int fd, uint8_t* dst, size_t n, int64_t pos) {
  size_t done = 0;
  while (done < n) {
    ssize_t k = ::pread(fd, dst + done, std::min<size_t>(n - done, size_t(1) << 30), static_cast<off_t>(pos + done));
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) throw std::runtime_error(std::string("reading the file failed: ") + std::strerror(errno));
    if (k == 0) {
      throw std::runtime_error("the file ended at byte " + std::to_string(pos + static_cast<int64_t>(done)) +
                               " while reading (was it truncated or replaced?)");
    }
    done += static_cast<size_t>(k);
  }
}

// The same in blocks read by the intra-op thread pool: page-cache copies and disk queues both go
// faster with several readers.
static void ReadAtParallel(int fd, uint8_t* dst, size_t n, int64_t pos, size_t block) {
  const int64_t blocks = static_cast<int64_t>((n + block - 1) / block);
  if (blocks <= 1) return ReadAt(fd, dst, n, pos);
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; b++) {
      size_t off = static_cast<size_t>(b) * block;
      ReadAt(fd, dst + off, std::min(block, n - off), pos + static_cast<int64_t>(off));
    }
  });
}

// fromFile(fd, position, byteLength, shape, dtype, device?, chunkBytes?, blockBytes?): a tensor of
// the raw elements at [position, position + byteLength) of an open file, with no JS buffer and no
// extra host copy. CPU: read straight into the new tensor's memory. Other devices: read through
// two pinned staging buffers of chunkBytes (64 MiB), each copied to the device asynchronously
// while the next piece is read into the other. chunkBytes/blockBytes exist for tests.
static Napi::Value FromFile(const Napi::CallbackInfo& info) {
  const int fd = static_cast<int>(Int(info, 0));
  const int64_t pos = Int(info, 1);
  const int64_t length = Int(info, 2);
  auto shape = Ints(info, 3);
  auto dtype = Dtype(info, 4);
  c10::Device device = info[5].IsUndefined() || info[5].IsNull() ? c10::Device(at::kCPU) : c10::Device(Str(info, 5));
  const size_t chunk = static_cast<size_t>(std::max<int64_t>(OptInt(info, 6).value_or(int64_t(64) << 20), 1));
  const size_t block = static_cast<size_t>(std::max<int64_t>(OptInt(info, 7).value_or(int64_t(4) << 20), 1));
  if (pos < 0) throw std::runtime_error("position must be non-negative");

  auto out = at::empty(shape, at::TensorOptions().dtype(dtype).device(device));
  const size_t n = out.nbytes();
  if (length < 0 || static_cast<size_t>(length) != n) {
    throw std::runtime_error(std::to_string(length) + " bytes given, shape and dtype need " + std::to_string(n));
  }
  if (n == 0) return Wrap(info.Env(), out);
  if (device.is_cpu()) {
    ReadAtParallel(fd, static_cast<uint8_t*>(out.data_ptr()), n, pos, block);
    return Wrap(info.Env(), out);
  }
  if (!device.is_cuda()) {  // no pinned memory there: read on the CPU, then one copy
    auto host = at::empty(shape, at::TensorOptions().dtype(dtype));
    ReadAtParallel(fd, static_cast<uint8_t*>(host.data_ptr()), n, pos, block);
    out.copy_(host);
    return Wrap(info.Env(), out);
  }
  // Round k reads into stage[k % 2] while round k - 1's copy (from the other buffer) runs; the
  // stream sync before round k's copy waits for round k - 1's, so the buffer read in round k + 1
  // (stage[(k + 1) % 2]) is free by then.
  // The buffers are always chunk-sized: libtorch's pinned-memory cache then serves every call
  // from the same two blocks instead of pinning new memory for each size of tensor.
  auto bytes = out.view({-1}).view(at::kByte);
  const size_t piece = chunk;
  auto pinned = at::TensorOptions().dtype(at::kByte).pinned_memory(true);
  at::Tensor stage[2] = {at::empty({static_cast<int64_t>(piece)}, pinned),
                         n > piece ? at::empty({static_cast<int64_t>(piece)}, pinned) : at::Tensor()};
  c10::impl::VirtualGuardImpl impl(out.device().type());
  auto sync = [&] { impl.synchronizeStream(impl.getStream(out.device())); };
  try {
    int k = 0;
    for (size_t off = 0; off < n; off += piece, k ^= 1) {
      const size_t len = std::min(piece, n - off);
      ReadAtParallel(fd, static_cast<uint8_t*>(stage[k].data_ptr()), len, pos + static_cast<int64_t>(off), block);
      sync();
      bytes.narrow(0, static_cast<int64_t>(off), static_cast<int64_t>(len))
          .copy_(stage[k].narrow(0, 0, static_cast<int64_t>(len)), /*non_blocking=*/true);
    }
    sync();
  } catch (...) {
    sync();  // no copy may still read a staging buffer once it is freed
    throw;
  }
  return Wrap(info.Env(), out);
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
  SVDLORA_EXPORT(exports, "fromFile", FromFile);
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
