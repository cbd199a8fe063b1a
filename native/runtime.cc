// Runtime facts and controls: versions, threads, seeds, devices, memory accounting.
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/version.h>

#include "tensor.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#ifdef SVDLORA_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace svdlora {

#define ENV info.Env()

static Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(ENV);
  o.Set("torchVersion", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                           std::to_string(TORCH_VERSION_PATCH));
#ifdef SVDLORA_CUDA
  o.Set("builtWithCuda", true);
#else
  o.Set("builtWithCuda", false);
#endif
  o.Set("cxx11Abi", static_cast<bool>(_GLIBCXX_USE_CXX11_ABI));
  o.Set("cudaAvailable", at::hasCUDA());
  o.Set("mkl", at::hasMKL());
  o.Set("lapack", at::hasLAPACK());
  o.Set("parallelInfo", at::get_parallel_info());
  // Dtype enum values, so that JS passes plain integers on the hot path.
  auto d = Napi::Object::New(ENV);
  d.Set("float32", static_cast<int>(at::kFloat));
  d.Set("float16", static_cast<int>(at::kHalf));
  d.Set("bfloat16", static_cast<int>(at::kBFloat16));
  d.Set("float64", static_cast<int>(at::kDouble));
  d.Set("int64", static_cast<int>(at::kLong));
  d.Set("int32", static_cast<int>(at::kInt));
  d.Set("uint8", static_cast<int>(at::kByte));
  d.Set("bool", static_cast<int>(at::kBool));
  o.Set("dtypes", d);
  return o;
}

static Napi::Value Devices(const Napi::CallbackInfo& info) {
  auto arr = Napi::Array::New(ENV);
#ifdef SVDLORA_CUDA
  if (at::hasCUDA()) {
    for (int64_t i = 0; i < static_cast<int64_t>(c10::cuda::device_count()); i++) {
      auto* p = at::cuda::getDeviceProperties(i);
      auto o = Napi::Object::New(ENV);
      o.Set("index", static_cast<double>(i));
      o.Set("name", p->name);
      o.Set("totalMemory", static_cast<double>(p->totalGlobalMem));
      o.Set("capability", std::to_string(p->major) + "." + std::to_string(p->minor));
      o.Set("multiProcessors", p->multiProcessorCount);
      arr.Set(static_cast<uint32_t>(i), o);
    }
  }
#endif
  return arr;
}

static Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(ENV, at::get_num_threads()); }
static Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  at::set_num_threads(static_cast<int>(Int(info, 0)));
  return ENV.Undefined();
}

