// How many calls into the native addon one optimizer step makes, for a run alone and for K
// concurrent arms (train/step.ts optimizerSteps), on the embedded tiny model as the tiny cases of
// concurrent-7b.ts train it (LoRA q,v r = 16, batch 4, AdamW lr 2e-4). A step whose kernels are
// tiny is bound by the host queueing them, and each call that queues work costs the host about as
// much whatever the tensor's size, so what matters is how many calls a step makes and which of
// them grow with the arms. Every function of the addon is wrapped with a counter for this process
// only; each call is charged to the innermost named function outside src/torch/ that made it (a
// tidy scope's disposals to the function that opened the scope).
//
//   node dist/bench/native-calls.js [--device cpu|cuda] [--arms 1,8] [--steps 2] [--max-grad-norm 1] [--trace PREFIX]
//
// prints, per addon function and per calling site, the calls of one step (the mean of --steps
// steps after --warmup) alone and with each K, and what each arm adds: the difference between the
// most and the fewest arms over their difference in arms; then one JSON line with every count.
// "lifetime" calls (dispose, metadata reads, gradient handles) queue no kernels; the others may.
// Calls made inside the addon (autograd's backward, a fused op's kernels) are not counted. The
// step's branches depend on the device (on CUDA: batched adapters, packed flash attention, one
// loss head for all arms, fused AdamW), so counts taken on the CPU say what the CPU step does;
// run it with --device cuda for the GPU's. --trace PREFIX: one more step of each column, after its
// counted ones, under libtorch's profiler, written to PREFIX-alone.json, PREFIX-K8.json, … (Chrome
// trace JSON, read by bench/trace-summary.ts); it needs a libtorch with Kineto (PyTorch's own).
import { parseArgs } from "node:util";
import { addLora, loraParameters } from "../src/model/lora.js";
import * as torch from "../src/torch/index.js";
import { native } from "../src/torch/native.js";
import type { BatchOptions } from "../src/train/batches.js";
import { epochOrder, microBatchRanges } from "../src/train/batches.js";
import { singleProcess } from "../src/train/data-parallel.js";
import { AdamW } from "../src/train/optim.js";
import { type RunStep, optimizerSteps, rankMicroBatch } from "../src/train/step.js";
import { recomputePolicy } from "../src/train/trainer.js";
import { attachRandomArms, tinyWorkload } from "./configs.js";

const { values: flags } = parseArgs({
  options: {
    device: { type: "string", default: "cpu" },
    arms: { type: "string", default: "1,8" },
    steps: { type: "string", default: "2" },
    warmup: { type: "string", default: "2" },
    "max-grad-norm": { type: "string", default: "1" },
    trace: { type: "string" },
  },
});
const device = flags.device;
const armCounts = flags.arms.split(",").map(Number);
const steps = Number(flags.steps);
const warmup = Number(flags.warmup);
const maxGradNorm = Number(flags["max-grad-norm"]) || undefined;
if (armCounts.some((k) => !(Number.isInteger(k) && k > 0)) || !(steps > 0) || !(warmup >= 0))
  throw new Error("--arms takes whole numbers above 0 (e.g. 1,8), --steps a number above 0, --warmup one of 0 or more");

// Calls that allocate nothing on the device and queue no kernel.
const LIFETIME = new Set([
  "dispose",
  "isDisposed",
  "meta",
  "sizes",
  "strides",
  "isContiguous",
  "grad",
  "setGrad",
  "requiresGrad_",
  "isGradEnabled",
  "setGradEnabled",
]);

// ---- counting ---------------------------------------------------------------------------------

type Counts = Map<string, number>;
let counting: { byFunction: Counts; bySite: Counts } | null = null;
const add = (m: Counts, key: string) => m.set(key, (m.get(key) ?? 0) + 1);

