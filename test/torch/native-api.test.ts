// The addon's boundary: the declaration (src/torch/native-api.ts) against the C++ registrations
// (scripts/check-native-api.mjs, run by every native build) and against the built addon; lazy
// loading; the host allocator setting being opt-in.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = fileURLToPath(new URL("../../../", import.meta.url));
interface Source {
  file: string;
  text: string;
}
interface Checker {
  checkNativeApi(sources: Source[], declaration: Source): string[];
  checkRepository(dir: string): { problems: string[]; exports: number } | null;
  declarations(text: string): { members: Map<string, number>; problems: string[] };
}
const checker: Checker = await import(pathToFileURL(path.join(root, "scripts/check-native-api.mjs")).href);
const declarationText = fs.readFileSync(path.join(root, "src/torch/native-api.ts"), "utf8");
const addonPath = process.env.SVDLORA_ADDON ?? path.join(root, "build/Release/svdlora.node");

test("every export that native/*.cc registers is declared in NativeAddon with the parameters its C++ reads", () => {
  const result = checker.checkRepository(root);
  assert.ok(result, "the repository has src/torch/native-api.ts");
  assert.deepEqual(result.problems, []);
  assert.ok(result.exports > 150, `${result.exports} exports`);
});

test("a registration and a declaration that disagree fail, one line per difference", () => {
  const cc = {
    file: "native/x.cc",
    text: `
#define UNARY(Name, expr)                                    \\
  static Napi::Value Name(const Napi::CallbackInfo& info) { \\
    auto& a = T(info, 0);                                    \\
    return Wrap(ENV, expr);                                  \\
  }
UNARY(Neg, at::neg(a))
UNARY(Narrow, a.narrow(Int(info, 1), Int(info, 2), Int(info, 3)))
// clampAll(t, lo?, hi?)
static Napi::Value Clamp(const Napi::CallbackInfo& info) {
  if (!info[2].IsUndefined()) return Wrap(ENV, at::clamp(T(info, 0), Scalar(info, 1), Scalar(info, 2)));
  return Wrap(ENV, at::clamp_min(T(info, 0), Scalar(info, 1)));  /* info[5] in a comment counts for nothing */
}
static Napi::Value Zeros(const Napi::CallbackInfo& info) { return Wrap(ENV, at::zeros(Ints(info, 0), Options(info, 1, 2))); }
void Register(Napi::Env env, Napi::Object e) {
  SVDLORA_EXPORT(e, "neg", Neg);
  SVDLORA_EXPORT(e, "narrow", Narrow);
  SVDLORA_EXPORT(e, "clamp", Clamp);
  SVDLORA_EXPORT(e, "zeros", Zeros);
  SVDLORA_EXPORT(e, "gone", Gone);
}`,
  };
  const ts = {
    file: "api.ts",
    text: `export interface NativeAddon {
  neg(t: Handle): Handle;
  narrow(t: Handle, dim: number, start: number): Handle;
  clamp(t: Handle, lo: number, hi?: number): Handle;
  extra(t: Handle): Handle;
}`,
  };
  assert.deepEqual(checker.checkNativeApi([cc], ts), [
    'native API: "gone" is registered in native/x.cc with Gone, whose definition was not found',
    'native API: "narrow" takes 3 parameters in NativeAddon (api.ts) but Narrow in native/x.cc reads 4 arguments',
    'native API: "zeros" is registered in native/x.cc but not declared in NativeAddon (api.ts)',
    'native API: "extra" is declared in NativeAddon (api.ts) but no native/*.cc registers it',
  ]);
  // The same C++ with a matching declaration passes.
  const matching = `export interface NativeAddon {
  neg(t: Handle): Handle;
  narrow(t: Handle, dim: number, start: number, length: number): Handle;
  clamp(t: Handle, lo: number, hi?: number): Handle;
  zeros(shape: number[], dtype?: number | null, device?: string | null): Handle;
}`;
  const withoutGone = { ...cc, text: cc.text.replace('SVDLORA_EXPORT(e, "gone", Gone);', "") };
  assert.deepEqual(checker.checkNativeApi([withoutGone], { file: "api.ts", text: matching }), []);
});

