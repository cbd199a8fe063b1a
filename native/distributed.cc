// Data-parallel communication over libtorch's own c10d: a store (TCPStore or FileStore), one
// process group (Gloo for CPU tensors, NCCL for CUDA tensors), and bucketed all-reduce, broadcast
// and barrier. One process group per process, like torch.distributed's default group.
//
// Only what needs libtorch is here. src/torch/distributed.ts checks every argument first and
// explains failures: a libtorch failure in the group's life is thrown with libtorch's own message
// and `stage` set to "store", "group" (creating or joining it) or "collective". Every wait has the
// init timeout. After a failed collective the group is aborted (libtorch >= 2.8) and later
// destroyed by abandoning it, because tearing down a group whose peer died can block on that peer.
//
// libtorch 1.13 (Debian) vs 2.x (PyTorch wheels): in 2.x the process-group classes derive from
// c10d::Backend instead of c10d::ProcessGroup (same collective signatures), Backend gained
// shutdown()/abort() (2.7, used from 2.8 on here), and NCCL's blocking wait is read from
// TORCH_NCCL_BLOCKING_WAIT instead of NCCL_BLOCKING_WAIT. PyTorch wheels ship no Gloo headers,
// so Gloo is compiled in only where they match libtorch (scripts/c10d.mjs).
#include <torch/version.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tensor.h"

#ifdef SVDLORA_C10D
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif
#ifdef SVDLORA_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(SVDLORA_NCCL) && defined(SVDLORA_CUDA)
#define SVDLORA_HAS_NCCL 1
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#endif

#define SVDLORA_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace svdlora {

#define ENV info.Env()

static bool HasBackend(const std::string& name) {
#if defined(SVDLORA_C10D) && defined(SVDLORA_GLOO)
  if (name == "gloo") return true;
#endif
#if defined(SVDLORA_C10D) && defined(SVDLORA_HAS_NCCL)
  if (name == "nccl") return true;
#endif
  return false;
}

// The backends compiled into this build.
static Napi::Value DistBackends(const Napi::CallbackInfo& info) {
  auto arr = Napi::Array::New(ENV);
  for (const char* name : {"gloo", "nccl"})
    if (HasBackend(name)) arr.Set(arr.Length(), name);
  return arr;
}

#ifdef SVDLORA_C10D

#if TORCH_VERSION_MAJOR >= 2
using Group = c10d::Backend;
#else
using Group = c10d::ProcessGroup;
#endif
using Millis = std::chrono::milliseconds;

struct DistState {
  int rank = 0;
  int size = 1;
  Millis timeout{0};
  int64_t bucketBytes = 0;
  c10::Device device{at::kCPU};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Group> group;
  bool failed = false;  // a collective failed: the group is aborted, and abandoned at destroy
};

// Heap-held and never destroyed at exit: a group's threads may still be blocked on a dead peer.
static DistState* state = nullptr;

static std::string Message(const std::exception& e) {
  auto* err = dynamic_cast<const c10::Error*>(&e);
  return err ? err->what_without_backtrace() : e.what();
}

// A libtorch failure in one stage of the group's life, for distributed.ts to explain.
[[noreturn]] static void Raise(Napi::Env env, const char* stage, const std::string& raw) {
  auto error = Napi::Error::New(env, raw);
  error.Value().Set("stage", stage);
  throw error;
}

template <typename F>
static auto Staged(Napi::Env env, const char* stage, F f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    Raise(env, stage, Message(e));
  }
}

static DistState& Active() {
  if (!state || state->failed) throw std::runtime_error("no usable process group");
  return *state;
}

// A failed collective: best-effort abort, mark the group failed, throw the message.
[[noreturn]] static void Fail(Napi::Env env, DistState& s, const std::exception& e) {
  s.failed = true;
  auto raw = Message(e);
#if SVDLORA_TORCH_AT_LEAST(2, 8)
  try {
    s.group->abort();
  } catch (...) {
  }
#endif
  Raise(env, "collective", raw);
}

