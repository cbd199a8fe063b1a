// Concurrent arms on CUDA (docs/concurrent.md): the three runs of test/train/concurrent-runs.ts
// trained together over one tiny model (packed, one flash-attention call for all arms) against
// each alone, in float32 and in bf16; `concurrentArms: auto` measures a layer's bytes per token and
// puts all three in one pass. cuBLAS may pick other kernels for other GEMM shapes, so nothing is
// bitwise here: the tolerances are for float32 and bf16 rounding; each comparison is printed. They
// were written without a GPU at hand: the first run on one says whether they hold.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { loadCausalLM } from "../src/model/loader.js";
import { ArmGenerators } from "../src/model/arms.js";
import { armAdapters } from "../src/model/lora.js";
import { EMBEDDED_MODEL } from "../src/paths.js";
import { measureLayerBytesPerToken } from "../src/train/backprop.js";
import { trainConcurrently } from "../src/train/concurrent.js";
import { trainLora } from "../src/train/trainer.js";
import * as torch from "../src/torch/index.js";
import { tempDir } from "../test/helpers.js";
import { ARMS, baseSettings, compareRuns } from "../test/train/concurrent-runs.js";

const dir = tempDir("concurrent-gpu");
const folder = (what: string, i: number) => ({
  dir: path.join(dir, `${what}${i}`),
  checkpointDir: path.join(dir, `${what}${i}-checkpoint`),
});

for (const [dtype, loss, adapter] of [
  ["float32", 1e-4, 1e-3],
  ["bfloat16", 2e-2, 1e-1],
] as const)
  test(`${dtype} on CUDA: each arm trained together is within rounding of its run alone; auto makes one pass`, async (t) => {
    const base = { ...baseSettings(dir, 12), device: "cuda", dtype };
    for (const [i, arm] of ARMS.entries()) await trainLora({ ...base, ...arm }, folder(`alone-${dtype}`, i));
    const notes: string[] = [];
    await trainConcurrently(
      ARMS.map((arm, i) => ({ settings: { ...base, ...arm }, ...folder(`together-${dtype}`, i) })),
      { concurrentArms: "auto", note: (l) => notes.push(l) },
    );
    assert.equal(notes.length, 1, notes.join("\n"));
    ARMS.forEach((arm, i) => {
      const c = compareRuns(folder(`alone-${dtype}`, i).dir, folder(`together-${dtype}`, i).dir);
      t.diagnostic(`${arm.init} seed ${arm.seed}: ${JSON.stringify(c)}`);
      assert.ok(c.lossRel <= loss, `${arm.init}: losses differ by ${c.lossRel}`);
      assert.ok(c.adapterRel <= adapter, `${arm.init}: adapters differ by ${c.adapterRel}`);
    });
  });

test("a layer's bytes per token, measured with an arm attached, are positive and grow with its rank", () => {
  const model = loadCausalLM(EMBEDDED_MODEL, { dtype: "bfloat16", device: "cuda" });
  const measure = (rank: number) => {
    const generators = new ArmGenerators("cuda");
    const adapters = armAdapters(model, { rank, alpha: rank, targets: "all-linear" }, "random");
    generators.add();
    model.attachArms([adapters], generators);
    try {
      return measureLayerBytesPerToken(model, 512);
    } finally {
      model.detachArms();
      torch.dispose([...adapters.values()].flatMap((a) => [a.lora.A, a.lora.B]));
    }
  };
  const [small, large] = [measure(4), measure(64)];
  assert.ok(small > 0 && large > small, `rank 4: ${small} B/token, rank 64: ${large} B/token`);
});