// manualSeed(seed): CPU and every CUDA generator, as torch.manual_seed.
static Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  at::manual_seed(static_cast<uint64_t>(Int(info, 0)));
  return ENV.Undefined();
}
static Napi::Value CudaManualSeed(const Napi::CallbackInfo& info) {
#ifdef SVDLORA_CUDA
  auto seed = static_cast<uint64_t>(Int(info, 0));
  for (int64_t i = 0; i < static_cast<int64_t>(c10::cuda::device_count()); i++) {
    auto gen = at::globalContext().defaultGenerator(c10::Device(at::kCUDA, static_cast<c10::DeviceIndex>(i)));
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
#endif
  return ENV.Undefined();
}
// A generator's state as a uint8 tensor, and back: the CPU one for exact resume, a GPU's (device
// index as the optional argument) to replay dropout masks when a layer is recomputed.
static at::Generator Generator(const Napi::CallbackInfo& info, size_t i) {
  auto device = OptInt(info, i);
  if (!device) return at::detail::getDefaultCPUGenerator();
#ifdef SVDLORA_CUDA
  return at::cuda::detail::getDefaultCUDAGenerator(*device);
#else
  throw std::runtime_error("this build has no CUDA");
#endif
}
static Napi::Value GetRngState(const Napi::CallbackInfo& info) {
  auto gen = Generator(info, 0);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return Wrap(ENV, gen.get_state());
}
static Napi::Value SetRngState(const Napi::CallbackInfo& info) {
  auto gen = Generator(info, 1);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(T(info, 0));
  return ENV.Undefined();
}

static Napi::Value LiveTensors(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(ENV);
  o.Set("count", static_cast<double>(LiveCount()));
  o.Set("bytes", static_cast<double>(LiveBytes()));
  return o;
}

#ifdef SVDLORA_CUDA
// The device index asked for, with CUDA initialized: the caching allocator knows no device
// ("Invalid device argument") until the first CUDA tensor exists.
static c10::DeviceIndex DeviceArg(const Napi::CallbackInfo& info, size_t i) {
  auto d = static_cast<c10::DeviceIndex>(info[i].IsUndefined() ? c10::cuda::current_device() : Int(info, i));
  at::empty({0}, at::TensorOptions().device(at::kCUDA, d));
  return d;
}
#endif

// cudaMemory(device) -> { allocated, peakAllocated, reserved, peakReserved } in bytes.
static Napi::Value CudaMemory(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(ENV);
#ifdef SVDLORA_CUDA
  auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(DeviceArg(info, 0));
  const size_t all = 0;  // StatType::AGGREGATE
  o.Set("allocated", static_cast<double>(s.allocated_bytes[all].current));
  o.Set("peakAllocated", static_cast<double>(s.allocated_bytes[all].peak));
  o.Set("reserved", static_cast<double>(s.reserved_bytes[all].current));
  o.Set("peakReserved", static_cast<double>(s.reserved_bytes[all].peak));
#else
  throw Napi::Error::New(ENV, "this build of svdlora has no CUDA support");
#endif
  return o;
}
static Napi::Value CudaResetPeak(const Napi::CallbackInfo& info) {
#ifdef SVDLORA_CUDA
  c10::cuda::CUDACachingAllocator::resetPeakStats(DeviceArg(info, 0));
#endif
  return ENV.Undefined();
}
static Napi::Value CudaEmptyCache(const Napi::CallbackInfo& info) {
#ifdef SVDLORA_CUDA
  c10::cuda::CUDACachingAllocator::emptyCache();
#endif
  return ENV.Undefined();
}
// cudaSetMemoryFraction(fraction, device): caps this process's CUDA allocations, as
// torch.cuda.set_per_process_memory_fraction.
static Napi::Value CudaSetMemoryFraction(const Napi::CallbackInfo& info) {
#ifdef SVDLORA_CUDA
  c10::cuda::CUDACachingAllocator::setMemoryFraction(Num(info, 0), DeviceArg(info, 1));
#else
  throw Napi::Error::New(ENV, "this build of svdlora has no CUDA support");
#endif
  return ENV.Undefined();
}
static Napi::Value CudaSynchronize(const Napi::CallbackInfo& info) {
#ifdef SVDLORA_CUDA
  c10::cuda::device_synchronize();
#endif
  return ENV.Undefined();
}

// tuneHostAllocator() -> whether glibc's malloc was tuned: freed memory stays in the heap for
// reuse instead of going back to the kernel, which zero-fills fresh pages on every use (see
// tuneHostAllocator in src/torch/native.ts). The whole process is affected: callers opt in.
static Napi::Value TuneHostAllocator(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return Napi::Boolean::New(ENV, true);
#else
  return Napi::Boolean::New(ENV, false);
#endif
}

// profileStart(cuda) … profileStop(path): libtorch's profiler (Kineto, as torch.profiler) records
// every op queued from any thread (autograd's included) and, with cuda, the GPU's kernels and
// copies; the trace is written as Chrome trace JSON (open it in Perfetto or chrome://tracing).
static Napi::Value ProfileStart(const Napi::CallbackInfo& info) {
  using namespace torch::profiler::impl;
  ProfilerConfig config(ProfilerState::KINETO, /*report_input_shapes=*/true);
  std::set<ActivityType> activities{ActivityType::CPU};
  if (Bool(info, 0)) activities.insert(ActivityType::CUDA);
  torch::autograd::profiler::prepareProfiler(config, activities);
  torch::autograd::profiler::enableProfiler(config, activities);
  return ENV.Undefined();
}
static Napi::Value ProfileStop(const Napi::CallbackInfo& info) {
  auto result = torch::autograd::profiler::disableProfiler();
  try {
    result->save(Str(info, 0));
  } catch (const c10::Error&) {
    throw Napi::Error::New(ENV, "this libtorch was built without Kineto, which a trace needs: profile with a build against PyTorch's own libtorch");
  }
  return ENV.Undefined();
}

void RegisterRuntime(Napi::Env env, Napi::Object e) {
  SVDLORA_EXPORT(e, "buildInfo", BuildInfo);
  SVDLORA_EXPORT(e, "devices", Devices);
  SVDLORA_EXPORT(e, "getNumThreads", GetNumThreads);
  SVDLORA_EXPORT(e, "setNumThreads", SetNumThreads);
  SVDLORA_EXPORT(e, "manualSeed", ManualSeed);
  SVDLORA_EXPORT(e, "cudaManualSeed", CudaManualSeed);
  SVDLORA_EXPORT(e, "getRngState", GetRngState);
  SVDLORA_EXPORT(e, "setRngState", SetRngState);
  SVDLORA_EXPORT(e, "liveTensors", LiveTensors);
  SVDLORA_EXPORT(e, "cudaMemory", CudaMemory);
  SVDLORA_EXPORT(e, "cudaResetPeak", CudaResetPeak);
  SVDLORA_EXPORT(e, "cudaEmptyCache", CudaEmptyCache);
  SVDLORA_EXPORT(e, "cudaSynchronize", CudaSynchronize);
  SVDLORA_EXPORT(e, "cudaSetMemoryFraction", CudaSetMemoryFraction);
  SVDLORA_EXPORT(e, "tuneHostAllocator", TuneHostAllocator);
  SVDLORA_EXPORT(e, "profileStart", ProfileStart);
  SVDLORA_EXPORT(e, "profileStop", ProfileStop);
}

}  // namespace svdlora
