// What a matrix product of a shape cuBLAS has not seen costs the host, against one of a shape seen
// before: cuBLAS picks a kernel for every new shape (its heuristics), and a training step whose
// packed rows have a new length every step pays that for most of its products. The time is the
// host's, to queue the product (the GPU is idle before each call); the device's time is not counted.
//   node dist/bench/gemm-shapes.js [--device cuda] [--calls 60]
// prints a markdown table: for each case, the median and largest host time per call (the first 10
// calls of each case untimed) with rows of one length throughout ("seen"), a new length every call
// ("new"), and lengths rounded up to a multiple of 64 tokens, as train/batches.ts pads packed rows
// ("multiple of 64").
import { parseArgs } from "node:util";
import * as torch from "../src/torch/index.js";
import type { Tensor } from "../src/torch/index.js";

const { values: flags } = parseArgs({ options: { device: { type: "string", default: "cuda" }, calls: { type: "string", default: "60" } } });
const device = flags.device;
const calls = Number(flags.calls);
if (!(calls > 10)) throw new Error("--calls takes a number above 10");
const sync = () => device.startsWith("cuda") && torch.cuda.synchronize();
const bf16 = { dtype: "bfloat16" as const, device };

// Row counts per mode, for call i: one length, a new one each call, or new ones rounded up to 64.
const rowsOf = (mode: string, base: number, i: number) =>
  mode === "seen" ? base : mode === "new" ? base + 7 * i + 1 : Math.ceil((base + 7 * i + 1) / 64) * 64;

function hostMs(product: (rows: number) => { inputs: Tensor[]; run: () => Tensor }, base: number, mode: string): number[] {
  const times: number[] = [];
  for (let i = 0; i < calls; i++) {
    const { inputs, run } = product(rowsOf(mode, base, i));
    sync();
    const t = performance.now();
    const y = run();
    times.push(performance.now() - t);
    sync();
    torch.dispose([y, ...inputs]);
  }
  return times.slice(10).sort((a, b) => a - b);
}

const cases: { name: string; base: number; product: (rows: number) => { inputs: Tensor[]; run: () => Tensor } }[] = [];
for (const [model, hidden] of [
  ["tiny (896)", 896],
  ["7B (3584)", 3584],
] as const) {
  const W = torch.keep(torch.randn([hidden, hidden], bf16));
  const b = torch.keep(torch.randn([hidden], bf16));
  cases.push({
    name: `${model}: linear`,
    base: 1200,
    product: (rows) => {
      const x = torch.randn([rows, hidden], bf16);
      return { inputs: [x], run: () => torch.linear(x, W, null) };
    },
  });
  cases.push({
    name: `${model}: linear with bias`,
    base: 1300,
    product: (rows) => {
      const x = torch.randn([rows, hidden], bf16);
      return { inputs: [x], run: () => torch.linear(x, W, b) };
    },
  });
}
const A = torch.keep(torch.randn([8, 16, 896], bf16));
cases.push({
  name: "8 LoRA A factors: bmm [8, rows, 896]·[8, 896, 16]",
  base: 300,
  product: (rows) => {
    const x = torch.randn([8, rows, 896], bf16);
    return { inputs: [x], run: () => x.bmm(A.transpose(1, 2)) };
  },
});

const name = device.startsWith("cuda") ? torch.cuda.devices()[0].name : "cpu";
console.log(`Host time to queue one product, ms (median / largest of ${calls - 10} calls), ${name}\n`);
console.log("| product | seen length | new length every call | multiple of 64 |\n|---|---:|---:|---:|");
for (const c of cases) {
  const cells = ["seen", "new", "64"].map((mode) => {
    const t = hostMs(c.product, c.base, mode);
    return `${t[Math.floor(t.length / 2)].toFixed(3)} / ${t[t.length - 1].toFixed(3)}`;
  });
  console.log(`| ${c.name} | ${cells.join(" | ")} |`);
}
