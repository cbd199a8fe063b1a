// bench/trace-summary.ts on a small made-up Kineto trace: the GPU's busy time is the union of its
// kernels, each kernel is charged to the top-level op whose runtime call launched it (matched by
// correlation id, on that op's own thread), and a synchronization is named with the op it was in.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { tempDir } from "../helpers.js";

const root = new URL("../../../", import.meta.url).pathname;
const dir = tempDir("trace-summary");
const op = (name: string, ts: number, dur: number, tid: number) => ({ ph: "X", cat: "cpu_op", name, ts, dur, tid, pid: 1 });
const call = (name: string, ts: number, dur: number, tid: number, correlation: number) => ({
  ph: "X",
  cat: "cuda_runtime",
  name,
  ts,
  dur,
  tid,
  pid: 1,
  args: { correlation },
});
const kernel = (name: string, ts: number, dur: number, correlation: number) => ({
  ph: "X",
  cat: "kernel",
  name,
  ts,
  dur,
  tid: 7,
  pid: 0,
  args: { correlation },
});

test("the summary's busy time, per-op GPU time and waits", () => {
  const file = path.join(dir, "trace.json");
  const events = [
    op("aten::linear", 0, 10, 1),
    op("aten::addmm", 2, 5, 1), // inside aten::linear
    call("cudaLaunchKernel", 3, 1, 1, 7),
    kernel("gemm", 4, 6, 7),
    op("aten::item", 11, 8, 1),
    call("cudaLaunchKernel", 11.5, 0.5, 1, 9),
    call("cudaStreamSynchronize", 12, 5, 1, 8),
    kernel("copy", 14, 2, 9),
    op("autograd::engine::evaluate_function: MmBackward0", 20, 4, 2), // the autograd thread
    call("cudaLaunchKernel", 21, 1, 2, 10),
    kernel("gemm", 22, 3, 10),
  ];
  fs.writeFileSync(file, JSON.stringify({ traceEvents: events }));
  const r = spawnSync(process.execPath, [path.join(root, "dist/bench/trace-summary.js"), file], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const out = r.stdout;
  // Window 0–25 µs; kernels cover 4–10, 14–16 and 22–25: 11 µs.
  assert.match(out, /traced window 0\.03 ms: 4 libtorch ops, 3 GPU kernels/);
  assert.match(out, /GPU busy 0\.01 ms \(44\.0 %\), idle 0\.01 ms/);
  const section = (title: string) => out.split(title)[1].split("\n\n")[0];
  const byOp = section("GPU: time by the top-level op that queued it");
  assert.match(byOp, /0\.01\s+1\s+aten::linear/);
  assert.match(byOp, /0\.00\s+1\s+aten::item/);
  assert.match(byOp, /0\.00\s+1\s+autograd::engine::evaluate_function: MmBackward0/);
  assert.doesNotMatch(byOp, /addmm/); // nested ops are not top-level
  assert.match(
    section("host: time inside top-level libtorch ops, by thread"),
    /thread 1: 0\.02 ms in 2 ops\n\s+thread 2: 0\.00 ms in 1 ops/,
  );
  assert.match(out, /calls that can make the host wait: 1\n\s+0\.01\s+1\s+cudaStreamSynchronize in aten::item/);
});
