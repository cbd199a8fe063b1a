// Data-parallel communication over libtorch's own c10d: a store (TCPStore or FileStore), one
// process group (Gloo for CPU tensors, NCCL for CUDA tensors), and bucketed all-reduce, broadcast
// and barrier. One process group per process, like torch.distributed's default group.
//
// Every wait has the init timeout, and every failure becomes one line that says what happened
// ("distributed: allReduce on rank 0: rank 1 did not respond within 30 s (…)"). After a failed
// collective the group is unusable (the ranks no longer agree on what comes next): later calls
// say so, and destroy() abandons the group instead of destroying it, because tearing down a
// group whose peer died can block on that peer.
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
#include <sstream>
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

static Napi::Error DistError(Napi::Env env, const std::string& message) {
  std::string line = message;
  std::replace(line.begin(), line.end(), '\n', ' ');
  return Napi::Error::New(env, line);
}

// The backends compiled into this build.
static Napi::Value DistBackends(const Napi::CallbackInfo& info) {
  auto arr = Napi::Array::New(ENV);
  uint32_t n = 0;
#if defined(SVDLORA_C10D) && defined(SVDLORA_GLOO)
  arr.Set(n++, "gloo");
#endif
#if defined(SVDLORA_C10D) && defined(SVDLORA_HAS_NCCL)
  arr.Set(n++, "nccl");
#endif
  (void)n;
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
  std::string backend;
  int rank = 0;
  int size = 1;
  Millis timeout{0};
  int64_t bucketBytes = 25 << 20;
  std::string where;  // the store, for messages: "127.0.0.1:29500" or a file path
  c10::Device device{at::kCPU};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Group> group;
  std::string broken;  // why the group is unusable, after a failed collective
};

// Heap-held and never destroyed at exit: a group's threads may still be blocked on a dead peer.
static DistState* state = nullptr;

// ---- messages ----

static bool Contains(const std::string& text, const char* word) {
  std::string a = text, b = word;
  auto lower = [](std::string& s) { std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); }); };
  lower(a), lower(b);
  return a.find(b) != std::string::npos;
}

