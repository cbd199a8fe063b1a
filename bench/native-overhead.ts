// Micro-benchmark: bf16 8192³ matmul throughput and per-op call overhead, from Node and from
// PyTorch in the same run on the same machine, printed side by side with ratios.
//   node dist/bench/native-overhead.js   (PyTorch side runs if python3 can import torch)
import { spawnSync } from "node:child_process";
import * as torch from "../src/torch/index.js";

torch.tuneHostAllocator(); // as the svdlora command does

const hasCuda = torch.buildInfo().builtWithCuda && torch.cuda.isAvailable();
const device = hasCuda ? "cuda:0" : "cpu";
const sync = () => hasCuda && torch.cuda.synchronize();

function matmulTflops(n: number, iters: number): number {
  const dtype = hasCuda ? "bfloat16" : "float32";
  const a = torch.randn([n, n], { device, dtype });
  const b = torch.randn([n, n], { device, dtype });
  for (let i = 0; i < 3; i++) a.matmul(b).dispose();
  sync();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) a.matmul(b).dispose();
  sync();
  const s = (performance.now() - t0) / 1000;
  return (2 * n ** 3 * iters) / s / 1e12;
}

/** Microseconds per `a.add(b)` on one-element tensors, including making and freeing the result. */
function perOpMicros(dev: string, iters: number): number {
  const a = torch.ones([1], { device: dev });
  const b = torch.ones([1], { device: dev });
  for (let i = 0; i < 1000; i++) a.add(b).dispose();
  sync();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) a.add(b).dispose();
  sync();
  return ((performance.now() - t0) * 1000) / iters;
}

const PY = `
import json, time, torch
cuda = torch.cuda.is_available()
dev = "cuda:0" if cuda else "cpu"
def sync():
    if cuda: torch.cuda.synchronize()
def mm(n, iters):
    dt = torch.bfloat16 if cuda else torch.float32
    a = torch.randn(n, n, device=dev, dtype=dt); b = torch.randn(n, n, device=dev, dtype=dt)
    for _ in range(3): a @ b
    sync(); t0 = time.perf_counter()
    for _ in range(iters): a @ b
    sync(); return 2 * n**3 * iters / (time.perf_counter() - t0) / 1e12
def op(d, iters):
    a = torch.ones(1, device=d); b = torch.ones(1, device=d)
    for _ in range(1000): torch.add(a, b)
    sync(); t0 = time.perf_counter()
    for _ in range(iters): torch.add(a, b)
    sync(); return (time.perf_counter() - t0) * 1e6 / iters
import sys; n, iters = int(sys.argv[1]), int(sys.argv[2])
r = {"tflops": mm(n, iters), "op_cpu_us": op("cpu", 100000)}
if cuda: r["op_cuda_us"] = op(dev, 100000)
r["version"] = torch.__version__
print(json.dumps(r))
`;

const n = hasCuda ? 8192 : 1024;
const iters = hasCuda ? 20 : 5;
const ours = {
  tflops: matmulTflops(n, iters),
  op_cpu_us: perOpMicros("cpu", 100000),
  op_cuda_us: hasCuda ? perOpMicros(device, 100000) : undefined,
};
const py = spawnSync("python3", ["-c", PY, String(n), String(iters)], { encoding: "utf8" });
const ref = py.status === 0 ? (JSON.parse(py.stdout) as Record<string, number | string>) : null;

const dev = hasCuda ? torch.cuda.devices()[0].name : "CPU";
console.log(`device: ${dev}; libtorch ${torch.buildInfo().torchVersion}; PyTorch ${ref?.version ?? "not available"}`);
const row = (what: string, a: number | undefined, b: unknown, unit: string, higherIsBetter: boolean) => {
  if (a === undefined) return;
  const r = typeof b === "number" ? (higherIsBetter ? a / b : b / a) : NaN;
  console.log(
    `${what.padEnd(34)} node ${a.toFixed(2).padStart(8)} ${unit.padEnd(8)} pytorch ${typeof b === "number" ? b.toFixed(2).padStart(8) : "       -"}   ${Number.isNaN(r) ? "" : `node/pytorch speed ${(100 * r).toFixed(1)} %`}`,
  );
};
row(`${hasCuda ? "bf16" : "fp32"} matmul ${n}³`, ours.tflops, ref?.tflops, "TFLOP/s", true);
row("add(1-elem) per op, cpu", ours.op_cpu_us, ref?.op_cpu_us, "µs", false);
row("add(1-elem) per op, cuda", ours.op_cuda_us, ref?.op_cuda_us, "µs", false);
console.log(JSON.stringify({ device: dev, node: ours, pytorch: ref }));
