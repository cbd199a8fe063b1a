// Finds libtorch for the native build, in this order: $LIBTORCH, the Python `torch` package,
// a system libtorch (Debian/Ubuntu `libtorch-dev`). Used by binding.gyp and the set-up script:
//   node scripts/libtorch.mjs include|defines|libs|json
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

const SYSTEM_PREFIXES = ["/usr", "/usr/local"];
const MULTIARCH = ["lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu", "lib64", "lib"];

function layout(root, libDir, source) {
  const include = [join(root, "include"), join(root, "include/torch/csrc/api/include")];
  if (!existsSync(join(include[0], "ATen/ATen.h")) || !existsSync(join(libDir, "libtorch.so"))) return null;
  return { source, root, include, libDir };
}

function fromEnv() {
  const root = process.env.LIBTORCH;
  if (!root) return null;
  const found = layout(root, join(root, "lib"), "LIBTORCH");
  if (!found)
    throw new Error(`LIBTORCH=${root} has no include/ATen/ATen.h and lib/libtorch.so: point it at a libtorch or torch package directory`);
  return found;
}

function python(code) {
  try {
    return execFileSync("python3", ["-c", code], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 120_000 }).trim();
  } catch {
    return null;
  }
}

function fromPython() {
  const root = python("import os, torch; print(os.path.dirname(torch.__file__))");
  return root ? layout(root, join(root, "lib"), "python torch") : null;
}

function fromSystem() {
  for (const prefix of SYSTEM_PREFIXES)
    for (const lib of MULTIARCH) {
      const found = layout(prefix, join(prefix, lib), "system");
      if (found) return found;
    }
  return null;
}

// The C++ ABI must match libtorch's. PyTorch tells us; for other builds we read it from the
// library: the new ABI mangles std::string as std::__cxx11::basic_string.
function cxx11Abi(found) {
  if (process.env.LIBTORCH_CXX11_ABI) return process.env.LIBTORCH_CXX11_ABI === "1";
  if (found.source !== "system") {
    const abi = python("import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))");
    const pyRoot = python("import os, torch; print(os.path.dirname(torch.__file__))");
    if (abi !== null && pyRoot === found.root) return abi === "1";
  }
  try {
    const syms = execFileSync("nm", ["-D", "--defined-only", join(found.libDir, "libc10.so")], { encoding: "utf8", maxBuffer: 1 << 28 });
    return syms.includes("__cxx11");
  } catch {
    return true;
  }
}

function cudaInclude(found) {
  const candidates = [process.env.CUDA_HOME, process.env.CUDA_PATH, "/usr/local/cuda"].filter(Boolean).map((d) => join(d, "include"));
  // Pip wheels of CUDA 12/13 put headers under site-packages/nvidia/*/include.
  const nvidia = join(dirname(found.root), "nvidia");
  if (existsSync(nvidia)) for (const d of readdirSync(nvidia)) candidates.push(join(nvidia, d, "include"));
  return candidates.find((d) => existsSync(join(d, "cuda_runtime_api.h"))) ?? null;
}

function torchVersion(found) {
  // Debian's libtorch-dev has it under the C++ API's include folder, PyTorch's wheels in the top one.
  const h = found.include.map((d) => join(d, "torch/version.h")).find(existsSync);
  if (!h) return "unknown";
  const text = readFileSync(h, "utf8");
  const part = (name) => new RegExp(`#define TORCH_VERSION_${name}\\s+(\\d+)`).exec(text)?.[1];
  return [part("MAJOR"), part("MINOR"), part("PATCH")].every(Boolean) ? `${part("MAJOR")}.${part("MINOR")}.${part("PATCH")}` : "unknown";
}

export function findLibtorch() {
  const found = fromEnv() ?? fromPython() ?? fromSystem();
  if (!found) return null;
  const hasCudaLib = existsSync(join(found.libDir, "libtorch_cuda.so"));
  const cudaInc = hasCudaLib ? cudaInclude(found) : null;
  return { ...found, version: torchVersion(found), cxx11Abi: cxx11Abi(found), cuda: hasCudaLib, cudaInclude: cudaInc };
}

export const HOW_TO_INSTALL =
  "libtorch not found. Install it with `apt-get install -y libtorch-dev` (Debian/Ubuntu), or `pip install torch`, " +
  "or download libtorch and set LIBTORCH=/path/to/libtorch.";

function gypValue(t, what) {
  switch (what) {
    case "include":
      return [...t.include, ...(t.cudaInclude ? [t.cudaInclude] : [])];
    case "defines":
      return [`_GLIBCXX_USE_CXX11_ABI=${t.cxx11Abi ? 1 : 0}`, ...(t.cudaInclude ? ["SVDLORA_CUDA"] : [])];
    case "libs": {
      const libs = [`-L${t.libDir}`, `-Wl,-rpath,${t.libDir}`, "-ltorch", "-ltorch_cpu", "-lc10"];
      // Nothing in our code references libtorch_cuda directly: without --no-as-needed the linker
      // drops it and CUDA silently disappears at run time.
      if (t.cuda) libs.push("-Wl,--no-as-needed", "-ltorch_cuda", "-lc10_cuda", "-Wl,--as-needed");
      return libs;
    }
    default:
      throw new Error(`unknown query ${what}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const what = process.argv[2] ?? "json";
  const t = findLibtorch();
  if (!t) {
    console.error(HOW_TO_INSTALL);
    process.exit(1);
  }
  console.log(what === "json" ? JSON.stringify(t, null, 2) : gypValue(t, what).join(" "));
}