/** The innermost named function outside src/torch/ on the stack below `above`, as "dir/file.ts function". */
function site(above: (...args: unknown[]) => unknown): string {
  const prepare = Error.prepareStackTrace;
  Error.prepareStackTrace = (_, frames) => frames;
  const holder: { stack?: NodeJS.CallSite[] } = {};
  Error.captureStackTrace(holder, above);
  const frames = holder.stack ?? [];
  Error.prepareStackTrace = prepare;
  let file: string | null = null;
  for (const f of frames) {
    const name = f.getFileName() ?? "";
    const m = /\/dist\/(src|bench)\/(.*)\.js$/.exec(name);
    if (!m || m[2].startsWith("torch/")) continue; // a tidy scope, Array.map, …
    const here = `${m[1] === "bench" ? "bench/" : ""}${m[2]}.ts`;
    if (file && here !== file) break; // an anonymous function of `file`, called from another file
    file = here;
    const fn = f.getFunctionName();
    if (fn) return `${here} ${f.getTypeName() && f.getTypeName() !== "Object" && !f.isToplevel() ? `${f.getTypeName()}.` : ""}${fn}`;
  }
  return file ? `${file} (anonymous)` : "(outside src)";
}

function installCounters(): void {
  const addon = native() as unknown as Record<string, unknown>;
  for (const [name, fn] of Object.entries(addon)) {
    if (typeof fn !== "function") continue;
    const counted = function (this: unknown, ...args: unknown[]) {
      if (counting) {
        add(counting.byFunction, name);
        add(counting.bySite, site(counted));
      }
      return fn.apply(this, args);
    };
    addon[name] = counted;
  }
}

// ---- the workload -----------------------------------------------------------------------------

torch.tuneHostAllocator(); // as the svdlora command does
const { model, samples, padId } = await tinyWorkload(device);
const cuda = device.startsWith("cuda");
const batch: BatchOptions = { padId, device, packing: cuda, dtype: model.dtype };
const recompute = recomputePolicy({ device, gradientCheckpointing: "auto" });
const dp = singleProcess(device);
const lora = { rank: 16, alpha: 16, targets: ["q_proj", "v_proj"] };
const ranges = microBatchRanges(samples.length, 4);
// Arm k's step i: its micro-batch in its own seed's order, as concurrent-7b.ts takes it.
const microOf = (k: number, i: number) => {
  const [a, b] = ranges[i % ranges.length];
  const order = epochOrder(samples.length, k + 1, Math.floor(i / ranges.length));
  return rankMicroBatch(
    order.slice(a, b).map((j) => samples[j]),
    1,
    dp,
    batch,
  );
};

/** Runs warmup steps, then counts `steps` steps (and traces one more, with --trace); returns the calls of one step (their mean). */
function countSteps(label: string, step: (i: number) => void): { byFunction: Counts; bySite: Counts } {
  for (let i = 0; i < warmup; i++) step(i);
  if (cuda) torch.cuda.synchronize();
  counting = { byFunction: new Map(), bySite: new Map() };
  for (let i = warmup; i < warmup + steps; i++) step(i);
  const counted = counting;
  counting = null;
  if (flags.trace)
    torch.profile(`${flags.trace}-${label}.json`, { cuda }, () => {
      step(warmup + steps);
      if (cuda) torch.cuda.synchronize();
    });
  for (const m of [counted.byFunction, counted.bySite]) for (const [k, v] of m) m.set(k, v / steps);
  return counted;
}

function alone(): { byFunction: Counts; bySite: Counts } {
  torch.manualSeed(1);
  const loras = addLora(model, lora, "random");
  const optimizer = new AdamW(loraParameters(loras), { lr: 2e-4, weightDecay: 0.01 });
  try {
    return countSteps("alone", (i) => optimizerSteps(model, [{ optimizer, micro: [microOf(0, i)], lr: 2e-4, maxGradNorm }], { recompute }));
  } finally {
    optimizer.dispose();
    for (const l of model.linears().values()) l.lora = null;
    torch.dispose(loraParameters(loras));
  }
}