test("the declaration names each argument: no rest parameters, no property members", () => {
  const { problems } = checker.declarations(`interface NativeAddon {
  add(...args: unknown[]): unknown;
  sub: (a: number) => number;
}`);
  assert.deepEqual(problems, [
    "NativeAddon.add in src/torch/native-api.ts has a rest parameter: name each argument",
    "NativeAddon.sub in src/torch/native-api.ts must be a method signature, name(param: Type, …): Result",
  ]);
});

test("the built addon exports exactly the functions NativeAddon declares", () => {
  const addon = createRequire(import.meta.url)(addonPath);
  const declared = [...checker.declarations(declarationText).members.keys()].sort();
  assert.deepEqual(Object.keys(addon).sort(), declared);
  for (const name of declared) assert.equal(typeof addon[name], "function", name);
});

// A fresh process: whether the addon is mapped after importing the torch API, how the heap grows
// for a 64 MiB tensor with and without tuneHostAllocator(), and how much room the address space left
// above the heap (where another mapping sits right above it, brk cannot grow and glibc must mmap).
interface Probe {
  afterImport: boolean;
  afterOp: boolean;
  heapGrowthMiB: number;
  roomAboveHeapMiB: number;
}
function probe(tune: boolean): Probe {
  const script = `
    import fs from "node:fs";
    const maps = () => fs.readFileSync("/proc/self/maps", "utf8").split("\\n").filter(Boolean);
    const range = (line) => line.split(" ")[0].split("-").map((h) => parseInt(h, 16));
    const loaded = () => maps().some((l) => l.includes(${JSON.stringify(path.basename(addonPath))}));
    const heap = () => {
      const lines = maps();
      const i = lines.findIndex((l) => l.endsWith("[heap]"));
      const [start, end] = range(lines[i]);
      const next = i + 1 < lines.length ? range(lines[i + 1])[0] : Infinity;
      return { size: end - start, room: next - end };
    };
    const torch = await import(${JSON.stringify(pathToFileURL(path.join(root, "dist/src/torch/index.js")).href)});
    if (${tune}) torch.tuneHostAllocator();
    const afterImport = loaded();
    torch.zeros([1]);
    const afterOp = loaded();
    const before = heap();
    const t = torch.empty([16 * 1024 * 1024]);
    const heapGrowthMiB = (heap().size - before.size) / 2 ** 20;
    t.dispose();
    console.log(JSON.stringify({ afterImport, afterOp, heapGrowthMiB, roomAboveHeapMiB: before.room / 2 ** 20 }));`;
  const env = { ...process.env, SVDLORA_SYSTEM_MALLOC: "" };
  return JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", env }));
}

// Where the heap sits is randomized per process: the heap checks take the first of up to three fresh
// processes that shows the expected growth, and a failure lists every process's figures.
function heapProbes(tune: boolean, expected: (growthMiB: number) => boolean): { probes: Probe[]; ok: boolean } {
  const probes: Probe[] = [];
  while (probes.length < 3) {
    probes.push(probe(tune));
    if (expected(probes.at(-1)?.heapGrowthMiB ?? Number.NaN)) return { probes, ok: true };
  }
  return { probes, ok: false };
}

const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
const linuxGlibc = process.platform === "linux" && Boolean(report?.header?.glibcVersionRuntime);

test("importing the torch API loads no libtorch; the first op does, and tunes glibc's malloc only when asked", {
  skip: linuxGlibc ? false : "needs Linux with glibc (/proc/self/maps, mallopt)",
}, () => {
  const plain = heapProbes(false, (growth) => growth < 16);
  for (const p of plain.probes) {
    assert.equal(p.afterImport, false, "the addon is not loaded by the import");
    assert.equal(p.afterOp, true, "the first op loads it");
  }
  assert.ok(plain.ok, `untuned: a 64 MiB block is mmap()ed, not taken from the heap (each process: ${JSON.stringify(plain.probes)})`);
  const tuned = heapProbes(true, (growth) => growth > 48);
  for (const p of tuned.probes) assert.equal(p.afterImport, false, "tuneHostAllocator() before the first op does not load the addon");
  assert.ok(tuned.ok, `tuned: the block comes from the heap (each process: ${JSON.stringify(tuned.probes)})`);
});