static void Wait(Napi::Env env, DistState& s, const c10::intrusive_ptr<c10d::Work>& work, std::optional<Millis> timeout = std::nullopt) {
  try {
    work->wait(timeout.value_or(s.timeout));
  } catch (const std::exception& e) {
    Fail(env, s, e);
  }
}

template <typename Launch>
static c10::intrusive_ptr<c10d::Work> Start(Napi::Env env, DistState& s, Launch launch) {
  try {
    return launch();
  } catch (const std::exception& e) {
    Fail(env, s, e);
  }
}

static bool MentionsConnect(const std::string& text) {
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower.find("connect") != std::string::npos;
}

// Rank 0 serves a TCPStore that every rank (itself included) joins, or the ranks share a file.
static c10::intrusive_ptr<c10d::Store> OpenStore(const DistState& s, const std::string& addr, int64_t port, const std::string& file) {
  if (!file.empty()) {
    auto store = c10::make_intrusive<c10d::FileStore>(file, s.size);
    store->setTimeout(s.timeout);
    return store;
  }
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(port);
  o.isServer = s.rank == 0;
  o.numWorkers = static_cast<std::size_t>(s.size);
  o.waitWorkers = true;
  o.timeout = s.timeout;
  // Workers may start before rank 0 listens. libtorch retries the connection, but 1.13 gives
  // up at once when the timeout is under 2 s (it counts whole seconds): retry until ours ends.
  auto deadline = std::chrono::steady_clock::now() + s.timeout;
  for (;;) {
    try {
      return c10::make_intrusive<c10d::TCPStore>(addr, o);
    } catch (const std::exception& e) {
      auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
      if (s.rank == 0 || !MentionsConnect(e.what()) || left < Millis(200)) throw;
      std::this_thread::sleep_for(Millis(100));
      o.timeout = left - Millis(100);
    }
  }
}

#ifdef SVDLORA_GLOO
// GLOO_SOCKET_IFNAME as in torch.distributed; a loopback master means one machine: bind to
// loopback; otherwise the address this machine's hostname resolves to.
static std::shared_ptr<::gloo::transport::Device> GlooDevice(const std::string& masterAddr) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME")) {
    std::string first = std::string(ifname).substr(0, std::string(ifname).find(','));
    if (!first.empty()) return c10d::ProcessGroupGloo::createDeviceForInterface(first);
  }
  if (masterAddr == "localhost" || masterAddr == "::1" || masterAddr.rfind("127.", 0) == 0)
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}
#endif

// The group of a backend that HasBackend; sets s.device.
static c10::intrusive_ptr<Group> NewGroup(DistState& s, const std::string& backend, const std::string& addr,
                                          std::optional<int64_t> cudaDevice) {
#ifdef SVDLORA_GLOO
  if (backend == "gloo") {
    auto opts = c10d::ProcessGroupGloo::Options::create(s.timeout);
    opts->devices.push_back(GlooDevice(addr.empty() ? "127.0.0.1" : addr));
    s.device = c10::Device(at::kCPU);
    return c10::make_intrusive<c10d::ProcessGroupGloo>(s.store, s.rank, s.size, opts);
  }
#endif
#ifdef SVDLORA_HAS_NCCL
  if (backend == "nccl") {
    // Blocking wait: wait() blocks this thread and throws on timeout or on a NCCL error, instead
    // of a watchdog thread tearing the process down. Read when the group is constructed; a
    // value the user set wins.
#if TORCH_VERSION_MAJOR >= 2
    setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
#else
    setenv("NCCL_BLOCKING_WAIT", "1", 0);
#endif
    // NVLink SHARP multicast needs fabric-manager support that shared machines often lack; off
    // here as in svdlora's launcher, also for workers that torchrun or srun started.
    setenv("NCCL_NVLS_ENABLE", "0", 0);
    auto index = static_cast<c10::DeviceIndex>(cudaDevice.value_or(0));
    c10::cuda::set_device(index);
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = s.timeout;
    s.device = c10::Device(at::kCUDA, index);
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(s.store, s.rank, s.size, opts);
  }
#endif
  (void)addr;
  (void)cudaDevice;
  throw std::runtime_error("no " + backend + " backend in this build");
}

