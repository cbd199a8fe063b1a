// Installs what is missing and builds, so that a fresh clone needs one command:
// libtorch (apt on Debian/Ubuntu as root), npm packages, the native addon, the TypeScript.
// Quiet and quick when everything is already in place.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { HOW_TO_INSTALL, findLibtorch } from "./libtorch.mjs";
import { buildNative } from "./build-native.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
// What the system must provide, and how to tell it is there.
const SYSTEM_PACKAGES = [
  { pkg: "libtorch-dev", required: true, present: () => findLibtorch() !== null },
  // Debian's libtorch links the generic libblas.so.3, which is the slow reference BLAS unless
  // OpenBLAS provides it (about 10x faster matmul on the CPU).
  {
    pkg: "libopenblas0-pthread",
    required: false,
    present: () => {
      // Needed with the system libtorch, also when that is about to be installed.
      const torch = findLibtorch();
      if (torch !== null && torch.source !== "system") return true;
      return ["x86_64", "aarch64"].some((arch) => existsSync(`/usr/lib/${arch}-linux-gnu/openblas-pthread/libblas.so.3`));
    },
  },
  // Debian's libtorch has c10d's Gloo backend built in but not Gloo's headers: with them the addon
  // gets data-parallel training over CPU processes (how the multi-GPU code is tested without GPUs).
  {
    pkg: "libgloo-dev",
    required: false,
    present: () => {
      const torch = findLibtorch();
      return (torch !== null && torch.source !== "system") || existsSync("/usr/include/gloo/config.h");
    },
  },
  // The browser test opens report.html in Debian's chromium, headless; nothing else needs it.
  { pkg: "chromium", required: false, present: () => existsSync("/usr/bin/chromium"), neededBy: "the report's browser test" },
];

function run(cmd, args, what, { fatal = true } = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  if (r.status === 0) return true;
  const msg = `svdlora setup: ${what} failed (exit ${r.status ?? r.signal})`;
  if (!fatal) {
    console.error(`${msg}; continuing`);
    return false;
  }
  console.error(`${msg}; fix the problem above and run \`npm run setup\` again`);
  process.exit(1);
}

// Installs what is missing with apt on Debian/Ubuntu as root (SVDLORA_NO_APT=1 skips that);
// elsewhere, says what to install. Only libtorch is a must.
function ensureSystemPackages() {
  const missing = SYSTEM_PACKAGES.filter((p) => !p.present());
  if (missing.length === 0) return;
  const needed = missing.some((p) => p.required);
  const canApt = existsSync("/usr/bin/apt-get") && process.getuid?.() === 0 && !process.env.SVDLORA_NO_APT;
  if (canApt) {
    const pkgs = missing.map((p) => p.pkg);
    console.error(`svdlora setup: installing ${pkgs.join(", ")} with apt-get…`);
    const ok =
      run("apt-get", ["update", "-qq"], "apt-get update", { fatal: needed }) &&
      run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...pkgs], "apt-get install", { fatal: needed });
    if (ok) return;
  }
  if (findLibtorch() === null) {
    const hint = existsSync("/usr/bin/apt-get") ? " (as root: `apt-get install -y libtorch-dev`)" : "";
    console.error(`svdlora setup: ${HOW_TO_INSTALL}${hint}`);
    process.exit(1);
  }
  for (const p of missing)
    console.error(`svdlora setup: warning: recommended system package ${p.pkg} is missing${p.neededBy ? ` (${p.neededBy} needs it)` : ""}`);
}

// Installed when every package the lock file names is in node_modules at its locked version
// (mtimes are no guide: checkouts and unpacked archives reset them).
function nodeModulesComplete() {
  const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8"));
  return Object.entries(lock.packages ?? {}).every(([path, info]) => {
    if (!path || info.optional) return true;
    const pkg = join(root, path, "package.json");
    return existsSync(pkg) && JSON.parse(readFileSync(pkg, "utf8")).version === info.version;
  });
}

function ensureNodeModules() {
  if (nodeModulesComplete()) return;
  console.error("svdlora setup: installing npm packages…");
  // --ignore-scripts: our own install script (the native build) runs next, once.
  run("npm", ["ci", "--ignore-scripts", "--no-audit", "--no-fund"], "npm ci");
}

function buildTypeScript() {
  run(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", root], "TypeScript build");
}

ensureSystemPackages();
ensureNodeModules();
if (!buildNative({ quiet: true })) process.exit(1);
buildTypeScript();
