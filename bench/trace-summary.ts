// What a profiler trace (torch.profile: libtorch's Kineto, Chrome trace JSON) says about where a
// step's time went: how long the GPU was busy in the traced window and how long it sat idle, the
// kernels that took its time, the host's time in libtorch ops by thread (the rest of the main
// thread's time is spent in JavaScript and the addon's own code), the GPU's time by the top-level
// op that queued it (an autograd node's backward counts as one op), the largest ops, and every call
// that made the host wait for the GPU (synchronizations and blocking copies).
//   node dist/bench/trace-summary.js TRACE.json [--top 15]
import fs from "node:fs";
import { parseArgs } from "node:util";

const { values: flags, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: "string", default: "15" } } });
const top = Number(flags.top);
if (positionals.length !== 1 || !(top > 0)) throw new Error("usage: trace-summary TRACE.json [--top N]");

interface Event {
  ph: string;
  cat?: string;
  name: string;
  ts: number;
  dur?: number;
  tid: number | string;
  pid: number | string;
  args?: { correlation?: number };
}
const events: Event[] = JSON.parse(fs.readFileSync(positionals[0], "utf8")).traceEvents.filter(
  (e: Event) => e.ph === "X" && typeof e.dur === "number",
);
const GPU = new Set(["kernel", "gpu_memcpy", "gpu_memset"]);
const gpu = events.filter((e) => GPU.has(e.cat ?? ""));
const ops = events.filter((e) => e.cat === "cpu_op");
const runtime = events.filter((e) => e.cat === "cuda_runtime" || e.cat === "cuda_driver");
const end = (e: Event) => e.ts + (e.dur ?? 0);
const start = Math.min(...[...ops, ...gpu].map((e) => e.ts));
const window = Math.max(...[...ops, ...gpu].map(end)) - start;

/** The total length of the union of the events' intervals. */
function covered(es: Event[]): number {
  const sorted = [...es].sort((a, b) => a.ts - b.ts);
  let total = 0;
  let [from, to] = [-Infinity, -Infinity];
  for (const e of sorted) {
    if (e.ts > to) {
      if (to > from) total += to - from;
      [from, to] = [e.ts, end(e)];
    } else to = Math.max(to, end(e));
  }
  return to > from ? total + to - from : total;
}

/** The top-level op (of `tops`, sorted by start) on the event's thread that was running when it started. */
function enclosing(tops: Event[], e: Event): Event | null {
  let [lo, hi] = [0, tops.length - 1];
  let found: Event | null = null;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (tops[mid].ts <= e.ts) {
      found = tops[mid];
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found && end(found) >= e.ts ? found : null;
}

/** The events of each thread, by start (the longer first where two start together). */
function byThread(es: Event[]): Map<string, Event[]> {
  const threads = new Map<string, Event[]>();
  for (const e of es) {
    const list = threads.get(String(e.tid));
    if (list) list.push(e);
    else threads.set(String(e.tid), [e]);
  }
  for (const list of threads.values()) list.sort((a, b) => a.ts - b.ts || (b.dur ?? 0) - (a.dur ?? 0));
  return threads;
}

/** Ops not inside another op of the same thread. */
function topLevel(es: Event[]): Event[] {
  const out: Event[] = [];
  for (const list of byThread(es).values()) {
    let reach = -Infinity;
    for (const e of list)
      if (e.ts >= reach) {
        out.push(e);
        reach = end(e);
      }
  }
  return out;
}

function byName(es: Event[], name: (e: Event) => string = (e) => e.name): [string, { n: number; us: number }][] {
  const m = new Map<string, { n: number; us: number }>();
  for (const e of es) {
    const k = name(e);
    const v = m.get(k) ?? { n: 0, us: 0 };
    v.n++;
    v.us += e.dur ?? 0;
    m.set(k, v);
  }
  return [...m].sort((a, b) => b[1].us - a[1].us);
}

const ms = (us: number) => (us / 1000).toFixed(2);
const short = (s: string) => (s.length > 90 ? `${s.slice(0, 87)}…` : s);
const lines: string[] = [];
const say = (s = "") => lines.push(s);

const busy = covered(gpu);
say(`traced window ${ms(window)} ms: ${ops.length} libtorch ops, ${gpu.length} GPU kernels/copies`);
if (gpu.length > 0)
  say(
    `GPU busy ${ms(busy)} ms (${((100 * busy) / window).toFixed(1)} %), idle ${ms(window - busy)} ms; kernel time summed ${ms(gpu.reduce((s, e) => s + (e.dur ?? 0), 0))} ms`,
  );

const tops = topLevel(ops);
say();
say("host: time inside top-level libtorch ops, by thread");
for (const [tid, v] of byName(tops, (e) => String(e.tid))) say(`  thread ${tid}: ${ms(v.us)} ms in ${v.n} ops`);

if (gpu.length > 0) {
  // A kernel's launch (a runtime call with the same correlation id) happened inside some top-level op.
  const launches = new Map(runtime.map((r) => [r.args?.correlation, r]));
  const topsByThread = byThread(tops);
  const queuedBy = (k: Event) => {
    const launch = launches.get(k.args?.correlation);
    if (!launch) return "(launch not recorded)";
    return enclosing(topsByThread.get(String(launch.tid)) ?? [], launch)?.name ?? "(outside an op)";
  };
  say();
  say(`GPU: time by the top-level op that queued it (ms, kernels)`);
  for (const [name, v] of byName(gpu, queuedBy).slice(0, top)) say(`  ${ms(v.us).padStart(8)}  ${String(v.n).padStart(5)}  ${short(name)}`);
  say();
  say(`GPU: the ${top} kernels taking most time (ms, calls)`);
  for (const [name, v] of byName(gpu).slice(0, top)) say(`  ${ms(v.us).padStart(8)}  ${String(v.n).padStart(5)}  ${short(name)}`);
}
say();
say(`host: the ${top} top-level ops taking most time (ms, calls)`);
for (const [name, v] of byName(tops).slice(0, top)) say(`  ${ms(v.us).padStart(8)}  ${String(v.n).padStart(5)}  ${short(name)}`);

if (runtime.length > 0) {
  const waits = runtime.filter((e) => /Synchronize|cudaMemcpy(?!Async)|cudaStreamWaitEvent|cudaEventQuery/.test(e.name));
  say();
  say(`CUDA runtime: ${runtime.length} calls, ${ms(runtime.reduce((s, e) => s + (e.dur ?? 0), 0))} ms; by name (ms, calls)`);
  for (const [name, v] of byName(runtime).slice(0, top)) say(`  ${ms(v.us).padStart(8)}  ${String(v.n).padStart(5)}  ${short(name)}`);
  say(`calls that can make the host wait: ${waits.length}`);
  const opOf = (w: Event) =>
    tops.find((o) => String(o.tid) === String(w.tid) && o.ts <= w.ts && end(o) >= end(w))?.name ?? "(outside an op)";
  for (const [name, v] of byName(waits, (w) => `${w.name} in ${opOf(w)}`).slice(0, top))
    say(`  ${ms(v.us).padStart(8)}  ${String(v.n).padStart(5)}  ${short(name)}`);
}
console.log(lines.join("\n"));