// distInit(backend, rank, worldSize, masterAddr|null, masterPort|null, storeFile|null, timeoutMs,
//          cudaDevice|null, bucketBytes) -> the number of processes that joined.
static Napi::Value DistInit(const Napi::CallbackInfo& info) {
  auto env = ENV;
  if (state) throw std::runtime_error("a process group already exists");
  auto backend = Str(info, 0);
  if (!HasBackend(backend)) throw std::runtime_error("no " + backend + " backend in this build");
  auto s = std::make_unique<DistState>();
  s->rank = static_cast<int>(Int(info, 1));
  s->size = static_cast<int>(Int(info, 2));
  auto addr = info[3].IsString() ? Str(info, 3) : std::string();
  auto port = OptInt(info, 4).value_or(0);
  auto file = info[5].IsString() ? Str(info, 5) : std::string();
  s->timeout = Millis(Int(info, 6));
  auto cudaDevice = OptInt(info, 7);
  s->bucketBytes = Int(info, 8);

  s->store = Staged(env, "store", [&] { return OpenStore(*s, addr, port, file); });
  s->group = Staged(env, "group", [&] { return NewGroup(*s, backend, addr, cudaDevice); });

  // One small all-reduce, so that init returns once every rank is connected (NCCL connects lazily)
  // and a wrong world size shows up here rather than in the first training step.
  at::NoGradGuard noGrad;
  auto one = at::ones({1}, at::TensorOptions().dtype(at::kInt).device(s->device));
  try {
    std::vector<at::Tensor> v{one};
    c10d::AllreduceOptions o;
    o.timeout = s->timeout;
    s->group->allreduce(v, o)->wait(s->timeout);
  } catch (const std::exception& e) {
    // The group is abandoned, not destroyed: its threads may be blocked on a dead peer.
    (void)s->group.release();
    (void)s->store.release();
    (void)s.release();
    Raise(env, "group", Message(e));
  }
  state = s.release();
  return Napi::Number::New(env, one.cpu().item<int>());
}

// Buckets: tensors of one dtype and device, in order, up to bucketBytes each (a larger tensor gets
// a bucket of its own). Every rank passes the same list, so every rank builds the same buckets.
static std::vector<std::vector<size_t>> Buckets(const std::vector<at::Tensor>& ts, int64_t limit) {
  std::vector<std::vector<size_t>> out;
  std::map<std::pair<int, std::string>, size_t> open;  // (dtype, device) -> index of its open bucket
  std::map<size_t, int64_t> bytes;
  for (size_t i = 0; i < ts.size(); i++) {
    if (ts[i].numel() == 0) continue;
    auto key = std::make_pair(static_cast<int>(ts[i].scalar_type()), ts[i].device().str());
    int64_t b = static_cast<int64_t>(ts[i].numel()) * static_cast<int64_t>(ts[i].element_size());
    auto it = open.find(key);
    if (it == open.end() || bytes[it->second] + b > limit) {
      out.push_back({});
      open[key] = out.size() - 1;
      it = open.find(key);
    }
    out[it->second].push_back(i);
    bytes[it->second] += b;
  }
  return out;
}

// One contiguous buffer for a bucket: the tensor itself when it is alone and contiguous (the
// collective then works in place), else a flat copy of all of them.
static at::Tensor Flatten(const std::vector<at::Tensor>& ts, const std::vector<size_t>& bucket, bool& inPlace) {
  inPlace = bucket.size() == 1 && ts[bucket[0]].is_contiguous();
  if (inPlace) return ts[bucket[0]].view({-1});
  std::vector<at::Tensor> flat;
  flat.reserve(bucket.size());
  for (auto i : bucket) flat.push_back(ts[i].reshape({-1}));
  return at::cat(flat);
}

static void Unflatten(const std::vector<at::Tensor>& ts, const std::vector<size_t>& bucket, const at::Tensor& flat) {
  int64_t at = 0;
  for (auto i : bucket) {
    auto n = ts[i].numel();
    ts[i].copy_(flat.narrow(0, at, n).view(ts[i].sizes()));
    at += n;
  }
}