// The first line of a libtorch/Gloo message, without Gloo's "[file.cc:123] " prefix.
static std::string FirstLine(const std::string& raw) {
  std::string s = raw.substr(0, raw.find('\n'));
  if (!s.empty() && s[0] == '[') {
    auto close = s.find("] ");
    if (close != std::string::npos && close < 300) s = s.substr(close + 2);
  }
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

static std::string Seconds(Millis t) {
  std::ostringstream os;
  os << static_cast<double>(t.count()) / 1000.0 << " s";
  return os.str();
}

static std::string Peers(const DistState& s) {
  return s.size == 2 ? "rank " + std::to_string(1 - s.rank) : "another rank";
}

static bool LooksLikeTimeout(const std::string& raw) {
  return Contains(raw, "timed out") || Contains(raw, "timeout");
}

static bool LooksLikePeerGone(const std::string& raw) {
  return Contains(raw, "closed by peer") || Contains(raw, "reset by peer") || Contains(raw, "broken pipe") ||
         Contains(raw, "connection refused") || Contains(raw, "remote process exited") || Contains(raw, "ncclRemoteError") ||
         Contains(raw, "Connection closed");
}

// SVDLORA_DEBUG=1 keeps libtorch's own words after ours (still one line).
static std::string WithRaw(const std::string& message, const std::string& raw) {
  if (!std::getenv("SVDLORA_DEBUG")) return message;
  std::string r = raw;
  std::replace(r.begin(), r.end(), '\n', ' ');
  return message + " [libtorch: " + r + "]";
}

static std::string ExplainCollective(const DistState& s, const std::string& op, const std::string& raw) {
  std::string who = "distributed: " + op + " on rank " + std::to_string(s.rank);
  if (LooksLikePeerGone(raw)) return who + ": " + Peers(s) + " closed its connection (did a process die?)";
  if (LooksLikeTimeout(raw))
    return who + ": " + Peers(s) + " did not respond within " + Seconds(s.timeout) + " (did a process die, or stop calling " + op + "?)";
  return who + " failed: " + FirstLine(raw);
}

static std::string ExplainInit(const DistState& s, const std::string& stage, const std::string& raw) {
  std::string who = "distributed: init on rank " + std::to_string(s.rank);
  if (stage == "store") {
    if (Contains(raw, "address already in use"))
      return who + ": cannot listen on " + s.where + ", the port is in use (pick another MASTER_PORT)";
    if (Contains(raw, "clients joined")) {
      // "Timed out after 3 seconds waiting for clients. 1/2 clients joined."
      std::string joined;
      auto at = raw.find(" clients joined");
      if (at != std::string::npos) {
        auto from = raw.rfind(' ', at - 1);
        joined = raw.substr(from == std::string::npos ? 0 : from + 1, at - (from == std::string::npos ? 0 : from + 1));
      }
      return who + ": not every rank reached the store at " + s.where + " within " + Seconds(s.timeout) +
             (joined.empty() ? "" : " (" + joined + " joined)") + ": did all " + std::to_string(s.size) +
             " ranks start, with the same WORLD_SIZE, MASTER_ADDR and MASTER_PORT?";
    }
    if (LooksLikeTimeout(raw) || Contains(raw, "connect"))
      return who + ": cannot reach the store at " + s.where + " within " + Seconds(s.timeout) +
             " (is rank 0 running, with the same MASTER_ADDR and MASTER_PORT?)";
    return who + ": cannot open the store at " + s.where + ": " + FirstLine(raw);
  }
  if (LooksLikePeerGone(raw)) return who + ": " + Peers(s) + " closed its connection while connecting (did a process die?)";
  if (LooksLikeTimeout(raw))
    return who + ": " + (s.size == 2 ? Peers(s) + " did not join" : std::string("not every rank joined")) + " the " + s.backend + " group within " +
           Seconds(s.timeout) + " (did every rank start, with the same WORLD_SIZE, MASTER_ADDR, MASTER_PORT and backend?)";
  return who + ": cannot create the " + s.backend + " process group: " + FirstLine(raw);
}

// ---- the group ----

static DistState& Active(Napi::Env env, const char* op) {
  if (!state) throw DistError(env, std::string("distributed: ") + op + ": not initialized (call distributed.init() first)");
  if (!state->broken.empty())
    throw DistError(env, std::string("distributed: ") + op + ": the process group is unusable after an earlier failure (" + state->broken +
                             "); call destroy() and stop this process");
  return *state;
}

// A failed collective: best-effort abort, mark the group unusable, one-line error.
[[noreturn]] static void Fail(Napi::Env env, DistState& s, const std::string& op, const std::string& raw) {
  std::string message = ExplainCollective(s, op, raw);
  s.broken = message.substr(std::string("distributed: ").size());
  message = WithRaw(message, raw);
#if SVDLORA_TORCH_AT_LEAST(2, 8)
  try {
    s.group->abort();
  } catch (...) {
  }
#endif
  throw DistError(env, message);
}

static void Wait(Napi::Env env, DistState& s, const std::string& op, const c10::intrusive_ptr<c10d::Work>& work) {
  try {
    work->wait(s.timeout);
  } catch (const c10::Error& e) {
    Fail(env, s, op, e.what_without_backtrace());
  } catch (const std::exception& e) {
    Fail(env, s, op, e.what());
  }
}

template <typename Launch>
static c10::intrusive_ptr<c10d::Work> Start(Napi::Env env, DistState& s, const std::string& op, Launch launch) {
  try {
    return launch();
  } catch (const c10::Error& e) {
    Fail(env, s, op, e.what_without_backtrace());
  } catch (const std::exception& e) {
    Fail(env, s, op, e.what());
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

// distInit(backend, rank, worldSize, masterAddr|null, masterPort|null, storeFile|null, timeoutMs,
//          cudaDevice|null, bucketBytes|null)
static Napi::Value DistInit(const Napi::CallbackInfo& info) {
  auto env = ENV;
  if (state) {
    throw DistError(env, "distributed: already initialized (rank " + std::to_string(state->rank) + " of " + std::to_string(state->size) +
                             "); call destroy() first");
  }
  auto s = std::make_unique<DistState>();
  s->backend = Str(info, 0);
  s->rank = static_cast<int>(Int(info, 1));
  s->size = static_cast<int>(Int(info, 2));
  auto addr = info[3].IsString() ? Str(info, 3) : std::string();
  auto port = OptInt(info, 4);
  auto file = info[5].IsString() ? Str(info, 5) : std::string();
  s->timeout = Millis(Int(info, 6));
  auto cudaDevice = OptInt(info, 7);
  if (auto b = OptInt(info, 8)) s->bucketBytes = *b;
  if (s->size < 1 || s->rank < 0 || s->rank >= s->size)
    throw DistError(env, "distributed: rank " + std::to_string(s->rank) + " is not in 0.." + std::to_string(s->size - 1));
  if (s->timeout.count() <= 0) throw DistError(env, "distributed: the timeout must be positive");
  if (s->bucketBytes <= 0) throw DistError(env, "distributed: the bucket size must be positive");

  bool gloo = s->backend == "gloo", nccl = s->backend == "nccl";
  if (!gloo && !nccl) throw DistError(env, "distributed: unknown backend '" + s->backend + "' (gloo or nccl)");
#ifndef SVDLORA_GLOO
  if (gloo)
    throw DistError(env,
                    "distributed: this build has no Gloo backend (its headers were not found when the addon was built: on Debian/Ubuntu, "
                    "install libgloo-dev and rebuild; PyTorch wheels do not ship them)");
#endif
#ifndef SVDLORA_HAS_NCCL
  if (nccl) throw DistError(env, "distributed: this build has no NCCL backend (it needs a CUDA libtorch and nccl.h at build time)");
#endif

  // The store: rank 0 serves a TCPStore that every rank (itself included) joins, or a shared file.
  try {
    if (!file.empty()) {
      s->where = file;
      s->store = c10::make_intrusive<c10d::FileStore>(file, s->size);
      s->store->setTimeout(s->timeout);
    } else {
      if (addr.empty() || !port || *port < 1 || *port > 65535)
        throw DistError(env, "distributed: init needs masterAddr and masterPort (1..65535), or storeFile");
      s->where = addr + ":" + std::to_string(*port);
      c10d::TCPStoreOptions o;
      o.port = static_cast<std::uint16_t>(*port);
      o.isServer = s->rank == 0;
      o.numWorkers = static_cast<std::size_t>(s->size);
      o.waitWorkers = true;
      o.timeout = s->timeout;
      // Workers may start before rank 0 listens. libtorch retries the connection, but 1.13 gives
      // up at once when the timeout is under 2 s (it counts whole seconds): retry until ours ends.
      auto deadline = std::chrono::steady_clock::now() + s->timeout;
      for (;;) {
        try {
          s->store = c10::make_intrusive<c10d::TCPStore>(addr, o);
          break;
        } catch (const std::exception& e) {
          auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
          if (s->rank == 0 || !Contains(e.what(), "connect") || left < Millis(200)) throw;
          std::this_thread::sleep_for(Millis(100));
          o.timeout = left - Millis(100);
        }
      }
    }
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw DistError(env, WithRaw(ExplainInit(*s, "store", e.what_without_backtrace()), e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw DistError(env, WithRaw(ExplainInit(*s, "store", e.what()), e.what()));
  }

  try {
#ifdef SVDLORA_GLOO
    if (gloo) {
      auto opts = c10d::ProcessGroupGloo::Options::create(s->timeout);
      opts->devices.push_back(GlooDevice(addr.empty() ? "127.0.0.1" : addr));
      s->group = c10::make_intrusive<c10d::ProcessGroupGloo>(s->store, s->rank, s->size, opts);
      s->device = c10::Device(at::kCPU);
    }
#endif
#ifdef SVDLORA_HAS_NCCL
    if (nccl) {
      // Blocking wait: wait() blocks this thread and throws on timeout or on a NCCL error, instead
      // of a watchdog thread tearing the process down. Read when the group is constructed; a
      // value the user set wins.
#if TORCH_VERSION_MAJOR >= 2
      setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
#else
      setenv("NCCL_BLOCKING_WAIT", "1", 0);
#endif
      auto index = static_cast<c10::DeviceIndex>(cudaDevice.value_or(0));
      c10::cuda::set_device(index);
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = s->timeout;
      s->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(s->store, s->rank, s->size, opts);
      s->device = c10::Device(at::kCUDA, index);
    }
#endif
  } catch (const c10::Error& e) {
    throw DistError(env, WithRaw(ExplainInit(*s, "group", e.what_without_backtrace()), e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw DistError(env, WithRaw(ExplainInit(*s, "group", e.what()), e.what()));
  }
  (void)cudaDevice;

  // One small all-reduce, so that init returns once every rank is connected (NCCL connects lazily)
  // and a wrong world size shows up here rather than in the first training step.
  {
    at::NoGradGuard noGrad;
    auto one = at::ones({1}, at::TensorOptions().dtype(at::kInt).device(s->device));
    std::vector<at::Tensor> v{one};
    c10d::AllreduceOptions o;
    o.timeout = s->timeout;
    // On failure the group is abandoned, not destroyed: its threads may be blocked on a dead peer.
    auto abandon = [&](const std::string& raw) {
      auto message = WithRaw(ExplainInit(*s, "group", raw), raw);
      (void)s->group.release();
      (void)s->store.release();
      (void)s.release();
      return DistError(env, message);
    };
    try {
      auto work = s->group->allreduce(v, o);
      work->wait(s->timeout);
    } catch (const c10::Error& e) {
      throw abandon(e.what_without_backtrace());
    } catch (const std::exception& e) {
      throw abandon(e.what());
    }
    auto joined = one.cpu().item<int>();
    if (joined != s->size)
      throw DistError(env, "distributed: init on rank " + std::to_string(s->rank) + ": " + std::to_string(joined) +
                               " processes joined, but WORLD_SIZE is " + std::to_string(s->size));
  }
  state = s.release();
  return env.Undefined();
}

static c10d::ReduceOp ReduceOpOf(Napi::Env env, const std::string& name) {
  if (name == "sum" || name == "avg") return c10d::ReduceOp::SUM;  // avg: sum, then divide (Gloo has no AVG)
  if (name == "max") return c10d::ReduceOp::MAX;
  if (name == "min") return c10d::ReduceOp::MIN;
  throw DistError(env, "distributed: unknown reduce op '" + name + "' (sum, avg, max or min)");
}

// Checks the tensors a collective gets: defined, dense, on the backend's kind of device.
static void CheckTensors(Napi::Env env, const DistState& s, const char* op, const std::vector<at::Tensor>& ts, bool floating) {
  for (size_t i = 0; i < ts.size(); i++) {
    const auto& t = ts[i];
    auto where = std::string("distributed: ") + op + ": tensor " + std::to_string(i);
    if (t.layout() != at::kStrided) throw DistError(env, where + " is not a dense tensor");
    if (t.device().type() != s.device.type())
      throw DistError(env, where + " is on " + t.device().str() + ", but the " + s.backend + " backend works on " +
                               (s.device.is_cuda() ? "CUDA tensors" : "CPU tensors"));
    if (floating && !at::isFloatingType(t.scalar_type())) throw DistError(env, where + " is not floating-point, which 'avg' needs");
  }
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

// Runs `collective` on each bucket of ts (flattened, unless the bucket is one contiguous tensor),
// all launched before any wait; then `finish(flat)` on each, and the results copied back into ts
// when `copyBack` and the bucket was flattened.
template <typename Collective, typename Finish>
static void Bucketed(Napi::Env env, DistState& s, const char* op, std::vector<at::Tensor>& ts, Collective collective, Finish finish,
                     bool copyBack) {
  at::NoGradGuard noGrad;
  auto buckets = Buckets(ts, s.bucketBytes);
  std::vector<at::Tensor> flats(buckets.size());
  std::vector<char> inPlace(buckets.size());
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (size_t b = 0; b < buckets.size(); b++) {
    bool in = false;
    flats[b] = Flatten(ts, buckets[b], in);
    inPlace[b] = in;
    works.push_back(Start(env, s, op, [&] { return collective(flats[b]); }));
  }
  for (auto& w : works) Wait(env, s, op, w);
  for (size_t b = 0; b < buckets.size(); b++) {
    finish(flats[b]);
    if (copyBack && !inPlace[b]) Unflatten(ts, buckets[b], flats[b]);
  }
}

// distAllReduce(tensors, op): in place, one collective per bucket.
static Napi::Value DistAllReduce(const Napi::CallbackInfo& info) {
  auto env = ENV;
  auto& s = Active(env, "allReduce");
  auto ts = TList(info, 0);
  auto opName = info[1].IsUndefined() ? std::string("sum") : Str(info, 1);
  auto op = ReduceOpOf(env, opName);
  CheckTensors(env, s, "allReduce", ts, opName == "avg");
  Bucketed(
      env, s, "allReduce", ts,
      [&](at::Tensor& flat) {
        std::vector<at::Tensor> v{flat};
        c10d::AllreduceOptions o;
        o.reduceOp = op;
        o.timeout = s.timeout;
        return s.group->allreduce(v, o);
      },
      [&](at::Tensor& flat) {
        if (opName == "avg") flat.div_(s.size);
      },
      true);
  return env.Undefined();
}

// distBroadcast(tensors, root): every rank gets root's values, in place.
static Napi::Value DistBroadcast(const Napi::CallbackInfo& info) {
  auto env = ENV;
  auto& s = Active(env, "broadcast");
  auto ts = TList(info, 0);
  auto root = Int(info, 1);
  if (root < 0 || root >= s.size)
    throw DistError(env, "distributed: broadcast: root " + std::to_string(root) + " is not in 0.." + std::to_string(s.size - 1));
  CheckTensors(env, s, "broadcast", ts, false);
  Bucketed(
      env, s, "broadcast", ts,
      [&](at::Tensor& flat) {
        std::vector<at::Tensor> v{flat};
        c10d::BroadcastOptions o;
        o.rootRank = root;
        o.rootTensor = 0;
        o.timeout = s.timeout;
        return s.group->broadcast(v, o);
      },
      [](at::Tensor&) {}, s.rank != root);
  return env.Undefined();
}

static Napi::Value DistBarrier(const Napi::CallbackInfo& info) {
  auto env = ENV;
  auto& s = Active(env, "barrier");
  at::NoGradGuard noGrad;
  if (s.device.is_cuda()) {
    // NCCL's own barrier guesses the device; an all-reduce of one element on ours is the same thing.
    auto one = at::ones({1}, at::TensorOptions().dtype(at::kFloat).device(s.device));
    auto work = Start(env, s, "barrier", [&] {
      std::vector<at::Tensor> v{one};
      c10d::AllreduceOptions o;
      o.timeout = s.timeout;
      return s.group->allreduce(v, o);
    });
    Wait(env, s, "barrier", work);
  } else {
    auto work = Start(env, s, "barrier", [&] {
      c10d::BarrierOptions o;
      o.timeout = s.timeout;
      return s.group->barrier(o);
    });
    Wait(env, s, "barrier", work);
  }
  return env.Undefined();
}

// distDestroy(): shuts the group down; a broken group is abandoned (its threads may be blocked on
// a dead peer, and joining them would hang this process).
static Napi::Value DistDestroy(const Napi::CallbackInfo& info) {
  if (!state) return ENV.Undefined();
  DistState* s = state;
  state = nullptr;
  if (!s->broken.empty()) {
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

// distInfo() -> { initialized, backend, rank, worldSize, device, broken }
static Napi::Value DistInfo(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(ENV);
  o.Set("initialized", state != nullptr);
  if (state) {
    o.Set("backend", state->backend);
    o.Set("rank", state->rank);
    o.Set("worldSize", state->size);
    o.Set("device", state->device.str());
    o.Set("timeoutMs", static_cast<double>(state->timeout.count()));
    o.Set("bucketBytes", static_cast<double>(state->bucketBytes));
    if (!state->broken.empty()) o.Set("broken", state->broken);
  }
  return o;
}

#else  // no c10d headers in this libtorch

static Napi::Value NoC10d(const Napi::CallbackInfo& info) {
  throw DistError(ENV, "distributed: this libtorch has no torch.distributed (c10d) headers; multi-process training is not available");
}
static Napi::Value DistInfo(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(ENV);
  o.Set("initialized", false);
  return o;
}
static Napi::Value DistDestroy(const Napi::CallbackInfo& info) { return ENV.Undefined(); }
#define DistInit NoC10d
#define DistAllReduce NoC10d
#define DistBroadcast NoC10d
#define DistBarrier NoC10d

#endif

void RegisterDistributed(Napi::Env env, Napi::Object e) {
  SVDLORA_EXPORT(e, "distBackends", DistBackends);
  SVDLORA_EXPORT(e, "distInit", DistInit);
  SVDLORA_EXPORT(e, "distAllReduce", DistAllReduce);
  SVDLORA_EXPORT(e, "distBroadcast", DistBroadcast);
  SVDLORA_EXPORT(e, "distBarrier", DistBarrier);
  SVDLORA_EXPORT(e, "distDestroy", DistDestroy);
  SVDLORA_EXPORT(e, "distInfo", DistInfo);
}

}  // namespace svdlora
