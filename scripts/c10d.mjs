// What the native build needs for multi-process training over libtorch's c10d
// (native/distributed.cc): the c10d headers, and the Gloo and NCCL headers when they match the
// libtorch being built against. Used by binding.gyp, beside libtorch.mjs:
//   node scripts/c10d.mjs include|defines|libs|json
// gyp runs it when it (re)configures: after installing the Gloo headers, rebuild from scratch
// (`rm -rf build && npm run build`) for the Gloo backend to be compiled in.
//
// Gloo: ProcessGroupGloo.hpp includes Gloo's own headers, which must be those of the Gloo that
// libtorch was built with. Debian/Ubuntu's libtorch links the system libgloo.so.0, whose headers
// are in `libgloo-dev`. PyTorch wheels build Gloo statically and do not ship its headers (their
// cmake sets GLOO_INSTALL OFF), so the Gloo backend is left out there unless GLOO_INCLUDE points
// at the matching Gloo source tree. NCCL: nccl.h of the NCCL that torch links (the nvidia-nccl
// wheel beside torch first), because ProcessGroupNCCL's layout depends on the NCCL version macros.
// SVDLORA_NO_GLOO=1 / SVDLORA_NO_NCCL=1 leave a backend out.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { findLibtorch } from "./libtorch.mjs";

const hasGlooHeaders = (dir) => existsSync(join(dir, "gloo/config.h")) && existsSync(join(dir, "gloo/algorithm.h"));

// True unless the library's dynamic section shows it was built without a shared libgloo.
function linksSharedGloo(lib) {
  try {
    return execFileSync("readelf", ["-d", lib], { encoding: "utf8", maxBuffer: 1 << 24 }).includes("libgloo");
  } catch {
    return true; // no readelf: let the compiler decide
  }
}

function findGloo(t, c10dDir) {
  if (process.env.SVDLORA_NO_GLOO || !existsSync(join(c10dDir, "ProcessGroupGloo.hpp"))) return null;
  if (process.env.GLOO_INCLUDE) {
    if (!hasGlooHeaders(process.env.GLOO_INCLUDE)) throw new Error(`GLOO_INCLUDE=${process.env.GLOO_INCLUDE} has no gloo/config.h`);
    return { include: process.env.GLOO_INCLUDE, libDir: null };
  }
  if (t.source !== "system") return hasGlooHeaders(t.include[0]) ? { include: t.include[0], libDir: null } : null;
  const include = [t.include[0], "/usr/include", "/usr/local/include"].find(hasGlooHeaders);
  if (!include || !linksSharedGloo(join(t.libDir, "libtorch_cpu.so"))) return null;
  const libDir = [t.libDir, "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib", "/lib", "/usr/local/lib"].find((d) =>
    existsSync(join(d, "libgloo.so")),
  );
  return { include, libDir: libDir ?? null };
}

function findNccl(t, c10dDir) {
  if (process.env.SVDLORA_NO_NCCL || !t.cuda || !t.cudaInclude || !existsSync(join(c10dDir, "ProcessGroupNCCL.hpp"))) return null;
  const env = process.env;
  const candidates = [
    env.NCCL_INCLUDE_DIR,
    env.NCCL_HOME && join(env.NCCL_HOME, "include"),
    env.NCCL_ROOT && join(env.NCCL_ROOT, "include"),
  ];
  // PyTorch wheels depend on nvidia-nccl-cuXX, installed beside torch as site-packages/nvidia/nccl.
  const nvidia = join(dirname(t.root), "nvidia");
  if (existsSync(nvidia)) for (const d of readdirSync(nvidia)) candidates.push(join(nvidia, d, "include"));
  candidates.push(t.cudaInclude, "/usr/include", "/usr/local/include", "/usr/local/cuda/include");
  const include = candidates.filter(Boolean).find((d) => existsSync(join(d, "nccl.h")));
  return include ? { include } : null;
}

/** { c10d, gloo: {include, libDir} | null, nccl: {include} | null } for a libtorch found by libtorch.mjs. */
export function findC10d(t) {
  const c10dDir = join(t.include[0], "torch/csrc/distributed/c10d");
  if (!existsSync(join(c10dDir, "TCPStore.hpp")) || !existsSync(join(c10dDir, "FileStore.hpp")))
    return { c10d: false, gloo: null, nccl: null };
  return { c10d: true, gloo: findGloo(t, c10dDir), nccl: findNccl(t, c10dDir) };
}

/** The include dirs, defines and libraries that findC10d's result adds to the build. */
export function c10dGyp(c, what) {
  switch (what) {
    case "include":
      return [c.gloo?.include, c.nccl?.include].filter(Boolean);
    case "defines":
      return [...(c.c10d ? ["SVDLORA_C10D"] : []), ...(c.gloo ? ["SVDLORA_GLOO"] : []), ...(c.nccl ? ["SVDLORA_NCCL"] : [])];
    case "libs":
      return c.gloo?.libDir ? [`-L${c.gloo.libDir}`, "-lgloo"] : [];
    default:
      return [];
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const what = process.argv[2] ?? "json";
  const t = findLibtorch();
  const c = t ? findC10d(t) : { c10d: false, gloo: null, nccl: null };
  console.log(what === "json" ? JSON.stringify(c, null, 2) : c10dGyp(c, what).join(" "));
}