// A bucketed collective in flight, from StartBuckets until Finish: its tensors, their buckets, the
// buffer each bucket's collective works on (the tensor itself when it is alone and contiguous),
// and the collectives' handles.
struct Pending {
  std::vector<at::Tensor> ts;
  std::vector<std::vector<size_t>> buckets;
  std::vector<at::Tensor> flats;
  std::vector<char> inPlace;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  bool copyBack = true;  // the results go back into ts (false: a broadcast's root)
  bool average = false;  // divide the sums by the number of processes
  bool finished = false;
};

// Launches `collective` on each bucket of ts, none waited for.
template <typename Collective>
static std::unique_ptr<Pending> StartBuckets(Napi::Env env, DistState& s, std::vector<at::Tensor> ts, Collective collective) {
  at::NoGradGuard noGrad;
  auto p = std::make_unique<Pending>();
  p->ts = std::move(ts);
  p->buckets = Buckets(p->ts, s.bucketBytes);
  for (auto& bucket : p->buckets) {
    bool in = false;
    p->flats.push_back(Flatten(p->ts, bucket, in));
    p->inPlace.push_back(in);
    p->works.push_back(Start(env, s, [&] { return collective(p->flats.back()); }));
  }
  return p;
}

// Until the work has completed, within the group's timeout; then its outcome (an error is thrown).
// Polled in short sleeps: libtorch's own blocking wait sleeps a millisecond or more between looks.
static void WaitCompleted(Napi::Env env, DistState& s, const c10::intrusive_ptr<c10d::Work>& work) {
  auto deadline = std::chrono::steady_clock::now() + s.timeout;
  try {
    while (!work->isCompleted() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::microseconds(20));
  } catch (const std::exception& e) {
    Fail(env, s, e);
  }
  auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
  Wait(env, s, work, std::max(left, Millis(1)));
}

// Ends a started collective: its results are in its tensors for any later work, and this thread
// returns once the collectives have completed (or throws after the timeout). On CUDA the device's
// stream waits for them and the copies back are queued behind, before this thread waits; on the
// CPU the thread waits first.
static void Finish(Napi::Env env, DistState& s, Pending& p) {
  if (p.finished) throw std::runtime_error("this collective was already waited for");
  p.finished = true;
  at::NoGradGuard noGrad;
  bool streamOrdered = s.device.is_cuda();
  for (auto& w : p.works) {
    if (!streamOrdered) {
      Wait(env, s, w);
      continue;
    }
    try {
      w->synchronize();
    } catch (const std::exception& e) {
      Fail(env, s, e);
    }
  }
  for (size_t b = 0; b < p.buckets.size(); b++) {
    if (p.average) p.flats[b].div_(s.size);
    if (p.copyBack && !p.inPlace[b]) Unflatten(p.ts, p.buckets[b], p.flats[b]);
  }
  if (streamOrdered)
    for (auto& w : p.works) WaitCompleted(env, s, w);
  // Now, not when the JS handle is collected: the buffers may be large device memory.
  p.flats.clear();
  p.works.clear();
  p.ts.clear();
}

static c10d::ReduceOp ReduceOpOf(const std::string& name) {
  if (name == "sum" || name == "avg") return c10d::ReduceOp::SUM;  // avg: sum, then divide (Gloo has no AVG)
  if (name == "max") return c10d::ReduceOp::MAX;
  if (name == "min") return c10d::ReduceOp::MIN;
  throw std::runtime_error("unknown reduce op '" + name + "'");
}

using PendingHandle = Napi::External<Pending>;