function concurrent(arms: number): { byFunction: Counts; bySite: Counts } {
  const { optimizers, detach } = attachRandomArms(model, lora, arms, device);
  try {
    return countSteps(`K${arms}`, (i) =>
      optimizerSteps(
        model,
        optimizers.map((optimizer, k): RunStep => ({ optimizer, micro: [microOf(k, i)], lr: 2e-4, maxGradNorm, arm: k })),
        { recompute },
      ),
    );
  } finally {
    detach();
  }
}

installCounters();
const columns: { label: string; counts: { byFunction: Counts; bySite: Counts } }[] = [{ label: "alone", counts: alone() }];
for (const k of armCounts) columns.push({ label: `K=${k}`, counts: concurrent(k) });

// ---- the tables -------------------------------------------------------------------------------

const [kMin, kMax] = [Math.min(...armCounts), Math.max(...armCounts)];
const perArm = (m: (c: (typeof columns)[number]) => number) => {
  if (kMax === kMin) return "";
  const at = (k: number) => m(columns.find((c) => c.label === `K=${k}`)!);
  return ((at(kMax) - at(kMin)) / (kMax - kMin)).toFixed(1);
};
const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));

function table(title: string, pick: (c: (typeof columns)[number]["counts"]) => Counts, kind?: (key: string) => string): string {
  const keys = [...new Set(columns.flatMap((c) => [...pick(c.counts).keys()]))];
  const value = (c: (typeof columns)[number], key: string) => pick(c.counts).get(key) ?? 0;
  const last = columns[columns.length - 1];
  keys.sort((a, b) => value(last, b) - value(last, a) || a.localeCompare(b));
  const head = `| ${title} |${kind ? " kind |" : ""} ${columns.map((c) => c.label).join(" | ")} | per extra arm |`;
  const rule = `|---|${kind ? "---|" : ""}${columns.map(() => "---:|").join("")}---:|`;
  const rows = keys.map(
    (key) =>
      `| ${key} |${kind ? ` ${kind(key)} |` : ""} ${columns.map((c) => fmt(value(c, key))).join(" | ")} | ${perArm((c) => value(c, key))} |`,
  );
  const total = (c: (typeof columns)[number], f: (key: string) => boolean) =>
    [...pick(c.counts)].reduce((s, [k, v]) => s + (f(k) ? v : 0), 0);
  const totals = kind
    ? (["ops", "lifetime"] as const).map(
        (what) =>
          `| **total ${what}** | | ${columns.map((c) => fmt(total(c, (k) => kind(k) === what))).join(" | ")} | ${perArm((c) => total(c, (k) => kind(k) === what))} |`,
      )
    : [];
  const all = `| **total** |${kind ? " |" : ""} ${columns.map((c) => fmt(total(c, () => true))).join(" | ")} | ${perArm((c) => total(c, () => true))} |`;
  return [head, rule, ...rows, ...totals, all].join("\n");
}

console.log(
  `native calls per optimizer step: tiny model on ${device}, LoRA q,v r = 16, batch 4, ${maxGradNorm ? `clipping at ${maxGradNorm}` : "no clipping"}, mean of ${steps} steps after ${warmup}\n`,
);
console.log(
  table(
    "native function",
    (c) => c.byFunction,
    (k) => (LIFETIME.has(k) ? "lifetime" : "ops"),
  ),
);
console.log();
console.log(table("called from", (c) => c.bySite));
console.log(
  JSON.stringify({
    kind: "native-calls",
    device,
    maxGradNorm: maxGradNorm ?? 0,
    columns: columns.map((c) => ({
      label: c.label,
      byFunction: Object.fromEntries(c.counts.byFunction),
      bySite: Object.fromEntries(c.counts.bySite),
    })),
  }),
);
torch.dispose([...model.namedWeights().values()]);