// distAllReduceStart(tensors, op) -> a handle for distWait: launches one collective per bucket.
static Napi::Value DistAllReduceStart(const Napi::CallbackInfo& info) {
  auto& s = Active();
  auto name = Str(info, 1);
  auto op = ReduceOpOf(name);
  auto p = StartBuckets(ENV, s, TList(info, 0), [&](at::Tensor& flat) {
    std::vector<at::Tensor> v{flat};
    c10d::AllreduceOptions o;
    o.reduceOp = op;
    o.timeout = s.timeout;
    return s.group->allreduce(v, o);
  });
  p->average = name == "avg";
  return PendingHandle::New(ENV, p.release(), [](Napi::Env, Pending* pending) { delete pending; });
}

// distWait(pending): the reduced values in place (see Finish).
static Napi::Value DistWait(const Napi::CallbackInfo& info) {
  auto& s = Active();
  if (!info[0].IsExternal()) throw std::runtime_error("distWait: expected the handle of a started collective");
  Finish(ENV, s, *info[0].As<PendingHandle>().Data());
  return ENV.Undefined();
}

// distBroadcast(tensors, root): every rank gets root's values, in place.
static Napi::Value DistBroadcast(const Napi::CallbackInfo& info) {
  auto& s = Active();
  auto root = Int(info, 1);
  auto p = StartBuckets(ENV, s, TList(info, 0), [&](at::Tensor& flat) {
    std::vector<at::Tensor> v{flat};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.rootTensor = 0;
    o.timeout = s.timeout;
    return s.group->broadcast(v, o);
  });
  p->copyBack = s.rank != root;
  Finish(ENV, s, *p);
  return ENV.Undefined();
}

static Napi::Value DistBarrier(const Napi::CallbackInfo& info) {
  auto env = ENV;
  auto& s = Active();
  at::NoGradGuard noGrad;
  if (s.device.is_cuda()) {
    // NCCL's own barrier guesses the device; an all-reduce of one element on ours is the same thing.
    auto one = at::ones({1}, at::TensorOptions().dtype(at::kFloat).device(s.device));
    Wait(env, s, Start(env, s, [&] {
           std::vector<at::Tensor> v{one};
           c10d::AllreduceOptions o;
           o.timeout = s.timeout;
           return s.group->allreduce(v, o);
         }));
  } else {
    Wait(env, s, Start(env, s, [&] {
           c10d::BarrierOptions o;
           o.timeout = s.timeout;
           return s.group->barrier(o);
         }));
  }
  return env.Undefined();
}

// distDestroy(): shuts the group down; a failed group is abandoned (its threads may be blocked on
// a dead peer, and joining them would hang this process).
static Napi::Value DistDestroy(const Napi::CallbackInfo& info) {
  if (!state) return ENV.Undefined();
  DistState* s = state;
  state = nullptr;
  if (s->failed) {
    (void)s->group.release();  // leaked on purpose, like s itself
    (void)s->store.release();
    return ENV.Undefined();
  }
#if SVDLORA_TORCH_AT_LEAST(2, 8)
  try {
    s->group->shutdown();
  } catch (...) {
  }
#endif
  delete s;
  return ENV.Undefined();
}

#else  // no c10d headers in this libtorch: distBackends() is empty

static Napi::Value NoC10d(const Napi::CallbackInfo& info) {
  throw std::runtime_error("this libtorch has no torch.distributed (c10d) headers; multi-process training is not available");
}
static Napi::Value DistDestroy(const Napi::CallbackInfo& info) { return ENV.Undefined(); }
#define DistInit NoC10d
#define DistAllReduceStart NoC10d
#define DistWait NoC10d
#define DistBroadcast NoC10d
#define DistBarrier NoC10d

#endif

void RegisterDistributed(Napi::Env env, Napi::Object e) {
  SVDLORA_EXPORT(e, "distBackends", DistBackends);
  SVDLORA_EXPORT(e, "distInit", DistInit);
  SVDLORA_EXPORT(e, "distAllReduceStart", DistAllReduceStart);
  SVDLORA_EXPORT(e, "distWait", DistWait);
  SVDLORA_EXPORT(e, "distBroadcast", DistBroadcast);
  SVDLORA_EXPORT(e, "distBarrier", DistBarrier);
  SVDLORA_EXPORT(e, "distDestroy", DistDestroy);
}

}  // namespace svdlora
